#pragma once
// The executor interface is declared with the expressions it runs (expr/device_engine.hpp);
// this path keeps old includes working.
#include "../expr/device_engine.hpp"
