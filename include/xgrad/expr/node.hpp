#pragma once
// Expression nodes: thin descriptions of a computation (operands + op), built by the
// functions in expr/functions.hpp. Nodes hold child nodes by value and leaves as shared
// handles, so an expression kept in an `auto` variable never dangles. Executing a node is
// the job of a backend: node.kernel(ctx) asks the backend's ctx for leaf kernels and wraps
// them in the composite kernels of expr/kernels.hpp.
#include <algorithm>
#include <concepts>
#include <type_traits>
#include <vector>

#include "../core/parameter.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"
#include "kernels.hpp"

namespace xgrad {

/// Base of every expression node (a tag; no virtual functions).
struct expression_base {};

/// An xgrad expression node.
template <class E>
concept expression = std::derived_from<std::remove_cvref_t<E>, expression_base>;

namespace detail {
template <class X>
struct is_tensor : std::false_type {};
template <class T, class D>
struct is_tensor<tensor<T, D>> : std::true_type {};
template <class X>
struct is_parameter : std::false_type {};
template <class T, class D>
struct is_parameter<parameter<T, D>> : std::true_type {};
inline const shape_t& scalar_shape() {
    static const shape_t s{};
    return s;
}

/// The device of a constant: it goes with any other operand.
struct any_device {};

/// Where an expression's leaves live: E::device_type, or the CPU for nodes that do not say
/// (barrier ops and other materializing nodes run on the CPU unless a backend says otherwise).
template <class E>
struct device_of {
    using type = device::cpu;
};
template <class E>
    requires requires { typename E::device_type; }
struct device_of<E> {
    using type = typename E::device_type;
};
template <class E>
using device_of_t = typename device_of<E>::type;

template <class A, class B>
struct common_device {
    static_assert(std::is_same_v<A, B> || std::is_same_v<A, any_device> || std::is_same_v<B, any_device>,
                  "xgrad: an expression mixes operands on different devices; move them to one device "
                  "first with xgrad::to<Device>(x)");
    using type = std::conditional_t<std::is_same_v<A, any_device>, B, A>;
};

/// The device an expression runs on (an expression of constants only runs on the CPU).
template <class E>
using expr_device_t = std::conditional_t<std::is_same_v<device_of_t<E>, any_device>, device::cpu, device_of_t<E>>;
}  // namespace detail

template <class Impl, class... E>
struct op_node;  // expr/op_node.hpp

namespace detail {
/// The parameter occurrences a backward pass through an expression will reach, listed before
/// the pass runs (autodiff/hooks.hpp counts them). A node with a gradient lists them through
/// a member walk_grad_leaves(w): leaves add themselves, inner nodes walk their children, a
/// subgraph shared by several nodes (fork) is walked once. A node without the member marks
/// the walk incomplete, and the counts are then not trusted.
struct grad_leaf_walk {
    std::vector<const void*> leaves;  // one entry per parameter occurrence (its grad_state)
    std::vector<const void*> shared;  // shared subgraphs walked already
    bool complete = true;
    /// True the first time `p` is seen.
    bool enter_shared(const void* p) {
        if (std::find(shared.begin(), shared.end(), p) != shared.end()) return false;
        shared.push_back(p);
        return true;
    }
};
template <class E>
void walk_grad_leaves(const E& e, grad_leaf_walk& w) {
    if constexpr (E::has_grad) {
        if constexpr (requires { e.walk_grad_leaves(w); })
            e.walk_grad_leaves(w);
        else
            w.complete = false;
    }
}
}  // namespace detail

namespace detail {
/// The one device of several operands (constants go anywhere; mixing devices fails to compile).
template <class... D>
struct common_device_of;
template <class D>
struct common_device_of<D> {
    using type = D;
};
template <class A, class B, class... Rest>
struct common_device_of<A, B, Rest...> : common_device_of<typename common_device<A, B>::type, Rest...> {};

/// A barrier op runs where its operands live.
template <class Impl, class... E>
struct device_of<op_node<Impl, E...>> {
    using type = typename common_device_of<device_of_t<E>...>::type;
};
}  // namespace detail

/// Anything an op accepts besides plain numbers: a tensor, a parameter or an expression.
template <class X>
concept operand = expression<X> || detail::is_tensor<std::remove_cvref_t<X>>::value ||
                  detail::is_parameter<std::remove_cvref_t<X>>::value;

/// A number in an expression (x * 2.0f).
template <class T>
struct constant_node : expression_base {
    using value_type = T;
    using device_type = detail::any_device;
    static constexpr bool has_grad = false;
    static constexpr bool is_scalar = true;  // known rank 0 at compile time
    T c;
    explicit constant_node(T v) : c(v) {}
    const shape_t& shape() const { return detail::scalar_shape(); }
    template <class Ctx>
    auto kernel(Ctx&) const {
        return detail::const_kernel<T>{c};
    }
};

/// A tensor read by an expression (no gradient).
template <class T, class Device = device::cpu>
struct tensor_node : expression_base {
    using value_type = T;
    using device_type = Device;
    static constexpr bool has_grad = false;
    static constexpr bool is_scalar = false;
    tensor<T, Device> t;
    explicit tensor_node(tensor<T, Device> v) : t(std::move(v)) {}
    const shape_t& shape() const { return t.shape(); }
    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.input_leaf(t);
    }
};

/// A parameter read by an expression; backward accumulates into its gradient.
template <class T, class Device = device::cpu>
struct param_node : expression_base {
    using value_type = T;
    using device_type = Device;
    static constexpr bool has_grad = true;
    static constexpr bool is_scalar = false;
    parameter<T, Device> p;
    explicit param_node(parameter<T, Device> v) : p(std::move(v)) {}
    const shape_t& shape() const { return p.shape(); }
    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.grad_leaf(p.state());
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const { w.leaves.push_back(&p.state()); }
};

namespace detail {
template <class E>
struct is_param_node : std::false_type {};
template <class T, class D>
struct is_param_node<param_node<T, D>> : std::true_type {};
}  // namespace detail

/// op(e), elementwise.
template <class Op, class E>
struct unary_node : expression_base {
    using value_type = typename E::value_type;
    using device_type = detail::device_of_t<E>;
    static constexpr bool has_grad = E::has_grad;
    static constexpr bool is_scalar = E::is_scalar;
    Op op;
    E e;
    unary_node(Op o, E x) : op(o), e(std::move(x)) {}
    const shape_t& shape() const { return e.shape(); }
    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        auto k = e.kernel(ctx);
        return detail::unary_kernel<Op, decltype(k)>{op, k};
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const { detail::walk_grad_leaves(e, w); }
};

/// op(l, r), elementwise with NumPy broadcasting (checked when the node is built).
template <class Op, class L, class R>
struct binary_node : expression_base {
    static_assert(std::is_same_v<typename L::value_type, typename R::value_type>,
                  "xgrad: both operands of an elementwise op must have the same element type "
                  "(convert one with tensor.astype<T>())");
    using value_type = typename L::value_type;
    using device_type = typename detail::common_device<detail::device_of_t<L>, detail::device_of_t<R>>::type;
    static constexpr bool has_grad = L::has_grad || R::has_grad;
    static constexpr bool is_scalar = L::is_scalar && R::is_scalar;
    Op op;
    L l;
    R r;
    shape_t shape_;
    binary_node(Op o, L a, R b)
        : op(o), l(std::move(a)), r(std::move(b)), shape_(broadcast_shapes(l.shape(), r.shape(), Op::name)) {}
    const shape_t& shape() const { return shape_; }
    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        auto a = l.kernel(ctx);  // left first: see binary_kernel::bwd
        auto b = r.kernel(ctx);
        return detail::binary_kernel<Op, decltype(a), decltype(b)>{op, a, b};
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const {
        detail::walk_grad_leaves(l, w);
        detail::walk_grad_leaves(r, w);
    }
};

/// The node an operand becomes inside an expression.
template <class X>
auto as_expr(X&& x) {
    using D = std::remove_cvref_t<X>;
    if constexpr (expression<D>)
        return D(std::forward<X>(x));
    else if constexpr (detail::is_tensor<D>::value)
        return tensor_node<typename D::value_type, typename D::device_type>(std::forward<X>(x));
    else if constexpr (detail::is_parameter<D>::value)
        return param_node<typename D::value_type, typename D::device_type>(std::forward<X>(x));
    else
        static_assert(sizeof(D) == 0, "xgrad::as_expr: expected a tensor, a parameter or an expression");
}

template <class X>
using expr_t = decltype(as_expr(std::declval<X>()));

}  // namespace xgrad
