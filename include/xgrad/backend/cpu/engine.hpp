#pragma once
// Whole-expression operations on the CPU, each one fused loop: evaluate, reduce, and the
// backward passes. Expression nodes and the top-level eval()/backward() call these.
#include "../../expr/node.hpp"
#include "loop.hpp"

namespace xgrad::detail {

template <class E>
using value_t = typename std::remove_cvref_t<E>::value_type;

/// out = e, a new contiguous tensor of e's shape.
template <class E>
tensor<value_t<E>> cpu_eval(const E& e) {
    using T = value_t<E>;
    auto out = tensor<T>::uninitialized(e.shape());
    loop_ctx<T> ctx(e.shape(), false);
    auto k = e.kernel(ctx);
    eval_root<decltype(k), T> root{k, ctx.assign_output(out)};
    execute(root, ctx);
    return out;
}

/// e combined (C: plus or max) over the axes where `keep_shape` has extent 1 and e's shape
/// does not; the result has `keep_shape`. `scale` multiplies the result (mean).
template <class C, class E>
tensor<value_t<E>> cpu_reduce(const E& e, const shape_t& keep_shape, value_t<E> scale = 1) {
    using T = value_t<E>;
    auto out = tensor<T>::uninitialized(keep_shape);
    loop_ctx<T> ctx(e.shape(), false);
    auto k = e.kernel(ctx);
    reduce_root<decltype(k), T, C> root{k, ctx.template combine_output<C>(out, true)};
    execute(root, ctx);
    if (scale != T(1))
        for (std::size_t i = 0; i < out.size(); ++i) out.data()[i] *= scale;
    return out;
}

/// Pushes the upstream gradient `up` (broadcastable to e's shape) times `scale` into e's leaves.
template <class E>
void cpu_backward(const E& e, const tensor<value_t<E>>& up, value_t<E> scale = 1) {
    using T = value_t<E>;
    if constexpr (E::has_grad) {
        broadcast_shapes(e.shape(), up.shape(), "backward");
        loop_ctx<T> ctx(e.shape(), true);
        auto k = e.kernel(ctx);
        upstream_root<decltype(k), T> root{k, ctx.input(up), scale};
        execute(root, ctx);
    }
}

/// One loop: returns sum(e) * g and pushes the constant upstream gradient g into e's leaves.
template <class E>
value_t<E> cpu_sum_backward(const E& e, value_t<E> g) {
    using T = value_t<E>;
    auto total = tensor<T>::uninitialized({});
    loop_ctx<T> ctx(e.shape(), true);
    auto k = e.kernel(ctx);
    sum_backward_root<decltype(k), T> root{k, ctx.template combine_output<plus_combine>(total, true), g};
    execute(root, ctx);
    return total.data()[0] * g;
}

/// One loop over a scalar-shaped expression: its value, and d(expr)/d(leaf) into the leaves.
template <class E>
value_t<E> cpu_value_backward(const E& e) {
    using T = value_t<E>;
    auto value = tensor<T>::uninitialized({});
    loop_ctx<T> ctx(e.shape(), E::has_grad);
    auto k = e.kernel(ctx);
    sum_backward_root<decltype(k), T> root{k, ctx.template combine_output<plus_combine>(value, true), T(1)};
    execute(root, ctx);
    return value.data()[0];
}

/// Backward of max over the axes reduced in `m` (keep-dims shape): gradient to the maxima,
/// split evenly among ties.
template <class E>
void cpu_max_backward(const E& e, const tensor<value_t<E>>& m, const tensor<value_t<E>>& up) {
    using T = value_t<E>;
    if constexpr (E::has_grad) {
        auto count = tensor<T>::uninitialized(m.shape());
        {
            loop_ctx<T> ctx(e.shape(), false);
            auto k = e.kernel(ctx);
            count_equal_root<decltype(k), T> root{k, ctx.input(m), ctx.template combine_output<plus_combine>(count, true)};
            execute(root, ctx);
        }
        loop_ctx<T> ctx(e.shape(), true);
        auto k = e.kernel(ctx);
        max_backward_root<decltype(k), T> root{k, ctx.input(up), ctx.input(m), ctx.input(count)};
        execute(root, ctx);
    }
}

}  // namespace xgrad::detail
