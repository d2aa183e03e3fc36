#pragma once
// The line and window barrier ops on the Thrust devices: pooling, softmax/log_softmax,
// cross_entropy/nll_loss, dropout, batch_norm/layer_norm, embedding, the recurrent stacks
// (lstm/gru) and attention (masked_softmax, multihead_attention), as specializations
// of detail::device_kernels (ops/detail/device_kernels.hpp), which op_node calls.
#include "ops_attention.hpp"
#include "ops_embedding.hpp"
#include "ops_norm.hpp"
#include "ops_pool.hpp"
#include "ops_rnn.hpp"
#include "ops_softmax.hpp"
