#pragma once
// Passes (pass_scope, pass_cache) belong to the expression layer (expr/pass.hpp); this path
// keeps old includes working.
#include "../expr/pass.hpp"
