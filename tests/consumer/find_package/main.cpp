// Compiled against an installed xgrad package (see CMakeLists.txt).
#include <xgrad/xgrad.hpp>

#if XGRAD_VERSION_MAJOR != XGRAD_EXPECTED_VERSION_MAJOR
#error "xgrad header major version differs from the CMake package version"
#endif

int main() { return 0; }
