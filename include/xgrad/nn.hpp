#pragma once
// xgrad::nn: layers, sequential, initializers and model summaries (see docs/nn.md).
#include "nn/activation.hpp"
#include "nn/conv.hpp"
#include "nn/dropout.hpp"
#include "nn/embedding.hpp"
#include "nn/flatten.hpp"
#include "nn/init.hpp"
#include "nn/linear.hpp"
#include "nn/module.hpp"
#include "nn/normalization.hpp"
#include "nn/pooling.hpp"
#include "nn/sequential.hpp"
#include "nn/summary.hpp"
