// Must NOT compile: float and double operands in one elementwise op.
#include <xgrad/xgrad.hpp>
int main() {
    auto x = xgrad::ones<float>({3});
    auto y = xgrad::ones<double>({3});
    auto z = xgrad::eval(x + y);
    return static_cast<int>(z.size());
}
