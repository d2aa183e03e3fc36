#pragma once
// Training front door: fit/evaluate/predict, loss objects, metrics, callbacks, progress,
// history, checkpoints (safetensors) and ensembles.
#include "io/safetensors.hpp"
#include "nn/loss.hpp"
#include "train/callbacks.hpp"
#include "train/checkpoint.hpp"
#include "train/fit.hpp"
#include "train/history.hpp"
#include "train/metrics.hpp"
#include "train/progress.hpp"
#include "train/plot.hpp"
#include "train/tensorboard.hpp"
