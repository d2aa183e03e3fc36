#pragma once
// Fixture for check_layering_detects_upward: an expression header that includes a layer.
#include "../nn/linear.hpp"
