#pragma once
// Elementwise binary ops: forward rule f(a, b) beside its partial derivatives
// da(a, b, y) = df/da and db(a, b, y) = df/db, with y = f(a, b).
#include "../detail/vmath.hpp"

namespace xgrad::ops {

namespace vm = xgrad::detail::vm;

struct add {
    static constexpr const char* name = "add";
    template <class V> XGRAD_HD V f(V a, V b) const { return a + b; }
    template <class V> XGRAD_HD V da(V, V, V) const { return V(1); }
    template <class V> XGRAD_HD V db(V, V, V) const { return V(1); }
};

struct sub {
    static constexpr const char* name = "sub";
    template <class V> XGRAD_HD V f(V a, V b) const { return a - b; }
    template <class V> XGRAD_HD V da(V, V, V) const { return V(1); }
    template <class V> XGRAD_HD V db(V, V, V) const { return V(-1); }
};

struct mul {
    static constexpr const char* name = "mul";
    template <class V> XGRAD_HD V f(V a, V b) const { return a * b; }
    template <class V> XGRAD_HD V da(V, V b, V) const { return b; }
    template <class V> XGRAD_HD V db(V a, V, V) const { return a; }
};

struct div {
    static constexpr const char* name = "div";
    template <class V> XGRAD_HD V f(V a, V b) const { return a / b; }
    template <class V> XGRAD_HD V da(V, V b, V) const { return V(1) / b; }    // d(a/b)/da = 1/b
    template <class V> XGRAD_HD V db(V, V b, V y) const { return -y / b; }    // d(a/b)/db = -a/b^2
};

/// Elementwise maximum; on ties the gradient is split evenly (as PyTorch).
struct maximum {
    static constexpr const char* name = "maximum";
    template <class V> XGRAD_HD V f(V a, V b) const { return vm::max(a, b); }
    template <class V> XGRAD_HD V da(V a, V b, V) const {
        return vm::select(a > b, V(1), vm::select(a < b, V(0), V(0.5)));
    }
    template <class V> XGRAD_HD V db(V a, V b, V) const {
        return vm::select(b > a, V(1), vm::select(b < a, V(0), V(0.5)));
    }
};

/// Elementwise minimum; on ties the gradient is split evenly (as PyTorch).
struct minimum {
    static constexpr const char* name = "minimum";
    template <class V> XGRAD_HD V f(V a, V b) const { return vm::min(a, b); }
    template <class V> XGRAD_HD V da(V a, V b, V) const {
        return vm::select(a < b, V(1), vm::select(a > b, V(0), V(0.5)));
    }
    template <class V> XGRAD_HD V db(V a, V b, V) const {
        return vm::select(b < a, V(1), vm::select(b > a, V(0), V(0.5)));
    }
};

}  // namespace xgrad::ops
