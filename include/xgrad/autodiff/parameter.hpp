#pragma once
// parameter and param() live in core (core/parameter.hpp); this path keeps old includes working.
#include "../core/parameter.hpp"
