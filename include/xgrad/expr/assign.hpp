#pragma once
// Assignment of expressions into existing tensors, several at once in one fused loop:
//
//   assign(into(m, m + (1 - b1) * (g - m)),
//          into(p, p - lr * m));
//
// Per element the assignments run in the order given, so a later expression that reads an
// earlier destination sees its new value (here p uses the updated m), exactly as the sequence
// of in-place statements would. Each operand is read from memory once per element and each
// destination written once: this is how optimizers update a parameter and its state in one pass.
//
// Requirements: every destination has the same shape (the loop's), every expression broadcasts
// to it, and a destination that an expression also reads is read through the same layout (the
// same tensor, not a transposed or shifted view of it).
#include <array>
#include <tuple>
#include <utility>

#include "../autodiff/pass.hpp"
#include "../backend/cpu/engine.hpp"
#include "node.hpp"

namespace xgrad {

/// dst = e, to be run by assign(); built with into(dst, e).
template <class T, class E>
struct assignment {
    tensor<T> dst;
    E e;
};

/// The assignment dst = x (x: an expression, a tensor or a parameter of element type T).
template <class T, operand X>
auto into(const tensor<T>& dst, X&& x) {
    using E = expr_t<X>;
    static_assert(std::is_same_v<typename E::value_type, T>,
                  "xgrad::into(dst, expr): expr must have the destination's element type");
    return assignment<T, E>{dst, as_expr(std::forward<X>(x))};
}

namespace detail {

/// One iteration stores every expression's value into its destination, in order.
template <class T, class... K>
struct assign_root {
    std::tuple<K...> k;
    std::array<output_operand<T>, sizeof...(K)> out;

    template <class V>
    XGRAD_INLINE void step(std::ptrdiff_t j) {
        step_all<V>(j, std::index_sequence_for<K...>{});
    }
    template <class V, std::size_t... I>
    XGRAD_INLINE void step_all(std::ptrdiff_t j, std::index_sequence<I...>) {
        (out[I].store(j, std::get<I>(k).template fwd<V>(j).v), ...);  // comma fold: left to right
    }
    template <class F>
    void visit(F&& f) {
        std::apply([&](auto&... ks) { (ks.visit(f), ...); }, k);
        for (auto& o : out) f(o);
    }
};

template <class T, class... E>
void cpu_assign(const assignment<T, E>&... a) {
    const shape_t& shape = std::get<0>(std::tie(a...)).dst.shape();
    auto check = [&](const auto& x) {
        if (x.dst.shape() != shape)
            throw shape_error("assign: destinations of shapes " + to_string(shape) + " and " +
                              to_string(x.dst.shape()) + " differ; one loop needs one shape");
        if (broadcast_shapes(shape, x.e.shape(), "assign") != shape)
            throw shape_error("assign: expression of shape " + to_string(x.e.shape()) +
                              " does not broadcast to its destination's shape " + to_string(shape));
    };
    (check(a), ...);
    pass_scope pass;
    loop_ctx<T> ctx(shape, false);
    using Root = assign_root<T, decltype(a.e.kernel(ctx))...>;
    // kernels are built left to right (a braced list is sequenced)
    Root root{std::tuple{a.e.kernel(ctx)...}, {ctx.assign_output(a.dst)...}};
    execute(root, ctx);
}

}  // namespace detail

/// Runs the assignments in one fused loop (see the top of this file).
template <class T, class... E>
void assign(const assignment<T, E>&... a) {
    static_assert(sizeof...(E) > 0, "xgrad::assign: give at least one into(dst, expr)");
    detail::cpu_assign(a...);
}

/// dst = x in one loop (x broadcasts to dst's shape).
template <class T, operand X>
void assign(const tensor<T>& dst, X&& x) {
    detail::cpu_assign(into(dst, std::forward<X>(x)));
}

}  // namespace xgrad
