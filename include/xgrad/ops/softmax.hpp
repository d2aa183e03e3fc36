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
#include <type_traits>

#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"
#include "detail/line.hpp"

namespace xgrad {

namespace detail {

/// y = softmax (Log = false) or log_softmax (Log = true) of one line of x (see line.hpp); y may
/// alias x. The formula of every backend: the CPU runs it on SIMD lanes, a device per thread.
template <bool Log, class L, class T>
XGRAD_HD XGRAD_INLINE void softmax_line(const L& line, const T* x, T* y) {
    const auto m = line.max([&]<class V>(std::size_t i) { return load<V>(x + line.at(i)); });
    using S = std::remove_const_t<decltype(m)>;  // T, or one value per lane
    if constexpr (Log) {
        const S ls = vm::log(line.sum([&]<class V>(std::size_t i) { return V(vm::exp(load<V>(x + line.at(i)) - V(m))); }));
        // (x - m) - log s: exact where x == m, unlike x - (m + log s)
        line.each([&]<class V>(std::size_t i) {
            const std::size_t k = line.at(i);
            store(V((load<V>(x + k) - V(m)) - V(ls)), y + k);
        });
    } else {
        const S s = line.sum([&]<class V>(std::size_t i) {
            const std::size_t k = line.at(i);
            const V e = vm::exp(load<V>(x + k) - V(m));
            store(e, y + k);
            return e;
        });
        const S r = S(T(1)) / s;
        line.each([&]<class V>(std::size_t i) {
            const std::size_t k = line.at(i);
            store(V(load<V>(y + k) * V(r)), y + k);
        });
    }
}

/// dx of one line from the upstream gradient g and the saved output y (see the header
/// comment); dx may alias g.
template <bool Log, class L, class T>
XGRAD_HD XGRAD_INLINE void softmax_line_backward(const L& line, const T* g, const T* y, T* dx) {
    // sum g (log_softmax) or sum g y (softmax)
    const auto acc = line.sum([&]<class V>(std::size_t i) {
        const std::size_t k = line.at(i);
        if constexpr (Log)
            return load<V>(g + k);
        else
            return V(load<V>(g + k) * load<V>(y + k));
    });
    line.each([&]<class V>(std::size_t i) {
        const std::size_t k = line.at(i);
        if constexpr (Log)
            store(V(load<V>(g + k) - vm::exp(load<V>(y + k)) * V(acc)), dx + k);
        else
            store(V(load<V>(y + k) * (load<V>(g + k) - V(acc))), dx + k);
    });
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
            if (inner == 1) {  // a contiguous line: SIMD along it
                if constexpr (Backward)
                    softmax_line_backward<Log>(contiguous_line<T>{n}, a + base, b + base, out + base);
                else
                    softmax_line<Log>(contiguous_line<T>{n}, a + base, out + base);
                continue;
            }
            // strided lines: SIMD lanes across neighbouring lines
            auto run = [&]<class V>(std::size_t at) {
                if constexpr (Backward)
                    softmax_line_backward<Log>(strided_lines<V>{n, inner}, a + at, b + at, out + at);
                else
                    softmax_line<Log>(strided_lines<V>{n, inner}, a + at, out + at);
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
