#pragma once
// Activation layers, as torch.nn.ReLU, LeakyReLU, GELU (exact, erf form), Tanh, Sigmoid,
// Softmax and LogSoftmax. The elementwise ones return elementwise expressions: next to a
// linear or conv2d they fuse into its output pass (relu(linear(x))), next to other elementwise
// work into the same loop.
#include <cmath>
#include <string>

#include "../ops/dense.hpp"
#include "../ops/nn_functional.hpp"
#include "module.hpp"

namespace xgrad::nn {

/// max(x, 0)
class relu : public module<relu> {
public:
    static constexpr const char* kind = "relu";
    template <operand X>
    auto forward(X&& x) {
        return xgrad::relu(std::forward<X>(x));
    }
};

/// x if x > 0 else negative_slope * x
class leaky_relu : public module<leaky_relu> {
public:
    static constexpr const char* kind = "leaky_relu";
    explicit leaky_relu(double negative_slope = 0.01) : slope_(negative_slope) {
        if (!std::isfinite(negative_slope))
            throw value_error("leaky_relu: negative_slope must be finite, got " + std::to_string(negative_slope));
    }
    template <operand X>
    auto forward(X&& x) {
        return xgrad::leaky_relu(std::forward<X>(x), slope_);
    }
    double negative_slope() const { return slope_; }

private:
    double slope_;
};

/// x Phi(x), Phi the standard normal CDF (Hendrycks & Gimpel, 2016)
class gelu : public module<gelu> {
public:
    static constexpr const char* kind = "gelu";
    template <operand X>
    auto forward(X&& x) {
        return xgrad::gelu(std::forward<X>(x));
    }
};

class tanh : public module<tanh> {
public:
    static constexpr const char* kind = "tanh";
    template <operand X>
    auto forward(X&& x) {
        return xgrad::tanh(std::forward<X>(x));
    }
};

/// 1 / (1 + e^-x)
class sigmoid : public module<sigmoid> {
public:
    static constexpr const char* kind = "sigmoid";
    template <operand X>
    auto forward(X&& x) {
        return xgrad::sigmoid(std::forward<X>(x));
    }
};

/// exp(x_i) / sum_j exp(x_j) along dim (default: the last)
class softmax : public module<softmax> {
public:
    static constexpr const char* kind = "softmax";
    explicit softmax(std::ptrdiff_t dim = -1) : dim_(dim) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::softmax(std::forward<X>(x), dim_);
    }
    std::ptrdiff_t dim() const { return dim_; }

private:
    std::ptrdiff_t dim_;
};

/// x_i - log sum_j exp(x_j) along dim (default: the last)
class log_softmax : public module<log_softmax> {
public:
    static constexpr const char* kind = "log_softmax";
    explicit log_softmax(std::ptrdiff_t dim = -1) : dim_(dim) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::log_softmax(std::forward<X>(x), dim_);
    }
    std::ptrdiff_t dim() const { return dim_; }

private:
    std::ptrdiff_t dim_;
};

}  // namespace xgrad::nn
