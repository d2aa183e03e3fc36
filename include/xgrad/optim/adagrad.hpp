#pragma once
// Adagrad (Duchi, Hazan & Singer, 2011), exactly as torch.optim.Adagrad. At step t, with
// g = grad + weight_decay * p:
//   s  += g^2                                   (s starts at initial_accumulator_value)
//   p  -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
// One fused loop per parameter reads p, grad and s once and writes p and s once.
#include "optimizer.hpp"

namespace xgrad::optim {

struct adagrad_options {
    double lr = 1e-2;
    double lr_decay = 0.0;
    double weight_decay = 0.0;
    double initial_accumulator_value = 0.0;
    double eps = 1e-10;

    template <class F>
    void fields(F&& f) {
        f("lr", lr);
        f("lr_decay", lr_decay);
        f("weight_decay", weight_decay);
        f("initial_accumulator_value", initial_accumulator_value);
        f("eps", eps);
    }
};

template <class T, class Device = device::cpu>
class adagrad : public optimizer<adagrad<T, Device>, T, adagrad_options, Device> {
    using base = optimizer<adagrad<T, Device>, T, adagrad_options, Device>;
    friend base;

public:
    static constexpr const char* name = "adagrad";

    explicit adagrad(std::vector<parameter<T, Device>> params, const adagrad_options& o = {})
        : base(std::move(params), o) {}

    static void validate(const adagrad_options& o) {
        detail::require_non_negative(name, "lr", o.lr);
        detail::require_non_negative(name, "lr_decay", o.lr_decay);
        detail::require_non_negative(name, "weight_decay", o.weight_decay);
        detail::require_non_negative(name, "initial_accumulator_value", o.initial_accumulator_value);
        detail::require_non_negative(name, "eps", o.eps);
    }

private:
    // The accumulator exists from the start, as in PyTorch (it holds initial_accumulator_value).
    static void init_state(const parameter<T, Device>& p, param_state<T, Device>& s, const adagrad_options& o) {
        s.get("sum", p.shape(), T(o.initial_accumulator_value));
    }

    void update(const parameter<T, Device>& p, const tensor<T, Device>& grad, param_state<T, Device>& s,
                const adagrad_options& o) {
        const tensor<T, Device>& w = p.value();
        const tensor<T, Device> acc = s.get("sum", w.shape(), T(o.initial_accumulator_value));
        const T neg_clr(-o.lr / (1 + static_cast<double>(s.step - 1) * o.lr_decay)), eps(o.eps);
        auto g = grad + T(o.weight_decay) * w;  // + 0 exactly without decay
        assign(into(acc, acc + g * g), into(w, w + neg_clr * g / (sqrt(acc) + eps)));
    }
};

}  // namespace xgrad::optim
