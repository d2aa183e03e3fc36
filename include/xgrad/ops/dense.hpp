#pragma once
// The dense (barrier) ops: matmul, linear, conv2d, pooling, and the activations that fuse into
// their output pass. See docs/dense_ops.md.
#include "../backend/cpu/gemm.hpp"
#include "activation.hpp"
#include "conv.hpp"
#include "matmul.hpp"
#include "pool.hpp"
