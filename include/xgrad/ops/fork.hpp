#pragma once
// fork<N>(x): N handles on one value, for an expression used N times (a residual branch
// x + f(x)). Without it each use pushes its gradient through x's whole subgraph separately, so
// a subgraph below k residual joins is walked 2^k times. The handles share one materialized
// value per pass and one gradient buffer: each handle's backward adds its gradient, and the
// last of the N pushes the sum into x once.
//   d/dx = sum over the N uses of their upstream gradients.
#include <array>
#include <memory>

#include "../expr/functions.hpp"
#include "../expr/op_node.hpp"

namespace xgrad {

namespace detail {

template <class E>
struct fork_state {
    using tensor_type = tensor<typename E::value_type, expr_device_t<E>>;
    E arg;
    std::size_t uses;
    pass_cache<tensor_type> value;
    tensor_type grad;
    bool owned = false;  // grad is the fork's own buffer (else an upstream gradient it holds)
    std::size_t arrived = 0;
    std::uint64_t pass = 0;
};

template <class E>
struct fork_node : expression_base {
    using value_type = typename E::value_type;
    using device_type = device_of_t<E>;
    using tensor_type = tensor<value_type, expr_device_t<E>>;
    static constexpr bool has_grad = E::has_grad;
    static constexpr bool is_scalar = false;

    std::shared_ptr<fork_state<E>> st;
    shape_t shape_;

    const shape_t& shape() const { return shape_; }

    tensor_type forward_value() const {
        return st->value.get([&] { return materialize(st->arg); });
    }

    void backward_from(const tensor_type& g) const {
        if constexpr (has_grad) {
            auto& s = *st;
            if (s.pass != current_pass()) {  // a new pass (or an abandoned one): start over
                s.pass = current_pass();
                s.arrived = 0;
            }
            if (s.arrived == 0) {  // held, not copied: the first add writes a new buffer
                s.grad = g.contiguous();
                s.owned = false;
            } else {
                s.grad = cpu_or_device_add(s.grad, g, s.owned);
                s.owned = true;
            }
            if (++s.arrived == s.uses) {
                s.arrived = 0;
                tensor_type total = std::move(s.grad);
                s.grad = {};
                push_grad(s.arg, total);
            }
        }
    }

    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.materialized(*this);
    }
    /// The handles push into x once: x's leaves count once, however many handles are used.
    void walk_grad_leaves(grad_leaf_walk& w) const {
        if (w.enter_shared(st.get())) detail::walk_grad_leaves(st->arg, w);
    }

private:
    /// a + b, on the CPU in place in a when a is the fork's own buffer, else into a new one; on
    /// a device one kernel of its engine into a new buffer.
    static tensor_type cpu_or_device_add(const tensor_type& a, const tensor_type& b, bool in_place) {
        if constexpr (!std::is_same_v<expr_device_t<E>, device::cpu>) {
            return device_engine<expr_device_t<E>>::eval(a + b);
        } else {
            return cpu_add(a, b, in_place);
        }
    }
    static tensor_type cpu_add(const tensor_type& a, const tensor_type& b, bool in_place) {
        tensor_type out = in_place ? a : tensor_type::uninitialized(a.shape());
        auto* o = out.data();
        const auto* pa = a.data();
        const auto bc = b.contiguous();
        const auto* pb = bc.data();
        simd_for<value_type>(out.size(), [&]<class V>(std::size_t j) { store(V(load<V>(pa + j) + load<V>(pb + j)), o + j); });
        return out;
    }
};

}  // namespace detail

/// N handles on the value of x, whose gradients are summed and pushed into x once per backward.
/// Every handle must be used in the same expression (a handle left out holds the push back).
template <std::size_t N, operand X>
auto fork(X&& x) {
    static_assert(N >= 1, "xgrad::fork<N>: N must be at least 1");
    using E = expr_t<X>;
    auto st = std::make_shared<detail::fork_state<E>>(detail::fork_state<E>{as_expr(std::forward<X>(x)), N, {}, {}, 0, 0});
    std::array<detail::fork_node<E>, N> out;
    for (auto& h : out) {
        h.st = st;
        h.shape_ = st->arg.shape();
    }
    return out;
}

}  // namespace xgrad
