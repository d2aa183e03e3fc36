// Compiled with xgrad pulled in through add_subdirectory (see CMakeLists.txt).
#include <xgrad/xgrad.hpp>

static_assert(XGRAD_VERSION_MAJOR >= 0, "XGRAD_VERSION_MAJOR must be defined");

int main() { return 0; }
