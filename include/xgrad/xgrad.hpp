#pragma once
// placeholder umbrella header (being written)
#define XGRAD_VERSION_MAJOR 0
