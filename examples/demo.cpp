// The fused autodiff engine in a few lines: one loop computes the loss and three gradients.
#include <cstdio>

#include <xgrad/xgrad.hpp>

int main() {
    xgrad::rng gen(42);
    auto x = xgrad::param(xgrad::randn<float>({1 << 20}, gen));
    auto w = xgrad::param(xgrad::randn<float>({1 << 20}, gen));
    auto b = xgrad::param(xgrad::zeros<float>({1}));                      // broadcasts
    auto loss = xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x));  // a type; nothing computed yet
    float value = xgrad::backward(loss);  // one fused pass: value + x, w, b gradients
    auto y = xgrad::eval(xgrad::relu(x.value()) * 2.0f);                 // forward only

    std::printf("loss = %.4f over %zu elements\n", value, x.size());
    std::printf("d loss / d b = %.4f\n", b.grad().item());
    std::printf("d loss / d x[0..2] = %.4f %.4f %.4f\n", x.grad()(0), x.grad()(1), x.grad()(2));
    std::printf("relu(x)*2 has %zu elements, y[0] = %.4f\n", y.size(), y(0));
    return (value == value && y.size() == (1u << 20)) ? 0 : 1;
}
