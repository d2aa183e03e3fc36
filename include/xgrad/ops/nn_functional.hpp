#pragma once
// The functional ops of a network beside matmul/conv: softmax, losses, dropout,
// normalization, embedding and differentiable shape ops (see docs/functional.md).
#include "dropout.hpp"
#include "embedding.hpp"
#include "embedding_bag.hpp"
#include "loss.hpp"
#include "norm.hpp"
#include "shape_ops.hpp"
#include "softmax.hpp"
