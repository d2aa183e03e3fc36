// Must NOT compile: backward() of an expression that is not reduced to a scalar.
#include <xgrad/xgrad.hpp>
int main() {
    auto x = xgrad::param(xgrad::ones<float>({3}));
    xgrad::backward(xgrad::tanh(x) * 2.0f);
}
