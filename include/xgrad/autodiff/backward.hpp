#pragma once
// eval() and backward(): the two ways to run an expression. Both run it through
// device_engine<D> (expr/device_engine.hpp), D being where its leaves live; the CPU's is
// included here, a device's with its backend (<xgrad/device.hpp>).
#include <cmath>
#include <type_traits>

#include "../backend/cpu/engine.hpp"
#include "../expr/op_node.hpp"
#include "../expr/pass.hpp"
#include "../expr/reduce.hpp"
#include "hooks.hpp"

namespace xgrad {

namespace detail {
template <class E>
struct full_sum_root : std::false_type {};
template <class E>
struct full_sum_root<reduce_node<reductions::sum, E, true>> : std::true_type {
    using reduction = reductions::sum;
};
template <class E>
struct full_sum_root<reduce_node<reductions::mean, E, true>> : std::true_type {
    using reduction = reductions::mean;
};
template <class E>
struct is_reduce : std::false_type {};
template <class R, class E, bool F>
struct is_reduce<reduce_node<R, E, F>> : std::true_type {};
}  // namespace detail

/// Computes an expression (no gradients) into a new contiguous tensor on its leaves' device.
template <operand X>
auto eval(X&& x) {
    detail::pass_scope pass;
    auto e = as_expr(std::forward<X>(x));
    using E = decltype(e);
    using Dev = detail::expr_device_t<E>;
    if constexpr (detail::is_reduce<E>::value || detail::materializable<E>)
        return e.forward_value();  // already a fresh tensor: no copy
    else
        return detail::device_engine<Dev>::eval(e);
}

/// Reverse mode: accumulates d(expr)/d(leaf) into every parameter's grad() and returns the
/// expression's value. `expr` must reduce to a scalar; sum(...) and mean(...) at the root
/// run value and all gradients in one fused loop.
template <expression E>
typename E::value_type backward(const E& e) {
    static_assert(E::is_scalar,
                  "xgrad::backward(expr): expr must reduce to a scalar: wrap it in sum()/mean(), or pass the "
                  "upstream gradient explicitly with backward(expr, upstream)");
    using T = typename E::value_type;
    using engine = detail::device_engine<detail::expr_device_t<E>>;
    detail::pass_scope pass;
    detail::hooked_backward hooks(e);  // gradient-ready hooks (autodiff/hooks.hpp), if any
    T value;
    if constexpr (detail::full_sum_root<E>::value && E::has_grad) {
        using Red = typename detail::full_sum_root<E>::reduction;
        T g = T(1);
        if constexpr (std::is_same_v<Red, reductions::mean>) {
            const auto n = numel(e.e.shape());
            if (n == 0) return T(NAN);
            g = T(1) / T(n);
        }
        value = engine::sum_backward(e.e, g);
    } else {
        value = engine::value_backward(e);
    }
    hooks.finish();
    return value;
}

/// Reverse mode with an explicit upstream gradient (broadcastable to expr's shape), on the
/// expression's device.
template <expression E>
void backward(const E& e, const tensor<typename E::value_type, detail::expr_device_t<E>>& upstream) {
    if (broadcast_shapes(e.shape(), upstream.shape(), "backward") != e.shape())
        throw shape_error("backward: upstream gradient of shape " + to_string(upstream.shape()) +
                          " does not broadcast to the expression's shape " + to_string(e.shape()));
    detail::pass_scope pass;
    if constexpr (E::has_grad) {
        detail::hooked_backward hooks(e);
        detail::device_engine<detail::expr_device_t<E>>::backward(e, upstream, typename E::value_type(1));
        hooks.finish();
    }
}

}  // namespace xgrad
