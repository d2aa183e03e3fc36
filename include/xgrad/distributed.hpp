#pragma once
// xgrad::distributed: data-parallel training across processes on MPI. Not part of
// <xgrad/xgrad.hpp>: it needs <mpi.h> and MPI's libraries (CMake target xgrad::mpi).
#include "distributed/callbacks.hpp"
#include "distributed/environment.hpp"
#include "distributed/optimizer.hpp"
#include "distributed/reducer.hpp"
#include "distributed/sampler.hpp"
