#pragma once
// Barrier ops (matmul, conv, pooling, softmax, losses ...) read and write materialized tensors
// with their own kernels. op_node turns an Impl with a forward and a backward kernel into an
// expression node that composes with the elementwise engine: inside a fused loop its output is
// a leaf, and its backward step runs when the loop has gathered its output gradient.
//
// Impl provides (T = element type, N = number of expression inputs):
//   static constexpr const char* name;
//   shape_t output_shape(const shape_t&... input_shapes) const;   // throws shape_error
//   tensor<T> forward(const tensor<T>&... inputs) const;           // inputs are contiguous
//   void backward(const tensor<T>& grad_out, const tensor<T>& out,
//                 const std::array<tensor<T>, N>& inputs,
//                 std::array<tensor<T>*, N> grad_inputs) const;    // null where no gradient is
//                                                                  // wanted; write (not add)
// The op runs on its operands' device D through detail::device_kernels<Impl, D>: Impl's own
// forward/backward where they take tensor<T, D> (the CPU's), else a device backend's
// specialization (ops/detail/device_kernels.hpp); an op without kernels on D fails to compile
// saying so.
// Non-differentiable arguments (labels, indices, options) are members of Impl.
#include <array>
#include <tuple>
#include <utility>
#include <vector>

#include "device_engine.hpp"
#include "node.hpp"
#include "pass.hpp"

namespace xgrad {

namespace detail {

template <class E>
concept materializable = requires(const E& e) { e.forward_value(); };

/// The value of an expression as a contiguous tensor on its device, without copying leaves
/// that already are.
template <class E>
auto materialize(const E& e) {
    using T = typename E::value_type;
    using D = expr_device_t<E>;
    if constexpr (std::is_same_v<E, tensor_node<T, D>>)
        return e.t.contiguous();
    else if constexpr (std::is_same_v<E, param_node<T, D>>)
        return e.p.value().contiguous();
    else if constexpr (materializable<E>)
        return e.forward_value().contiguous();
    else
        return device_engine<D>::eval(e);
}

/// Sends gradient g (of e's shape) into e's leaves.
template <class E>
void push_grad(const E& e, const tensor<typename E::value_type, expr_device_t<E>>& g) {
    if constexpr (E::has_grad) {
        if constexpr (materializable<E>)
            e.backward_from(g);
        else
            device_engine<expr_device_t<E>>::backward(e, g, typename E::value_type(1));
    }
}

/// The kernels of barrier op Impl on device D, called as device_kernels<Impl, D>::forward(impl,
/// inputs...) and ::backward(impl, grad_out, out, inputs, grad_inputs): Impl's own forward and
/// backward where they take tensor<T, D> (the CPU's; a device-generic op such as reshape), or
/// a device backend's specialization for D (ops/detail/device_kernels.hpp).
template <class Impl, class D>
struct device_kernels {
    static constexpr bool available = false;  // no backend specialization
    template <class... A>
    static auto forward(const Impl& op, const A&... a) -> decltype(op.forward(a...)) {
        return op.forward(a...);
    }
    template <class... A>
    static auto backward(const Impl& op, const A&... a) -> decltype(op.backward(a...)) {
        op.backward(a...);
    }
};

/// Whether Impl has a forward kernel over N tensors of type tensor<T, D>.
template <class Impl, class T, class D, class Seq>
struct has_forward_for;
template <class Impl, class T, class D, std::size_t... I>
struct has_forward_for<Impl, T, D, std::index_sequence<I...>> {
    template <std::size_t>
    using arg = const tensor<T, D>&;
    static constexpr bool value =
        requires(const Impl& impl, arg<I>... x) { device_kernels<Impl, D>::forward(impl, x...); };
};

}  // namespace detail

template <class Impl, class... E>
struct op_node : expression_base {
    using value_type = typename std::tuple_element_t<0, std::tuple<E...>>::value_type;
    using T = value_type;
    using device_type = typename detail::common_device_of<detail::device_of_t<E>...>::type;
    /// Where the op's kernels run (an op over constants only runs on the CPU).
    using D = std::conditional_t<std::is_same_v<device_type, detail::any_device>, device::cpu, device_type>;
    using tensor_type = tensor<T, D>;
    static_assert((std::is_same_v<typename E::value_type, T> && ...),
                  "xgrad: all inputs of an op must have the same element type");
    static constexpr std::size_t arity = sizeof...(E);
    static constexpr bool has_grad = (E::has_grad || ...);
    static constexpr bool is_scalar = false;
    static_assert(detail::has_forward_for<Impl, T, D, std::make_index_sequence<arity>>::value,
                  "xgrad: this op has no kernel on the operands' device yet; move its operands with "
       "xgrad::to<xgrad::device::cpu>(x)");

    Impl impl;
    std::tuple<E...> args;
    shape_t shape_;

    struct saved {
        tensor_type out;
        std::array<tensor_type, arity> inputs;
    };
    detail::pass_cache<saved> cache_;

    explicit op_node(Impl i, E... a) : impl(std::move(i)), args(std::move(a)...) {
        shape_ = std::apply([&](const auto&... x) { return impl.output_shape(x.shape()...); }, args);
    }

    const shape_t& shape() const { return shape_; }

    const saved& run_forward() const {
        return cache_.get([&] {
            saved s;
            s.inputs = std::apply(
                [](const auto&... x) { return std::array<tensor_type, arity>{detail::materialize(x)...}; }, args);
            s.out = std::apply([&](const auto&... in) { return detail::device_kernels<Impl, D>::forward(impl, in...); }, s.inputs);
            return s;
        });
    }

    tensor_type forward_value() const { return run_forward().out; }

    void backward_from(const tensor_type& g) const {
        if constexpr (has_grad) {
            const saved& s = run_forward();
            std::array<tensor_type, arity> grads;
            std::array<tensor_type*, arity> ptrs{};
            direct_grads direct{};
            [&]<std::size_t... I>(std::index_sequence<I...>) {
                (gradient_target<I>(s, grads, ptrs, direct), ...);
            }(std::index_sequence_for<E...>{});
            try {
                detail::device_kernels<Impl, D>::backward(impl, g.contiguous(), s.out, s.inputs, ptrs);
            } catch (...) {
                for (auto* st : direct)
                    if (st) st->zero_grad();  // logically zero again, as before the pass
                throw;
            }
            settle_direct(grads, direct);
            std::array<bool, arity> push{};
            for (std::size_t i = 0; i < arity; ++i) push[i] = ptrs[i] && !direct[i];
            push_all(grads, push, std::index_sequence_for<E...>{});
        }
    }

    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.materialized(*this);
    }

    void walk_grad_leaves(detail::grad_leaf_walk& w) const {
        std::apply([&](const auto&... x) { (detail::walk_grad_leaves(x, w), ...); }, args);
    }

private:
    /// The parameters whose gradient the kernel writes in place (null elsewhere).
    using direct_grads = std::array<detail::grad_state<T, D>*, arity>;

    /// Where the kernel writes the gradient of operand I. A parameter operand whose gradient is
    /// logically zero gets a handle on its own gradient buffer: the kernel's result then is the
    /// gradient, with no buffer in between and no pass copying it over (for a linear layer's
    /// weight, one write of the whole weight's size less per step). The parameter is claimed
    /// before the kernel runs, so a second occurrence of it among the operands (matmul(w, w))
    /// gets a buffer of its own and is added afterwards. A frozen parameter gets nothing: no
    /// gradient is computed for it.
    template <std::size_t I>
    void gradient_target(const saved& s, std::array<tensor_type, arity>& grads, std::array<tensor_type*, arity>& ptrs,
                         direct_grads& direct) const {
        using Ei = std::tuple_element_t<I, std::tuple<E...>>;
        if constexpr (Ei::has_grad) {
            if constexpr (detail::is_param_node<Ei>::value) {
                detail::grad_state<T, D>& st = std::get<I>(args).p.state();
                if (!st.requires_grad) return;
                if (st.grad_storage.shape() == s.inputs[I].shape() && st.claim_write()) {
                    grads[I] = st.grad_storage;  // a second handle on the same memory
                    ptrs[I] = &grads[I];
                    direct[I] = &st;
                    return;
                }
            }
            grads[I] = tensor_type::uninitialized(s.inputs[I].shape());
            ptrs[I] = &grads[I];
        }
    }

    /// After the kernel: a direct gradient the kernel wrote in place is final (reported to a
    /// listening gradient_observer like a loop's write); one whose handle the kernel replaced
    /// by another tensor (a kernel may hand back a buffer of its own) goes the ordinary way.
    void settle_direct(const std::array<tensor_type, arity>& grads, direct_grads& direct) const {
        std::vector<const void*> written;
        for (std::size_t i = 0; i < arity; ++i) {
            detail::grad_state<T, D>* st = direct[i];
            if (!st) continue;
            if (grads[i].data() == st->grad_storage.data() && grads[i].shape() == st->grad_storage.shape()) {
                if (detail::active_gradient_observer()) written.push_back(st);
            } else {
                st->zero_grad();
                direct[i] = nullptr;
            }
        }
        if (!written.empty()) detail::report_accumulated(written);
    }

    // Parameter operands first: their gradients are then complete before the walk descends
    // into the other operands' subgraphs, so gradient-ready hooks (autodiff/hooks.hpp) fire
    // for a layer's weights before the layers below run their backward.
    template <std::size_t... I>
    void push_all(const std::array<tensor_type, arity>& grads, const std::array<bool, arity>& push,
                  std::index_sequence<I...>) const {
        constexpr std::array<bool, arity> is_param{detail::is_param_node<E>::value...};
        for (const bool params : {true, false})
            ((is_param[I] == params && push[I] ? detail::push_grad(std::get<I>(args), grads[I]) : void()), ...);
    }
};

/// Builds an op_node from an Impl and operands (tensors, parameters or expressions).
template <class Impl, operand... X>
auto make_op(Impl impl, X&&... x) {
    return op_node<Impl, expr_t<X>...>(std::move(impl), as_expr(std::forward<X>(x))...);
}

}  // namespace xgrad
