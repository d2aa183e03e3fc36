#pragma once
// xgrad::optim: optimizers, gradient clipping and learning-rate schedulers (see docs/optim.md).
#include "optim/adagrad.hpp"
#include "optim/adam.hpp"
#include "optim/clip.hpp"
#include "optim/optimizer.hpp"
#include "optim/rmsprop.hpp"
#include "optim/scheduler.hpp"
#include "optim/sgd.hpp"
