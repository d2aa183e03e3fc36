// Compiled against an installed xgrad's xgrad::thrust_omp target (see CMakeLists.txt).
#include <xgrad/device.hpp>

int main() {
    auto x = xgrad::param(xgrad::ones<float, xgrad::device::thrust_omp>({8}));
    return xgrad::backward(xgrad::sum(x * x)) == 8.0f ? 0 : 1;
}
