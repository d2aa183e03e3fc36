#pragma once
// distributed_optimizer: wraps any xgrad optimizer so that step() first averages the
// gradients across ranks (gradient_reducer), then runs the wrapped update. Every rank applies
// the same averaged gradient to the same starting values (broadcast_parameters), so the
// parameters stay bit-identical on every rank. Works with fit() like the wrapped optimizer:
// zero_grad/step, learning-rate schedules and state_dict for checkpoints are forwarded.
//
// fit(.clip_grad_norm = c) clips before step(), that is each rank's own gradient before the
// average; clip inside the wrapped step (not provided) would clip the average instead. With
// reducer_options::overlap the buckets started during backward() are sent again when clipping
// changed them (the reducer compares), so the result is the same.
#include <utility>
#include <vector>

#include "../optim/optimizer.hpp"
#include "reducer.hpp"

namespace xgrad::distributed {

template <class O>
class distributed_optimizer : public optim::lr_schedulable {
public:
    using value_type = typename O::value_type;
    using device_type = typename O::device_type;
    using parameter_type = parameter<value_type, device_type>;

    /// Takes the optimizer (moved in) and buckets its parameters, in the order of its groups.
    explicit distributed_optimizer(O opt, reducer_options ro = {})
        : opt_(std::move(opt)), reducer_(all_parameters(opt_), ro) {}

    /// Copies the parameters of rank `root` to every rank (call once before training).
    void broadcast_parameters(int root = 0) { reducer_.broadcast_parameters(root); }

    void zero_grad() { opt_.zero_grad(); }
    /// Averages the gradients over the ranks, then one update of the wrapped optimizer.
    void step() {
        reducer_.reduce();
        opt_.step();
    }

    O& inner() noexcept { return opt_; }
    const O& inner() const noexcept { return opt_; }
    gradient_reducer<value_type, device_type>& reducer() noexcept { return reducer_; }

    std::size_t num_param_groups() const override { return opt_.num_param_groups(); }
    double lr(std::size_t g) const override { return opt_.lr(g); }
    void set_lr(std::size_t g, double lr) override { opt_.set_lr(g, lr); }

    auto state_dict() const
        requires requires(const O& o) { o.state_dict(); }
    {
        return opt_.state_dict();
    }
    template <class D>
    void load_state_dict(const D& d)
        requires requires(O& o, const D& x) { o.load_state_dict(x); }
    {
        opt_.load_state_dict(d);
    }

private:
    static std::vector<parameter_type> all_parameters(const O& o) {
        std::vector<parameter_type> out;
        for (auto& g : o.param_groups())
            for (auto& p : g.params) out.push_back(p);
        return out;
    }

    O opt_;
    gradient_reducer<value_type, device_type> reducer_;
};

}  // namespace xgrad::distributed
