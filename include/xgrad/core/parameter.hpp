#pragma once
// Differentiable leaves. A parameter is a shared handle (like a tensor): copies refer to the
// same value and gradient, so an expression that captured it never dangles.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "tensor.hpp"

namespace xgrad {

namespace detail {

/// A value and its gradient buffer. The gradient is "logically zero" after zero_grad() without
/// touching memory; the next backward pass then writes it instead of reading and adding.
/// Both tensors live on Device (only fill() and uninitialized() are asked of them).
template <class T, class Device = device::cpu>
struct grad_state {
    tensor<T, Device> value;
    tensor<T, Device> grad_storage;
    bool grad_zero = true;      // gradient is logically zero
    bool zero_filled = false;   // ... and its memory actually holds zeros
    bool requires_grad = true;
    std::string name;
    // Pruning (nn/prune.hpp): `value` holds orig * mask; the mask (1 keeps, 0 prunes) and the
    // original values at pruned places (what PyTorch keeps as "<name>_orig") are kept here.
    bool pruned = false;
    tensor<T, Device> prune_mask, prune_orig;

    explicit grad_state(tensor<T, Device> v, std::string n = {})
        : value(std::move(v)), grad_storage(tensor<T, Device>::uninitialized(value.shape())), name(std::move(n)) {}

    /// The gradient as a tensor (zeros when nothing has been accumulated).
    const tensor<T, Device>& grad() {
        if (grad_zero && !zero_filled) {
            grad_storage.fill(T(0));
            zero_filled = true;
        }
        return grad_storage;
    }
    /// Makes memory agree with the logical value so that the caller may accumulate into it.
    tensor<T, Device>& grad_for_accumulate() {
        grad();
        grad_zero = false;
        zero_filled = false;
        return grad_storage;
    }
    void zero_grad() {
        grad_zero = true;
        zero_filled = false;
    }
    /// When the gradient is logically zero: marks it written (the caller writes it whole, no
    /// read and add) and returns true; else returns false and changes nothing.
    bool claim_write() {
        if (!grad_zero) return false;
        grad_zero = false;
        zero_filled = false;
        return true;
    }
};

/// How one pass writes the gradient of `s` at a leaf occurrence that owns one gradient element
/// per loop element: the first occurrence of `s` in the pass may write instead of reading and
/// adding when the gradient is logically zero; later occurrences add. `claimed` lists the
/// states already seen in this pass. Returns true when this occurrence writes.
template <class State>
bool claim_gradient(std::vector<const void*>& claimed, State& s) {
    const bool first = std::find(claimed.begin(), claimed.end(), &s) == claimed.end();
    const bool assign = first && s.claim_write();
    if (first) claimed.push_back(&s);
    if (!assign) s.grad_for_accumulate();
    return assign;
}

}  // namespace detail

/// A trainable leaf: value() and grad() tensors of the same shape, on Device. backward()
/// accumulates into grad() like PyTorch; zero_grad() clears it in O(1).
template <class T, class Device = device::cpu>
class parameter {
public:
    using value_type = T;
    using device_type = Device;

    parameter() = default;
    explicit parameter(tensor<T, Device> value, std::string name = {})
        : s_(std::make_shared<detail::grad_state<T, Device>>(std::move(value), std::move(name))) {}

    const tensor<T, Device>& value() const { return s_->value; }
    const tensor<T, Device>& grad() const { return s_->grad(); }
    void zero_grad() const { s_->zero_grad(); }

    bool requires_grad() const { return s_->requires_grad; }
    const parameter& requires_grad(bool on) const {
        s_->requires_grad = on;
        return *this;
    }

    const shape_t& shape() const { return s_->value.shape(); }
    std::size_t size() const { return s_->value.size(); }
    const std::string& name() const { return s_->name; }
    void set_name(std::string n) const { s_->name = std::move(n); }

    /// True when both handles refer to the same parameter.
    bool same(const parameter& o) const { return s_ == o.s_; }

    detail::grad_state<T, Device>& state() const { return *s_; }
    const std::shared_ptr<detail::grad_state<T, Device>>& state_ptr() const { return s_; }

private:
    std::shared_ptr<detail::grad_state<T, Device>> s_;
};

/// Makes a trainable leaf from a tensor (shares its storage), on the tensor's device.
template <class T, class Device>
parameter<T, Device> param(tensor<T, Device> value, std::string name = {}) {
    static_assert(std::is_floating_point_v<T>, "xgrad::param: parameters must hold float or double");
    return parameter<T, Device>(std::move(value), std::move(name));
}

}  // namespace xgrad
