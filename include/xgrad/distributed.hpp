#pragma once
// xgrad::distributed: data-parallel training across processes on MPI. Not part of
// <xgrad/xgrad.hpp>: it needs <mpi.h> and MPI's libraries (CMake target xgrad::mpi).
// Parameters on xgrad::device::cuda are reduced with NCCL in .cu files that link xgrad::nccl.
#include "distributed/callbacks.hpp"
#include "distributed/environment.hpp"
#include "distributed/optimizer.hpp"
#include "distributed/reducer.hpp"
#include "distributed/sampler.hpp"
#if defined(__CUDACC__) && defined(XGRAD_HAVE_NCCL)
#include "distributed/nccl.hpp"
#endif
