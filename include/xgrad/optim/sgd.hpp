#pragma once
// Stochastic gradient descent with momentum (Polyak, 1964; Sutskever et al., 2013 for the
// Nesterov form), exactly as torch.optim.SGD. With d = grad + weight_decay * p:
//   momentum == 0:  p -= lr * d
//   otherwise:      b = d                                    (first step)
//                   b = momentum * b + (1 - dampening) * d   (later steps)
//                   p -= lr * (nesterov ? d + momentum * b : b)
// One fused loop per parameter reads p, grad and b once and writes p and b once.
#include "optimizer.hpp"

namespace xgrad::optim {

struct sgd_options {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;

    template <class F>
    void fields(F&& f) {
        f("lr", lr);
        f("momentum", momentum);
        f("dampening", dampening);
        f("weight_decay", weight_decay);
        f("nesterov", nesterov);
    }
};

template <class T, class Device = device::cpu>
class sgd : public optimizer<sgd<T, Device>, T, sgd_options, Device> {
    using base = optimizer<sgd<T, Device>, T, sgd_options, Device>;
    friend base;

public:
    static constexpr const char* name = "sgd";

    explicit sgd(std::vector<parameter<T, Device>> params, const sgd_options& o = {}) : base(std::move(params), o) {}

    static void validate(const sgd_options& o) {
        detail::require_non_negative(name, "lr", o.lr);
        detail::require_non_negative(name, "momentum", o.momentum);
        detail::require_non_negative(name, "weight_decay", o.weight_decay);
        if (!std::isfinite(o.dampening))
            throw value_error("sgd: dampening must be finite, got " + detail::format_number(o.dampening));
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            throw value_error("sgd: nesterov momentum needs momentum > 0 and dampening == 0, got momentum " +
                              detail::format_number(o.momentum) + " and dampening " +
                              detail::format_number(o.dampening));
    }

private:
    // Weight decay, the first step and Nesterov are coefficients rather than branches, so each
    // case runs the same loop: d = grad + wd p (wd may be 0, which adds an exact 0), and with
    // b starting at zero, b = mu' b + c d with (mu', c) = (0, 1) on the first step and
    // (momentum, 1 - dampening) after; then p -= lr (n d + mu_n b) with (n, mu_n) = (1, momentum)
    // for Nesterov and (0, 1) otherwise. Every coefficient that is 0 or 1 is exact in IEEE
    // arithmetic, so this agrees with PyTorch's branches to the last bit for finite values.
    void update(const parameter<T, Device>& p, const tensor<T, Device>& grad, param_state<T, Device>& s,
                const sgd_options& o) {
        const tensor<T, Device>& w = p.value();
        const T lr(o.lr), wd(o.weight_decay);
        auto d = grad + wd * w;
        if (o.momentum == 0) {
            assign(into(w, w - lr * d));
            return;
        }
        const bool first = s.find("momentum_buffer") == nullptr;
        const tensor<T, Device> b = s.get("momentum_buffer", w.shape());
        const T mu_b(first ? 0.0 : o.momentum), c(first ? 1.0 : 1 - o.dampening);
        const T n(o.nesterov ? 1.0 : 0.0), mu_n(o.nesterov ? o.momentum : 1.0);
        assign(into(b, b * mu_b + c * d), into(w, w - lr * (n * d + mu_n * b)));
    }
};

}  // namespace xgrad::optim
