#pragma once
// Training front door: fit/evaluate/predict, metrics, callbacks, progress, history,
// checkpoints (safetensors) and ensembles.
#include "io/safetensors.hpp"
#include "train/callbacks.hpp"
#include "train/checkpoint.hpp"
#include "train/fit.hpp"
#include "train/history.hpp"
#include "train/metrics.hpp"
#include "train/progress.hpp"
