#pragma once
// Elementwise unary ops. Each op is a small struct holding its forward rule f(x) and its
// derivative rule df(x, y) side by side, where y = f(x) is passed in so rules can reuse it.
// Rules are templates over V (a scalar or a SIMD batch), so one definition serves every loop.
// Adding an op: write its struct here and one line in expr/functions.hpp.
#include "../detail/vmath.hpp"

namespace xgrad::ops {

namespace vm = xgrad::detail::vm;

struct neg {
    static constexpr const char* name = "neg";
    template <class V> XGRAD_HD V f(V x) const { return -x; }
    template <class V> XGRAD_HD V df(V, V) const { return V(-1); }  // d(-x) = -1
};

struct abs {
    static constexpr const char* name = "abs";
    template <class V> XGRAD_HD V f(V x) const { return vm::abs(x); }
    // d|x| = sign(x), 0 at x = 0 (as PyTorch)
    template <class V> XGRAD_HD V df(V x, V) const {
        return vm::select(x > V(0), V(1), vm::select(x < V(0), V(-1), V(0)));
    }
};

struct exp {
    static constexpr const char* name = "exp";
    template <class V> XGRAD_HD V f(V x) const { return vm::exp(x); }
    template <class V> XGRAD_HD V df(V, V y) const { return y; }  // d e^x = e^x
};

struct log {
    static constexpr const char* name = "log";
    template <class V> XGRAD_HD V f(V x) const { return vm::log(x); }
    template <class V> XGRAD_HD V df(V x, V) const { return V(1) / x; }  // d ln x = 1/x
};

struct sqrt {
    static constexpr const char* name = "sqrt";
    template <class V> XGRAD_HD V f(V x) const { return vm::sqrt(x); }
    template <class V> XGRAD_HD V df(V, V y) const { return V(0.5) / y; }  // d sqrt(x) = 1 / (2 sqrt(x))
};

struct square {
    static constexpr const char* name = "square";
    template <class V> XGRAD_HD V f(V x) const { return x * x; }
    template <class V> XGRAD_HD V df(V x, V) const { return V(2) * x; }  // d x^2 = 2x
};

struct tanh {
    static constexpr const char* name = "tanh";
    template <class V> XGRAD_HD V f(V x) const { return vm::tanh(x); }
    template <class V> XGRAD_HD V df(V, V y) const { return V(1) - y * y; }  // d tanh = 1 - tanh^2
};

struct sigmoid {
    static constexpr const char* name = "sigmoid";
    template <class V> XGRAD_HD V f(V x) const { return V(1) / (V(1) + vm::exp(-x)); }
    template <class V> XGRAD_HD V df(V, V y) const { return y * (V(1) - y); }  // d s = s (1 - s)
};

struct relu {
    static constexpr const char* name = "relu";
    template <class V> XGRAD_HD V f(V x) const { return vm::max(x, V(0)); }
    template <class V> XGRAD_HD V df(V x, V) const { return vm::select(x > V(0), V(1), V(0)); }  // 0 at x = 0
};

template <class T>
struct leaky_relu {
    static constexpr const char* name = "leaky_relu";
    T slope;
    template <class V> XGRAD_HD V f(V x) const { return vm::select(x > V(0), x, V(slope) * x); }
    template <class V> XGRAD_HD V df(V x, V) const { return vm::select(x > V(0), V(1), V(slope)); }
};

/// Exact GELU: x * Phi(x), Phi the standard normal CDF.
struct gelu {
    static constexpr const char* name = "gelu";
    template <class V> XGRAD_HD V f(V x) const { return V(0.5) * x * (V(1) + vm::erf(x * V(0.70710678118654752440))); }
    // d gelu = Phi(x) + x * phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
    template <class V> XGRAD_HD V df(V x, V) const {
        const V cdf = V(0.5) * (V(1) + vm::erf(x * V(0.70710678118654752440)));
        return cdf + x * V(0.39894228040143267794) * vm::exp(V(-0.5) * x * x);
    }
};

/// x^p for a scalar exponent p.
template <class T>
struct pow_scalar {
    static constexpr const char* name = "pow";
    T p;
    template <class V> XGRAD_HD V f(V x) const { return vm::pow(x, V(p)); }
    template <class V> XGRAD_HD V df(V x, V) const { return V(p) * vm::pow(x, V(p - T(1))); }  // d x^p = p x^(p-1)
};

}  // namespace xgrad::ops
