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
//
// assign() checks the shapes and hands the assignments to device_engine<D>::assign, D being the
// destinations' device: on the CPU one fused loop (backend/cpu/assign.hpp), on a device one
// kernel over the loop.
#include <tuple>
#include <utility>

#include "device_engine.hpp"
#include "node.hpp"

namespace xgrad {

/// dst = e, to be run by assign(); built with into(dst, e).
template <class T, class E, class Device = device::cpu>
struct assignment {
    using device_type = Device;
    tensor<T, Device> dst;
    E e;
};

/// The assignment dst = x (x: an expression, a tensor or a parameter of element type T, on
/// dst's device).
template <class T, class D, operand X>
auto into(const tensor<T, D>& dst, X&& x) {
    using E = expr_t<X>;
    static_assert(std::is_same_v<typename E::value_type, T>,
                  "xgrad::into(dst, expr): expr must have the destination's element type");
    static_assert(std::is_same_v<typename detail::common_device<D, detail::device_of_t<E>>::type, D>);
    return assignment<T, E, D>{dst, as_expr(std::forward<X>(x))};
}

namespace detail {

/// The loop's shape: every destination's, and every expression must broadcast to it.
template <class... A>
const shape_t& assignment_shape(const A&... a) {
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
    return shape;
}

}  // namespace detail

/// Runs the assignments in one fused loop (see the top of this file); on a device, one kernel.
/// Every destination is on the same device.
template <class T, class D, class... E>
void assign(const assignment<T, E, D>&... a) {
    static_assert(sizeof...(E) > 0, "xgrad::assign: give at least one into(dst, expr)");
    detail::assignment_shape(a...);
    detail::device_engine<D>::assign(a...);
}

/// dst = x in one loop (x broadcasts to dst's shape).
template <class T, class D, operand X>
void assign(const tensor<T, D>& dst, X&& x) {
    xgrad::assign(into(dst, std::forward<X>(x)));
}

}  // namespace xgrad
