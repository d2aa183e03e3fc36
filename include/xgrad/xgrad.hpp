#pragma once
// xgrad: the whole library in one include.
#define XGRAD_VERSION_MAJOR 0
#define XGRAD_VERSION_MINOR 1
#define XGRAD_VERSION_PATCH 0

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/transfer.hpp"
#include "core/xtensor_interop.hpp"

#include "core/parameter.hpp"
#include "backend/cpu/thread_pool.hpp"
#include "expr/functions.hpp"
#include "expr/reduce.hpp"
#include "expr/op_node.hpp"
#include "autodiff/backward.hpp"
#include "autodiff/gradcheck.hpp"

#include "data.hpp"
#include "ops/dense.hpp"
#include "ops/nn_functional.hpp"
#include "nn.hpp"
#include "optim.hpp"
#include "train.hpp"
#include "io/onnx.hpp"
