#pragma once
// xgrad with its Thrust devices: everything in xgrad.hpp, plus tensors and parameters on
// xgrad::device::thrust_cpp, thrust_omp and (in .cu files compiled by nvcc) cuda, moved with
// xgrad::to<Device>(x); eval() and backward() run device expressions as fused Thrust kernels.
// Under a plain C++ compiler link the CMake target xgrad::thrust_omp (CCCL include path,
// -fopenmp, THRUST_DEVICE_SYSTEM); in .cu files link xgrad::cuda. See docs/devices.md.
#include "xgrad.hpp"

#include "backend/thrust/system.hpp"
#include "backend/thrust/tensor.hpp"
#include "backend/thrust/engine.hpp"
#include "backend/thrust/blas.hpp"
#include "backend/thrust/ops_dense.hpp"
#include "backend/thrust/ops_nn.hpp"
