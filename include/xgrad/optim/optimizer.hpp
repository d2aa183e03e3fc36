#pragma once
// The part every optimizer shares: parameter groups with their own options, per-parameter
// state, zero_grad(), step() and a state dictionary of named tensors and numbers.
//
// An optimizer is `class X : public optimizer<X<T, D>, T, X_options, D>` (befriending it) providing
//   static constexpr const char* name;
//   static void validate(const X_options&);                          // throws value_error
//   static void init_state(const parameter<T, D>&, param_state<T, D>&, const X_options&);   // optional
//   void update(const parameter<T, D>&, const tensor<T, D>& grad, param_state<T, D>&, const X_options&);
// D is the parameters' device: the state lives there too and the updates run there (assign()
// of device tensors is one kernel); state_dict() and load_state_dict() copy through the host.
// and X_options provides fields(f): f(name, member) for each hyper-parameter, which names them
// in the state dictionary ("param_groups.0.lr").
//
// step() visits the parameters of every group and skips one whose gradient is logically zero
// since the last zero_grad() (no backward pass reached it), like a PyTorch parameter whose
// .grad is None, and one that does not require a gradient.
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../backend/cpu/engine.hpp"
#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../core/tensor.hpp"
#include "../core/transfer.hpp"
#include "../expr/assign.hpp"
#include "../expr/functions.hpp"

namespace xgrad::optim {

/// What a learning-rate scheduler sees of an optimizer: each group's learning rate.
class lr_schedulable {
public:
    virtual ~lr_schedulable() = default;
    virtual std::size_t num_param_groups() const = 0;
    virtual double lr(std::size_t group) const = 0;
    /// Sets a group's learning rate (>= 0, else value_error).
    virtual void set_lr(std::size_t group, double lr) = 0;
};

/// One parameter's optimizer state: the update count and named buffers of its shape, on the
/// parameter's device.
template <class T, class Device = device::cpu>
struct param_state {
    std::int64_t step = 0;
    std::vector<std::pair<std::string, tensor<T, Device>>> buffers;

    /// The buffer called `name`, or null before it exists.
    const tensor<T, Device>* find(std::string_view name) const {
        for (auto& [n, t] : buffers)
            if (n == name) return &t;
        return nullptr;
    }
    /// The buffer called `name`, created filled with `init` (of `shape`) when missing. (Returned
    /// as a handle: a later get() may move the list's elements.)
    tensor<T, Device> get(std::string_view name, const shape_t& shape, T init = T(0)) {
        if (auto* t = find(name)) return *t;
        auto t = tensor<T, Device>::uninitialized(shape);
        t.fill(init);
        buffers.emplace_back(std::string(name), std::move(t));
        return buffers.back().second;
    }
    /// A new buffer whose contents the caller writes before anyone reads them.
    tensor<T, Device> create(std::string_view name, const shape_t& shape) {
        buffers.emplace_back(std::string(name), tensor<T, Device>::uninitialized(shape));
        return buffers.back().second;
    }
};

/// An optimizer's state for checkpoints. Tensors are named "state.<i>.<buffer>" with i the
/// parameter's position across all groups (PyTorch's numbering); numbers are
/// "state.<i>.step" and every group's hyper-parameters, "param_groups.<g>.<option>".
template <class T>
struct state_dict {
    std::vector<std::pair<std::string, tensor<T>>> tensors;
    std::vector<std::pair<std::string, double>> scalars;

    const tensor<T>* tensor_named(std::string_view name) const {
        for (auto& [n, t] : tensors)
            if (n == name) return &t;
        return nullptr;
    }
    const double* scalar_named(std::string_view name) const {
        for (auto& [n, v] : scalars)
            if (n == name) return &v;
        return nullptr;
    }
};

/// Parameters that share options.
template <class T, class Options, class Device = device::cpu>
struct param_group {
    std::vector<parameter<T, Device>> params;
    Options options;
};

namespace detail {

XGRAD_OUTLINE std::string format_number(double v) {
    std::ostringstream os;
    os << v;
    return os.str();
}
XGRAD_INSTANCE(std::string format_number(double v))
/// Hyper-parameter checks, messages "<optimizer>: <what> must be ..., got <v>" (NaN fails all).
XGRAD_OUTLINE void require_non_negative(const char* opt, const char* what, double v) {
    if (!(v >= 0.0) || std::isinf(v))
        throw value_error(std::string(opt) + ": " + what + " must be finite and >= 0, got " + format_number(v));
}
XGRAD_INSTANCE(void require_non_negative(const char* opt, const char* what, double v))
XGRAD_OUTLINE void require_in_unit_interval(const char* opt, const char* what, double v) {  // [0, 1)
    if (!(v >= 0.0 && v < 1.0))
        throw value_error(std::string(opt) + ": " + what + " must be in [0, 1), got " + format_number(v));
}
XGRAD_INSTANCE(void require_in_unit_interval(const char* opt, const char* what, double v))

/// t *= m element-wise (same shape, contiguous host tensors): how pruning masks are enforced.
template <class T>
void multiply_in_place(const tensor<T>& t, const tensor<T>& m) {
    T* p = t.data();
    const T* q = m.data();
    for (std::size_t i = 0, n = t.size(); i < n; ++i) p[i] *= q[i];
}

}  // namespace detail

template <class Derived, class T, class Options, class Device = device::cpu>
class optimizer : public lr_schedulable {
    static_assert(std::is_floating_point_v<T>, "xgrad::optim: parameters must hold float or double");

public:
    using value_type = T;
    using device_type = Device;
    using options_type = Options;
    using group_type = param_group<T, Options, Device>;
    using parameter_type = parameter<T, Device>;
    using state_type = param_state<T, Device>;

    /// The options a group added without its own gets.
    const Options& defaults() const { return defaults_; }

    /// Adds parameters with the default options / with their own options.
    void add_param_group(std::vector<parameter_type> params) { add_param_group(std::move(params), defaults_); }
    void add_param_group(std::vector<parameter_type> params, const Options& options);

    std::size_t num_param_groups() const override { return groups_.size(); }
    const std::vector<group_type>& param_groups() const { return groups_; }
    const Options& options(std::size_t group) const { return groups_.at(group).options; }
    /// Replaces a group's options (validated).
    void set_options(std::size_t group, const Options& o) {
        Derived::validate(o);
        groups_.at(group).options = o;
    }

    double lr(std::size_t group) const override { return groups_.at(group).options.lr; }
    void set_lr(std::size_t group, double lr) override {
        detail::require_non_negative(Derived::name, "lr", lr);
        groups_.at(group).options.lr = lr;
    }

    /// Clears every parameter's gradient (O(1) each).
    void zero_grad() {
        for (auto& g : groups_)
            for (auto& p : g.params) p.zero_grad();
    }

    /// One update of every parameter that has a gradient.
    void step() {
        for (std::size_t g = 0; g < groups_.size(); ++g) {
            const Options& o = groups_[g].options;
            for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
                const parameter_type& p = groups_[g].params[i];
                if (!p.requires_grad() || p.state().grad_zero) continue;
                state_type& s = state_[g][i];
                ++s.step;
                if constexpr (std::is_same_v<Device, device::cpu>) {
                    // a pruned parameter: d loss / d orig = mask * d loss / d weight, and the
                    // update leaves pruned places at exactly zero (weight decay, momentum)
                    if (p.state().pruned) detail::multiply_in_place(p.grad(), p.state().prune_mask);
                    self().update(p, p.grad(), s, o);
                    if (p.state().pruned) detail::multiply_in_place(p.value(), p.state().prune_mask);
                } else {
                    self().update(p, p.grad(), s, o);
                }
            }
        }
    }

    /// The state of parameter p (null when p is not optimized here).
    const state_type* state(const parameter_type& p) const {
        for (std::size_t g = 0; g < groups_.size(); ++g)
            for (std::size_t i = 0; i < groups_[g].params.size(); ++i)
                if (groups_[g].params[i].same(p)) return &state_[g][i];
        return nullptr;
    }

    /// Everything step() depends on besides the parameters, for checkpoints. Tensors are host
    /// tensors: on the CPU shared with the optimizer (clone them to keep a snapshot), from a
    /// device copies.
    optim::state_dict<T> state_dict() const;

    /// Restores a state_dict() of an optimizer of the same kind over parameters of the same
    /// shapes in the same groups. Buffers are copied. Throws value_error/shape_error on mismatch.
    void load_state_dict(const optim::state_dict<T>& d);

protected:
    optimizer(std::vector<parameter_type> params, const Options& defaults) : defaults_(defaults) {
        Derived::validate(defaults_);
        if (params.empty()) throw value_error(std::string(Derived::name) + ": got an empty parameter list");
        add_param_group(std::move(params), defaults_);
    }

    /// Default: no state before the first step. (Static: it runs while the base is constructed.)
    static void init_state(const parameter_type&, state_type&, const Options&) {}

private:
    Derived& self() { return static_cast<Derived&>(*this); }
    static std::string describe(const parameter_type& p) {
        return p.name().empty() ? "of shape " + to_string(p.shape()) : "'" + p.name() + "'";
    }

    Options defaults_;
    std::vector<group_type> groups_;
    std::vector<std::vector<state_type>> state_;
};

template <class Derived, class T, class Options, class Device>
void optimizer<Derived, T, Options, Device>::add_param_group(std::vector<parameter_type> params,
                                                             const Options& options) {
    Derived::validate(options);
    if (params.empty()) throw value_error(std::string(Derived::name) + ": a parameter group is empty");
    for (std::size_t i = 0; i < params.size(); ++i) {
        for (std::size_t j = 0; j < i; ++j)
            if (params[i].same(params[j]))
                throw value_error(std::string(Derived::name) + ": parameter " + describe(params[i]) +
                                  " appears twice in one group");
        for (auto& g : groups_)
            for (auto& q : g.params)
                if (params[i].same(q))
                    throw value_error(std::string(Derived::name) + ": parameter " + describe(params[i]) +
                                      " appears in more than one parameter group");
    }
    std::vector<state_type> st(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) Derived::init_state(params[i], st[i], options);
    groups_.push_back({std::move(params), options});
    state_.push_back(std::move(st));
}

template <class Derived, class T, class Options, class Device>
optim::state_dict<T> optimizer<Derived, T, Options, Device>::state_dict() const {
    optim::state_dict<T> d;
    std::size_t k = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g)
        for (std::size_t i = 0; i < groups_[g].params.size(); ++i, ++k) {
            const std::string prefix = "state." + std::to_string(k) + ".";
            d.scalars.emplace_back(prefix + "step", static_cast<double>(state_[g][i].step));
            for (auto& [n, t] : state_[g][i].buffers) d.tensors.emplace_back(prefix + n, to<device::cpu>(t));
        }
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        Options o = groups_[g].options;
        const std::string prefix = "param_groups." + std::to_string(g) + ".";
        o.fields([&](const char* name, auto& v) { d.scalars.emplace_back(prefix + name, static_cast<double>(v)); });
    }
    return d;
}

template <class Derived, class T, class Options, class Device>
void optimizer<Derived, T, Options, Device>::load_state_dict(const optim::state_dict<T>& d) {
    const std::string who = std::string(Derived::name) + "::load_state_dict: ";
    std::vector<Options> opts;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
        Options o = groups_[g].options;
        const std::string prefix = "param_groups." + std::to_string(g) + ".";
        o.fields([&](const char* name, auto& v) {
            const double* x = d.scalar_named(prefix + name);
            if (!x) throw value_error(who + "missing " + prefix + name);
            v = static_cast<std::remove_reference_t<decltype(v)>>(*x);
        });
        Derived::validate(o);
        opts.push_back(o);
    }
    if (d.scalar_named("param_groups." + std::to_string(groups_.size()) + ".lr"))
        throw value_error(who + "the state has more than " + std::to_string(groups_.size()) + " parameter groups");
    std::vector<std::vector<state_type>> st(groups_.size());
    std::size_t k = 0, buffers = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g)
        for (std::size_t i = 0; i < groups_[g].params.size(); ++i, ++k) {
            const std::string prefix = "state." + std::to_string(k) + ".";
            const double* step = d.scalar_named(prefix + "step");
            if (!step) throw value_error(who + "missing " + prefix + "step");
            state_type s;
            s.step = static_cast<std::int64_t>(*step);
            for (auto& [n, t] : d.tensors) {
                if (n.compare(0, prefix.size(), prefix) != 0) continue;
                if (t.shape() != groups_[g].params[i].shape())
                    throw shape_error(who + n + " has shape " + to_string(t.shape()) + " but parameter " +
                                      describe(groups_[g].params[i]) + " has shape " +
                                      to_string(groups_[g].params[i].shape()));
                if constexpr (std::is_same_v<Device, device::cpu>)
                    s.buffers.emplace_back(n.substr(prefix.size()), t.clone());
                else
                    s.buffers.emplace_back(n.substr(prefix.size()), to<Device>(t));
                ++buffers;
            }
            st[g].push_back(std::move(s));
        }
    if (buffers != d.tensors.size() || d.scalar_named("state." + std::to_string(k) + ".step"))
        throw value_error(who + "the state has entries for more than the " + std::to_string(k) +
                          " parameters of this optimizer");
    for (std::size_t g = 0; g < groups_.size(); ++g) groups_[g].options = opts[g];
    state_ = std::move(st);
}

}  // namespace xgrad::optim
