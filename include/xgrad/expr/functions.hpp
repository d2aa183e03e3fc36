#pragma once
// The user-facing elementwise vocabulary: operators and functions that build expression
// nodes from tensors, parameters, expressions and numbers. Nothing is computed here.
#include <type_traits>

#include "binary_ops.hpp"
#include "node.hpp"
#include "unary_ops.hpp"

namespace xgrad {

namespace detail {
template <class Op, operand X>
auto make_unary(Op op, X&& x) {
    using E = expr_t<X>;
    static_assert(std::is_floating_point_v<typename E::value_type>,
                  "xgrad: elementwise math needs float or double elements");
    return unary_node<Op, E>(op, as_expr(std::forward<X>(x)));
}

/// A plain number next to an operand becomes a constant of the operand's element type.
template <class X, class Other>
auto as_operand_expr(X&& x) {
    if constexpr (std::is_arithmetic_v<std::remove_cvref_t<X>>)
        return constant_node<typename expr_t<Other>::value_type>(
            static_cast<typename expr_t<Other>::value_type>(x));
    else
        return as_expr(std::forward<X>(x));
}

template <class A, class B>
concept binary_args = (operand<A> && operand<B>) || (operand<A> && std::is_arithmetic_v<std::remove_cvref_t<B>>) ||
                      (std::is_arithmetic_v<std::remove_cvref_t<A>> && operand<B>);

template <class Op, class A, class B>
    requires binary_args<A, B>
auto make_binary(Op op, A&& a, B&& b) {
    auto l = as_operand_expr<A, std::conditional_t<operand<A>, A, B>>(std::forward<A>(a));
    auto r = as_operand_expr<B, std::conditional_t<operand<B>, B, A>>(std::forward<B>(b));
    static_assert(std::is_floating_point_v<typename decltype(l)::value_type>,
                  "xgrad: elementwise math needs float or double elements");
    return binary_node<Op, decltype(l), decltype(r)>(op, std::move(l), std::move(r));
}
}  // namespace detail

// --- unary ---------------------------------------------------------------------------
template <operand X> auto operator-(X&& x) { return detail::make_unary(ops::neg{}, std::forward<X>(x)); }
template <operand X> auto neg(X&& x) { return detail::make_unary(ops::neg{}, std::forward<X>(x)); }
template <operand X> auto abs(X&& x) { return detail::make_unary(ops::abs{}, std::forward<X>(x)); }
template <operand X> auto exp(X&& x) { return detail::make_unary(ops::exp{}, std::forward<X>(x)); }
template <operand X> auto log(X&& x) { return detail::make_unary(ops::log{}, std::forward<X>(x)); }
template <operand X> auto sqrt(X&& x) { return detail::make_unary(ops::sqrt{}, std::forward<X>(x)); }
template <operand X> auto square(X&& x) { return detail::make_unary(ops::square{}, std::forward<X>(x)); }
template <operand X> auto tanh(X&& x) { return detail::make_unary(ops::tanh{}, std::forward<X>(x)); }
template <operand X> auto sigmoid(X&& x) { return detail::make_unary(ops::sigmoid{}, std::forward<X>(x)); }
template <operand X> auto relu(X&& x) { return detail::make_unary(ops::relu{}, std::forward<X>(x)); }
template <operand X> auto gelu(X&& x) { return detail::make_unary(ops::gelu{}, std::forward<X>(x)); }
/// x if x > 0 else slope * x
template <operand X>
auto leaky_relu(X&& x, double slope = 0.01) {
    using T = typename expr_t<X>::value_type;
    return detail::make_unary(ops::leaky_relu<T>{static_cast<T>(slope)}, std::forward<X>(x));
}
/// x^p for a number p
template <operand X, class P>
    requires std::is_arithmetic_v<P>
auto pow(X&& x, P p) {
    using T = typename expr_t<X>::value_type;
    return detail::make_unary(ops::pow_scalar<T>{static_cast<T>(p)}, std::forward<X>(x));
}

// --- binary --------------------------------------------------------------------------
template <class A, class B> requires detail::binary_args<A, B>
auto operator+(A&& a, B&& b) { return detail::make_binary(ops::add{}, std::forward<A>(a), std::forward<B>(b)); }
template <class A, class B> requires detail::binary_args<A, B>
auto operator-(A&& a, B&& b) { return detail::make_binary(ops::sub{}, std::forward<A>(a), std::forward<B>(b)); }
template <class A, class B> requires detail::binary_args<A, B>
auto operator*(A&& a, B&& b) { return detail::make_binary(ops::mul{}, std::forward<A>(a), std::forward<B>(b)); }
template <class A, class B> requires detail::binary_args<A, B>
auto operator/(A&& a, B&& b) { return detail::make_binary(ops::div{}, std::forward<A>(a), std::forward<B>(b)); }
template <class A, class B> requires detail::binary_args<A, B>
auto maximum(A&& a, B&& b) { return detail::make_binary(ops::maximum{}, std::forward<A>(a), std::forward<B>(b)); }
template <class A, class B> requires detail::binary_args<A, B>
auto minimum(A&& a, B&& b) { return detail::make_binary(ops::minimum{}, std::forward<A>(a), std::forward<B>(b)); }

/// The parameter's value as a constant leaf: no gradient flows through it.
template <class T, class Device>
auto detach(const parameter<T, Device>& p) {
    return tensor_node<T, Device>(p.value());
}

}  // namespace xgrad
