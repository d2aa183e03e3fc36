// A CPU tensor and a device tensor in one expression: one readable message when it is built.
#include <xgrad/device.hpp>

int main() {
    auto a = xgrad::zeros<float>({3});
    auto b = xgrad::zeros<float, xgrad::device::thrust_cpp>({3});
    auto e = a + b;
    (void)e;
}
