#pragma once
// Whole-expression operations on the CPU, each one fused loop: evaluate, reduce, and the
// backward passes; device_engine<device::cpu> (the interface of expr/device_engine.hpp) runs
// them for expression nodes and the top-level eval()/backward()/assign().
#include <cmath>

#include "../../expr/device_engine.hpp"
#include "../../expr/node.hpp"
#include "../../expr/reduce.hpp"
#include "assign.hpp"
#include "loop.hpp"

namespace xgrad::detail {

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

template <>
struct device_engine<device::cpu> {
    template <class E>
    static tensor<value_t<E>> eval(const E& e) {
        return cpu_eval(e);
    }

    template <class Red, class E>
    static tensor<value_t<E>> reduce(const E& e, const shape_t& keep_shape, std::size_t count) {
        using T = value_t<E>;
        if constexpr (std::is_same_v<Red, reductions::max>)
            return cpu_reduce<max_combine>(e, keep_shape);
        else if constexpr (std::is_same_v<Red, reductions::mean>)
            return cpu_reduce<plus_combine>(e, keep_shape, count ? T(1) / T(count) : T(NAN));
        else
            return cpu_reduce<plus_combine>(e, keep_shape);
    }

    template <class E>
    static void backward(const E& e, const tensor<value_t<E>>& up, value_t<E> scale) {
        cpu_backward(e, up, scale);
    }

    template <class E>
    static value_t<E> sum_backward(const E& e, value_t<E> g) {
        return cpu_sum_backward(e, g);
    }

    template <class E>
    static value_t<E> value_backward(const E& e) {
        return cpu_value_backward(e);
    }

    template <class E>
    static void max_backward(const E& e, const tensor<value_t<E>>& m, const tensor<value_t<E>>& up) {
        cpu_max_backward(e, m, up);
    }

    template <class... A>
    static void assign(const A&... a) {
        cpu_assign(a...);
    }
};

}  // namespace xgrad::detail
