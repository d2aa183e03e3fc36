#pragma once
// softmax and log_softmax along one axis: barrier ops (each output element depends on the
// whole line along the axis). Numerically stable: the line's maximum m is subtracted first,
//   softmax(x)_i     = exp(x_i - m) / sum_j exp(x_j - m)
//   log_softmax(x)_i = (x_i - m) - log(sum_j exp(x_j - m))
// Backward, with y the saved output and g the upstream gradient (per line):
//   softmax:      dx = y * (g - sum_j g_j y_j)
//   log_softmax:  dx = g - exp(y) * sum_j g_j
#include <array>
#include <cmath>

#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"

namespace xgrad {

namespace detail {

// --- contiguous lines (the axis is the last non-trivial one): SIMD along the line ---------

/// y = softmax or log_softmax of the n contiguous values at x. y may alias x.
template <bool Log, class T>
void softmax_line(const T* x, T* y, std::size_t n) {
    if (n == 0) return;
    const T m = simd_max<T>(n, [&]<class V>(std::size_t j) { return load<V>(x + j); });
    if constexpr (Log) {
        const T s = simd_sum<T>(n, [&]<class V>(std::size_t j) { return vm::exp(load<V>(x + j) - V(m)); });
        const T ls = std::log(s);  // (x - m) - log s: exact where x == m, unlike x - (m + log s)
        simd_for<T>(n, [&]<class V>(std::size_t j) { store(V((load<V>(x + j) - V(m)) - V(ls)), y + j); });
    } else {
        const T s = simd_sum<T>(n, [&]<class V>(std::size_t j) {
            const V e = vm::exp(load<V>(x + j) - V(m));
            store(e, y + j);
            return e;
        });
        const T r = T(1) / s;
        simd_for<T>(n, [&]<class V>(std::size_t j) { store(V(load<V>(y + j) * V(r)), y + j); });
    }
}

/// dx for one contiguous line (see the header comment). dx may alias g.
template <bool Log, class T>
void softmax_line_backward(const T* g, const T* y, T* dx, std::size_t n) {
    if constexpr (Log) {
        const T gs = simd_sum<T>(n, [&]<class V>(std::size_t j) { return load<V>(g + j); });
        simd_for<T>(n, [&]<class V>(std::size_t j) {
            store(V(load<V>(g + j) - vm::exp(load<V>(y + j)) * V(gs)), dx + j);
        });
    } else {
        const T dot = simd_sum<T>(n, [&]<class V>(std::size_t j) { return V(load<V>(g + j) * load<V>(y + j)); });
        simd_for<T>(n, [&]<class V>(std::size_t j) {
            store(V(load<V>(y + j) * (load<V>(g + j) - V(dot))), dx + j);
        });
    }
}

// --- strided lines (inner > 1): lanes run across neighbouring lines ----------------------

/// V-wide group of lines, each n long with stride s between its elements.
template <bool Log, class V, class T>
XGRAD_INLINE void softmax_lanes(const T* x, T* y, std::size_t n, std::size_t s) {
    V m = load<V>(x);
    for (std::size_t i = 1; i < n; ++i) m = vm::max(m, load<V>(x + i * s));
    V sum(T(0));
    for (std::size_t i = 0; i < n; ++i) {
        const V e = vm::exp(load<V>(x + i * s) - m);
        sum += e;
        if constexpr (!Log) store(e, y + i * s);
    }
    if constexpr (Log) {
        const V ls = vm::log(sum);
        for (std::size_t i = 0; i < n; ++i) store(V((load<V>(x + i * s) - m) - ls), y + i * s);
    } else {
        const V r = V(T(1)) / sum;
        for (std::size_t i = 0; i < n; ++i) store(V(load<V>(y + i * s) * r), y + i * s);
    }
}

template <bool Log, class V, class T>
XGRAD_INLINE void softmax_lanes_backward(const T* g, const T* y, T* dx, std::size_t n, std::size_t s) {
    V acc(T(0));  // sum g (log_softmax) or sum g y (softmax)
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (Log)
            acc += load<V>(g + i * s);
        else
            acc += load<V>(g + i * s) * load<V>(y + i * s);
    }
    for (std::size_t i = 0; i < n; ++i) {
        const V gi = load<V>(g + i * s), yi = load<V>(y + i * s);
        if constexpr (Log)
            store(V(gi - vm::exp(yi) * acc), dx + i * s);
        else
            store(V(yi * (gi - acc)), dx + i * s);
    }
}

/// Runs the forward (a = x) or backward (a = g, b = y) kernel over every line of layout l.
template <bool Log, bool Backward, class T>
void softmax_apply(const axis_layout& l, const T* a, const T* b, T* out) {
    using B = simd_t<T>;
    const std::size_t n = l.extent, inner = l.inner, line = n * inner;
    if (n == 0) return;
    parallel_rows(l.outer, line, [&](std::size_t o0, std::size_t o1) {
        for (std::size_t o = o0; o < o1; ++o) {
            const std::size_t base = o * line;
            if (inner == 1) {
                if constexpr (Backward)
                    softmax_line_backward<Log>(a + base, b + base, out + base, n);
                else
                    softmax_line<Log>(a + base, out + base, n);
                continue;
            }
            auto run = [&]<class V>(std::size_t at) {
                if constexpr (Backward)
                    softmax_lanes_backward<Log, V>(a + at, b + at, out + at, n, inner);
                else
                    softmax_lanes<Log, V>(a + at, out + at, n, inner);
            };
            std::size_t k = 0;
            for (; k + B::size <= inner; k += B::size) run.template operator()<B>(base + k);
            for (; k < inner; ++k) run.template operator()<T>(base + k);
        }
    });
}

/// The op_node Impl for softmax (Log = false) and log_softmax (Log = true).
template <bool Log>
struct softmax_impl {
    static constexpr const char* name = Log ? "log_softmax" : "softmax";
    std::size_t axis;

    shape_t output_shape(const shape_t& s) const { return s; }

    template <class T>
    tensor<T> forward(const tensor<T>& x) const {
        auto y = tensor<T>::uninitialized(x.shape());
        softmax_apply<Log, false>(layout_along(x.shape(), axis), x.data(), static_cast<const T*>(nullptr), y.data());
        return y;
    }

    template <class T>
    void backward(const tensor<T>& g, const tensor<T>& y, const std::array<tensor<T>, 1>&,
                  std::array<tensor<T>*, 1> dx) const {
        if (dx[0]) softmax_apply<Log, true>(layout_along(y.shape(), axis), g.data(), y.data(), dx[0]->data());
    }
};

template <bool Log, operand X>
auto make_softmax(X&& x, std::ptrdiff_t axis) {
    auto e = as_expr(std::forward<X>(x));
    static_assert(std::is_floating_point_v<typename decltype(e)::value_type>,
                  "xgrad::softmax/log_softmax: elements must be float or double");
    if (e.shape().empty())
        throw shape_error(std::string(softmax_impl<Log>::name) + ": input must have at least one dimension, got shape {}");
    const std::size_t a = normalize_axis(axis, e.shape().size(), softmax_impl<Log>::name);
    return make_op(softmax_impl<Log>{a}, std::move(e));
}

}  // namespace detail

/// softmax along `axis` (default: the last): non-negative, sums to 1 along the axis.
template <operand X>
auto softmax(X&& x, std::ptrdiff_t axis = -1) {
    return detail::make_softmax<false>(std::forward<X>(x), axis);
}

/// log(softmax(x)) along `axis`, computed without forming softmax (stable for large |x|).
template <operand X>
auto log_softmax(X&& x, std::ptrdiff_t axis = -1) {
    return detail::make_softmax<true>(std::forward<X>(x), axis);
}

}  // namespace xgrad
