#pragma once
// Learning-rate schedulers, as torch.optim.lr_scheduler. A scheduler reads each parameter
// group's learning rate when it is built (the base rates b), sets epoch 0's rate, and each
// step() advances one epoch e and sets every group's rate to its closed form:
//   step_lr              b gamma^floor(e / step_size)
//   multi_step_lr        b gamma^(number of milestones <= e)
//   exponential_lr       b gamma^e
//   cosine_annealing_lr  eta_min + (b - eta_min) (1 + cos(pi e / t_max)) / 2   (Loshchilov & Hutter, 2017)
//   warmup_cosine_lr     b (s + (1 - s) e / w) for e < w (linear warm-up, Goyal et al., 2017),
//                        then cosine from b to eta_min over the remaining total_steps - w epochs,
//                        and eta_min after total_steps
//   reduce_lr_on_plateau multiplies rates by factor when a metric stopped improving
// The scheduler keeps a reference to the optimizer, which must outlive it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "optimizer.hpp"

namespace xgrad::optim {

/// Named numbers that restore a scheduler (for checkpoints).
using scheduler_state = std::vector<std::pair<std::string, double>>;

namespace detail {
inline double scheduler_scalar(const scheduler_state& s, const std::string& name, const char* who) {
    for (auto& [n, v] : s)
        if (n == name) return v;
    throw value_error(std::string(who) + "::load_state_dict: missing " + name);
}
}  // namespace detail

/// A schedule given in closed form by lr_at(group, epoch).
class lr_scheduler {
public:
    virtual ~lr_scheduler() = default;
    lr_scheduler(const lr_scheduler&) = delete;
    lr_scheduler& operator=(const lr_scheduler&) = delete;

    /// Advances one epoch and sets the groups' learning rates.
    void step() { apply(epoch_ + 1); }
    /// The rates set by the last step (or by construction).
    const std::vector<double>& last_lr() const { return last_lr_; }
    std::int64_t last_epoch() const { return epoch_; }
    const std::vector<double>& base_lrs() const { return base_lrs_; }

    scheduler_state state_dict() const {
        scheduler_state s{{"last_epoch", static_cast<double>(epoch_)}};
        for (std::size_t g = 0; g < base_lrs_.size(); ++g) s.emplace_back("base_lrs." + std::to_string(g), base_lrs_[g]);
        return s;
    }
    /// Restores base rates and the epoch, and sets that epoch's rates.
    void load_state_dict(const scheduler_state& s) {
        for (std::size_t g = 0; g < base_lrs_.size(); ++g)
            base_lrs_[g] = detail::scheduler_scalar(s, "base_lrs." + std::to_string(g), "lr_scheduler");
        apply(static_cast<std::int64_t>(detail::scheduler_scalar(s, "last_epoch", "lr_scheduler")));
    }

protected:
    explicit lr_scheduler(lr_schedulable& opt) : opt_(&opt) {
        for (std::size_t g = 0; g < opt.num_param_groups(); ++g) base_lrs_.push_back(opt.lr(g));
    }
    virtual double lr_at(double base, std::int64_t epoch) const = 0;
    /// Derived constructors call this last (virtual calls do not reach them earlier).
    void start() { apply(0); }

private:
    void apply(std::int64_t epoch) {
        epoch_ = epoch;
        last_lr_.clear();
        for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
            const double lr = lr_at(base_lrs_[g], epoch);
            opt_->set_lr(g, lr);
            last_lr_.push_back(lr);
        }
    }

    lr_schedulable* opt_;
    std::vector<double> base_lrs_;
    std::vector<double> last_lr_;
    std::int64_t epoch_ = 0;
};

namespace detail {
inline void require_positive_count(const char* who, const char* what, std::int64_t v) {
    if (v <= 0) throw value_error(std::string(who) + ": " + what + " must be > 0, got " + std::to_string(v));
}
inline void require_finite_non_negative(const char* who, const char* what, double v) {
    require_non_negative(who, what, v);
}
}  // namespace detail

struct step_lr_options {
    std::int64_t step_size = 1;
    double gamma = 0.1;
};
/// Multiplies the rates by gamma every step_size epochs.
class step_lr : public lr_scheduler {
public:
    step_lr(lr_schedulable& opt, const step_lr_options& o) : lr_scheduler(opt), o_(o) {
        detail::require_positive_count("step_lr", "step_size", o.step_size);
        detail::require_finite_non_negative("step_lr", "gamma", o.gamma);
        start();
    }

private:
    double lr_at(double b, std::int64_t e) const override {
        return b * std::pow(o_.gamma, static_cast<double>(e / o_.step_size));
    }
    step_lr_options o_;
};

struct multi_step_lr_options {
    std::vector<std::int64_t> milestones;
    double gamma = 0.1;
};
/// Multiplies the rates by gamma at each milestone epoch (a milestone listed twice counts twice).
class multi_step_lr : public lr_scheduler {
public:
    multi_step_lr(lr_schedulable& opt, const multi_step_lr_options& o) : lr_scheduler(opt), o_(o) {
        detail::require_finite_non_negative("multi_step_lr", "gamma", o_.gamma);
        for (auto m : o_.milestones)
            if (m < 0) throw value_error("multi_step_lr: milestones must be >= 0, got " + std::to_string(m));
        std::sort(o_.milestones.begin(), o_.milestones.end());
        start();
    }

private:
    double lr_at(double b, std::int64_t e) const override {
        const auto passed = std::upper_bound(o_.milestones.begin(), o_.milestones.end(), e) - o_.milestones.begin();
        return b * std::pow(o_.gamma, static_cast<double>(passed));
    }
    multi_step_lr_options o_;
};

struct exponential_lr_options {
    double gamma = 0.1;
};
/// Multiplies the rates by gamma every epoch.
class exponential_lr : public lr_scheduler {
public:
    exponential_lr(lr_schedulable& opt, const exponential_lr_options& o) : lr_scheduler(opt), o_(o) {
        detail::require_finite_non_negative("exponential_lr", "gamma", o.gamma);
        start();
    }

private:
    double lr_at(double b, std::int64_t e) const override { return b * std::pow(o_.gamma, static_cast<double>(e)); }
    exponential_lr_options o_;
};

struct cosine_annealing_lr_options {
    std::int64_t t_max = 1;
    double eta_min = 0.0;
};
/// Half a cosine from the base rate down to eta_min over t_max epochs (SGDR without restarts;
/// past t_max it rises again, periodically, as in PyTorch).
class cosine_annealing_lr : public lr_scheduler {
public:
    cosine_annealing_lr(lr_schedulable& opt, const cosine_annealing_lr_options& o) : lr_scheduler(opt), o_(o) {
        detail::require_positive_count("cosine_annealing_lr", "t_max", o.t_max);
        detail::require_finite_non_negative("cosine_annealing_lr", "eta_min", o.eta_min);
        start();
    }

private:
    double lr_at(double b, std::int64_t e) const override {
        const double c = std::cos(std::numbers::pi * static_cast<double>(e) / static_cast<double>(o_.t_max));
        return o_.eta_min + (b - o_.eta_min) * (1 + c) / 2;
    }
    cosine_annealing_lr_options o_;
};

struct warmup_cosine_lr_options {
    std::int64_t warmup_steps = 0;
    std::int64_t total_steps = 1;
    double start_factor = 0.0;  // rate at epoch 0, as a fraction of the base rate
    double eta_min = 0.0;
};
/// Linear warm-up from start_factor * base to base over warmup_steps epochs, then a cosine
/// down to eta_min at total_steps, where it stays.
class warmup_cosine_lr : public lr_scheduler {
public:
    warmup_cosine_lr(lr_schedulable& opt, const warmup_cosine_lr_options& o) : lr_scheduler(opt), o_(o) {
        if (o.warmup_steps < 0)
            throw value_error("warmup_cosine_lr: warmup_steps must be >= 0, got " + std::to_string(o.warmup_steps));
        if (o.total_steps <= o.warmup_steps)
            throw value_error("warmup_cosine_lr: total_steps (" + std::to_string(o.total_steps) +
                              ") must exceed warmup_steps (" + std::to_string(o.warmup_steps) + ")");
        if (!(o.start_factor >= 0 && o.start_factor <= 1))
            throw value_error("warmup_cosine_lr: start_factor must be in [0, 1], got " +
                              detail::format_number(o.start_factor));
        detail::require_finite_non_negative("warmup_cosine_lr", "eta_min", o.eta_min);
        start();
    }

private:
    double lr_at(double b, std::int64_t e) const override {
        if (e < o_.warmup_steps)
            return b * (o_.start_factor +
                        (1 - o_.start_factor) * static_cast<double>(e) / static_cast<double>(o_.warmup_steps));
        if (e >= o_.total_steps) return o_.eta_min;
        const double t = static_cast<double>(e - o_.warmup_steps) / static_cast<double>(o_.total_steps - o_.warmup_steps);
        return o_.eta_min + (b - o_.eta_min) * (1 + std::cos(std::numbers::pi * t)) / 2;
    }
    warmup_cosine_lr_options o_;
};

enum class plateau_mode { min, max };
enum class threshold_mode { rel, abs };

struct reduce_lr_on_plateau_options {
    plateau_mode mode = plateau_mode::min;
    double factor = 0.1;
    std::int64_t patience = 10;
    double threshold = 1e-4;
    optim::threshold_mode threshold_mode = optim::threshold_mode::rel;
    std::int64_t cooldown = 0;
    double min_lr = 0.0;
    double eps = 1e-8;
};

/// Multiplies every group's rate by factor (not below min_lr) once the metric passed to
/// step(metric) has not improved for more than `patience` epochs, then waits `cooldown`
/// epochs. Improvement: below best (1 - threshold) in mode min/rel, below best - threshold in
/// min/abs, and the mirror images in mode max. Changes smaller than eps are skipped.
class reduce_lr_on_plateau {
public:
    reduce_lr_on_plateau(lr_schedulable& opt, const reduce_lr_on_plateau_options& o = {}) : opt_(&opt), o_(o) {
        if (!(o.factor >= 0 && o.factor < 1))
            throw value_error("reduce_lr_on_plateau: factor must be in [0, 1), got " + detail::format_number(o.factor));
        if (o.patience < 0)
            throw value_error("reduce_lr_on_plateau: patience must be >= 0, got " + std::to_string(o.patience));
        if (o.cooldown < 0)
            throw value_error("reduce_lr_on_plateau: cooldown must be >= 0, got " + std::to_string(o.cooldown));
        detail::require_finite_non_negative("reduce_lr_on_plateau", "threshold", o.threshold);
        detail::require_finite_non_negative("reduce_lr_on_plateau", "min_lr", o.min_lr);
        detail::require_finite_non_negative("reduce_lr_on_plateau", "eps", o.eps);
        reset();
        for (std::size_t g = 0; g < opt.num_param_groups(); ++g) last_lr_.push_back(opt.lr(g));
    }

    /// One epoch's metric (loss or accuracy). A NaN metric never counts as an improvement.
    void step(double metric) {
        ++epoch_;
        if (better(metric)) {
            best_ = metric;
            bad_epochs_ = 0;
        } else {
            ++bad_epochs_;
        }
        if (cooldown_left_ > 0) {
            --cooldown_left_;
            bad_epochs_ = 0;
        }
        if (bad_epochs_ > o_.patience) {
            for (std::size_t g = 0; g < opt_->num_param_groups(); ++g) {
                const double old = opt_->lr(g);
                const double lr = std::max(old * o_.factor, o_.min_lr);
                if (old - lr > o_.eps) opt_->set_lr(g, lr);
            }
            cooldown_left_ = o_.cooldown;
            bad_epochs_ = 0;
        }
        last_lr_.clear();
        for (std::size_t g = 0; g < opt_->num_param_groups(); ++g) last_lr_.push_back(opt_->lr(g));
    }

    const std::vector<double>& last_lr() const { return last_lr_; }
    std::int64_t last_epoch() const { return epoch_; }
    double best() const { return best_; }
    std::int64_t num_bad_epochs() const { return bad_epochs_; }
    bool in_cooldown() const { return cooldown_left_ > 0; }

    scheduler_state state_dict() const {
        return {{"last_epoch", static_cast<double>(epoch_)},
                {"best", best_},
                {"num_bad_epochs", static_cast<double>(bad_epochs_)},
                {"cooldown_counter", static_cast<double>(cooldown_left_)}};
    }
    void load_state_dict(const scheduler_state& s) {
        const char* who = "reduce_lr_on_plateau";
        epoch_ = static_cast<std::int64_t>(detail::scheduler_scalar(s, "last_epoch", who));
        best_ = detail::scheduler_scalar(s, "best", who);
        bad_epochs_ = static_cast<std::int64_t>(detail::scheduler_scalar(s, "num_bad_epochs", who));
        cooldown_left_ = static_cast<std::int64_t>(detail::scheduler_scalar(s, "cooldown_counter", who));
    }

private:
    void reset() {
        best_ = o_.mode == plateau_mode::min ? std::numeric_limits<double>::infinity()
                                             : -std::numeric_limits<double>::infinity();
        bad_epochs_ = 0;
        cooldown_left_ = 0;
    }
    bool better(double a) const {
        const bool rel = o_.threshold_mode == threshold_mode::rel;
        if (o_.mode == plateau_mode::min) return rel ? a < best_ * (1 - o_.threshold) : a < best_ - o_.threshold;
        return rel ? a > best_ * (1 + o_.threshold) : a > best_ + o_.threshold;
    }

    lr_schedulable* opt_;
    reduce_lr_on_plateau_options o_;
    double best_ = 0;
    std::int64_t bad_epochs_ = 0, cooldown_left_ = 0, epoch_ = 0;
    std::vector<double> last_lr_;
};

}  // namespace xgrad::optim
