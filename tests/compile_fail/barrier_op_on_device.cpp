// A barrier op (CPU kernels only so far) handed device operands: one readable message.
#include <xgrad/device.hpp>
#include <xgrad/ops/matmul.hpp>

int main() {
    auto a = xgrad::zeros<float, xgrad::device::thrust_cpp>({2, 3});
    auto b = xgrad::zeros<float, xgrad::device::thrust_cpp>({3, 4});
    auto y = xgrad::eval(xgrad::matmul(a, b));
    (void)y;
}
