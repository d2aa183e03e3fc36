#pragma once
// Whole-expression operations on a Thrust device, each one loop (one for_each) plus at most
// one merge launch: what eval(), backward() and the reductions call for device expressions.
#include <cmath>

#include "../../expr/device_engine.hpp"
#include "../../expr/pass.hpp"
#include "../../expr/reduce.hpp"
#include "loop.hpp"

namespace xgrad {

namespace detail {

namespace thrust_backend {
/// The assign_link chain of assignments a, ..., kernels built left to right.
template <class T, class D>
assign_end assign_chain(loop_ctx<T, D>&) {
    return {};
}
template <class T, class D, class A, class... Rest>
auto assign_chain(loop_ctx<T, D>& ctx, const A& a, const Rest&... rest) {
    auto k = a.e.kernel(ctx);
    auto out = ctx.output(a.dst);
    auto next = assign_chain(ctx, rest...);
    return assign_link<decltype(k), T, decltype(next)>{k, out, next};
}
}  // namespace thrust_backend

template <thrust_device D>
struct device_engine<D> {
    /// out = e, a new contiguous tensor of e's shape.
    template <class E>
    static tensor<value_t<E>, D> eval(const E& e) {
        using T = value_t<E>;
        auto out = tensor<T, D>::uninitialized(e.shape());
        thrust_backend::loop_ctx<T, D> ctx(e.shape(), false);
        auto k = e.kernel(ctx);
        thrust_backend::eval_root<decltype(k), T> root{k, ctx.output(out)};
        ctx.run(root);
        return out;
    }

    /// The assignments assign(into(dst, e), ...) in one loop over the destinations' shape
    /// (checked by the caller): each position stores every e in order.
    template <class A0, class... A>
    static void assign(const A0& a0, const A&... a) {
        using T = typename decltype(a0.dst)::value_type;
        pass_scope pass;
        thrust_backend::loop_ctx<T, D> ctx(a0.dst.shape(), false);
        auto root = thrust_backend::assign_chain(ctx, a0, a...);
        ctx.run(root);
    }

    /// Red (sum, mean or max) of e over the axes where keep_shape is 1 and e's shape is not.
    template <class Red, class E>
    static tensor<value_t<E>, D> reduce(const E& e, const shape_t& keep_shape, std::size_t count) {
        using T = value_t<E>;
        constexpr bool is_max = std::is_same_v<Red, reductions::max>;
        constexpr bool is_mean = std::is_same_v<Red, reductions::mean>;
        const T scale = is_mean ? (count ? T(1) / T(count) : T(NAN)) : T(1);
        auto out = tensor<T, D>::uninitialized(keep_shape);
        thrust_backend::loop_ctx<T, D> ctx(e.shape(), false);
        auto k = e.kernel(ctx);
        constexpr auto C = is_max ? thrust_backend::combine::max : thrust_backend::combine::plus;
        thrust_backend::reduce_root<decltype(k), T, C> root{k, ctx.template partial_output<C>(out, true, scale)};
        ctx.run(root);
        return out;
    }

    /// Pushes up (broadcastable to e's shape) times scale into e's leaves.
    template <class E>
    static void backward(const E& e, const tensor<value_t<E>, D>& up, value_t<E> scale) {
        using T = value_t<E>;
        if constexpr (E::has_grad) {
            broadcast_shapes(e.shape(), up.shape(), "backward");
            thrust_backend::loop_ctx<T, D> ctx(e.shape(), true);
            auto k = e.kernel(ctx);
            thrust_backend::upstream_root<decltype(k), T> root{k, ctx.input(up), scale};
            ctx.run(root);
        }
    }

    /// sum(e) * g, and the constant upstream gradient g into e's leaves, in one loop.
    template <class E>
    static value_t<E> sum_backward(const E& e, value_t<E> g) {
        using T = value_t<E>;
        auto total = tensor<T, D>::uninitialized({});
        thrust_backend::loop_ctx<T, D> ctx(e.shape(), true);
        auto k = e.kernel(ctx);
        thrust_backend::sum_backward_root<decltype(k), T> root{
            k, ctx.template partial_output<thrust_backend::combine::plus>(total, true), g};
        ctx.run(root);
        return total.item() * g;
    }

    /// A one-element expression's value, and d(e)/d(leaf) into the leaves.
    template <class E>
    static value_t<E> value_backward(const E& e) {
        using T = value_t<E>;
        auto value = tensor<T, D>::uninitialized({});
        thrust_backend::loop_ctx<T, D> ctx(e.shape(), E::has_grad);
        auto k = e.kernel(ctx);
        thrust_backend::sum_backward_root<decltype(k), T> root{
            k, ctx.template partial_output<thrust_backend::combine::plus>(value, true), T(1)};
        ctx.run(root);
        return value.item();
    }

    /// Backward of max over the axes reduced in m (keep-dims shape): the gradient goes to the
    /// maxima, split evenly among ties.
    template <class E>
    static void max_backward(const E& e, const tensor<value_t<E>, D>& m, const tensor<value_t<E>, D>& up) {
        using T = value_t<E>;
        if constexpr (E::has_grad) {
            auto count = tensor<T, D>::uninitialized(m.shape());
            {
                thrust_backend::loop_ctx<T, D> ctx(e.shape(), false);
                auto k = e.kernel(ctx);
                thrust_backend::count_equal_root<decltype(k), T> root{
                    k, ctx.input(m), ctx.template partial_output<thrust_backend::combine::plus>(count, true)};
                ctx.run(root);
            }
            thrust_backend::loop_ctx<T, D> ctx(e.shape(), true);
            auto k = e.kernel(ctx);
            thrust_backend::max_backward_root<decltype(k), T> root{k, ctx.input(up), ctx.input(m), ctx.input(count)};
            ctx.run(root);
        }
    }
};

}  // namespace detail
}  // namespace xgrad
