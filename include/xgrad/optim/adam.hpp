#pragma once
// Adam (Kingma & Ba, 2015), its AMSGrad variant (Reddi et al., 2018) and AdamW with decoupled
// weight decay (Loshchilov & Hutter, 2019), exactly as torch.optim.Adam/AdamW. At step t:
//   g  = grad (+ weight_decay * p for Adam)        p *= 1 - lr * weight_decay   (AdamW)
//   m  = m + (1 - beta1) (g - m)                    v = beta2 v + (1 - beta2) g^2
//   v^ = max(v^, v) with amsgrad, else v
//   p -= lr / (1 - beta1^t) * m / (sqrt(v^) / sqrt(1 - beta2^t) + eps)
// One fused loop per parameter reads p, grad, m, v (and v^) once and writes each once.
#include "optimizer.hpp"

namespace xgrad::optim {

/// Options of adam.
struct adam_options {
    double lr = 1e-3;
    std::pair<double, double> betas{0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool amsgrad = false;

    template <class F>
    void fields(F&& f) {
        f("lr", lr);
        f("beta1", betas.first);
        f("beta2", betas.second);
        f("eps", eps);
        f("weight_decay", weight_decay);
        f("amsgrad", amsgrad);
    }
};

/// Options of adamw: adam's, with weight_decay 1e-2 by default (a separate aggregate so that
/// designated initializers work).
struct adamw_options {
    double lr = 1e-3;
    std::pair<double, double> betas{0.9, 0.999};
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;

    template <class F>
    void fields(F&& f) {
        f("lr", lr);
        f("beta1", betas.first);
        f("beta2", betas.second);
        f("eps", eps);
        f("weight_decay", weight_decay);
        f("amsgrad", amsgrad);
    }
};

namespace detail {

template <bool Decoupled>
struct adam_rule {
    template <class O>
    static void validate(const char* name, const O& o) {
        require_non_negative(name, "lr", o.lr);
        require_non_negative(name, "eps", o.eps);
        require_in_unit_interval(name, "beta1 (betas.first)", o.betas.first);
        require_in_unit_interval(name, "beta2 (betas.second)", o.betas.second);
        require_non_negative(name, "weight_decay", o.weight_decay);
    }

    // Coupled decay enters the gradient (g = grad + wd p), decoupled decay scales p first
    // (p (1 - lr wd)); the unused one has coefficient 0 or 1, exact in IEEE arithmetic, so Adam
    // and AdamW share one loop.
    template <class T, class Device, class O>
    static void update(const tensor<T, Device>& w, const tensor<T, Device>& grad, param_state<T, Device>& s,
                       const O& o);
};

template <bool Decoupled>
template <class T, class Device, class O>
void adam_rule<Decoupled>::update(const tensor<T, Device>& w, const tensor<T, Device>& grad, param_state<T, Device>& s,
                                  const O& o) {
    const tensor<T, Device> m = s.get("exp_avg", w.shape());
    const tensor<T, Device> v = s.get("exp_avg_sq", w.shape());
    const double t = static_cast<double>(s.step);
    const double b1 = o.betas.first, b2 = o.betas.second;
    const double step_size = o.lr / (1 - std::pow(b1, t));
    const T bc2_sqrt(std::sqrt(1 - std::pow(b2, t)));
    const T neg_step(-step_size), eps(o.eps), c1(1 - b1), c2(1 - b2), beta2(b2);
    const T wd(Decoupled ? 0.0 : o.weight_decay), keep(Decoupled ? 1 - o.lr * o.weight_decay : 1.0);

    auto g = grad + wd * w;
    auto m_next = into(m, m + c1 * (g - m));
    auto v_next = into(v, v * beta2 + c2 * g * g);
    if (o.amsgrad) {
        const tensor<T, Device> vmax = s.get("max_exp_avg_sq", w.shape());
        assign(m_next, v_next, into(vmax, maximum(vmax, v)),
               into(w, w * keep + neg_step * m / (sqrt(vmax) / bc2_sqrt + eps)));
    } else {
        assign(m_next, v_next, into(w, w * keep + neg_step * m / (sqrt(v) / bc2_sqrt + eps)));
    }
}
XGRAD_INSTANCE(void adam_rule<false>::update(const tensor<float>&, const tensor<float>&, param_state<float>&,
                                             const adam_options&))
XGRAD_INSTANCE(void adam_rule<true>::update(const tensor<float>&, const tensor<float>&, param_state<float>&,
                                            const adamw_options&))

}  // namespace detail

template <class T, class Device = device::cpu>
class adam : public optimizer<adam<T, Device>, T, adam_options, Device> {
    using base = optimizer<adam<T, Device>, T, adam_options, Device>;
    friend base;

public:
    static constexpr const char* name = "adam";
    explicit adam(std::vector<parameter<T, Device>> params, const adam_options& o = {}) : base(std::move(params), o) {}
    static void validate(const adam_options& o) { detail::adam_rule<false>::validate(name, o); }

private:
    void update(const parameter<T, Device>& p, const tensor<T, Device>& grad, param_state<T, Device>& s,
                const adam_options& o) {
        detail::adam_rule<false>::update(p.value(), grad, s, o);
    }
};

template <class T, class Device = device::cpu>
class adamw : public optimizer<adamw<T, Device>, T, adamw_options, Device> {
    using base = optimizer<adamw<T, Device>, T, adamw_options, Device>;
    friend base;

public:
    static constexpr const char* name = "adamw";
    explicit adamw(std::vector<parameter<T, Device>> params, const adamw_options& o = {})
        : base(std::move(params), o) {}
    static void validate(const adamw_options& o) { detail::adam_rule<true>::validate(name, o); }

private:
    void update(const parameter<T, Device>& p, const tensor<T, Device>& grad, param_state<T, Device>& s,
                const adamw_options& o) {
        detail::adam_rule<true>::update(p.value(), grad, s, o);
    }
};

// Adam and AdamW over float CPU parameters: the optimizer's bookkeeping compiled once in
// xgrad_precompiled (core/config.hpp).
XGRAD_INSTANCE(void optimizer<adam<float>, float, adam_options>::add_param_group(std::vector<parameter<float>>,
                                                                                const adam_options&))
XGRAD_INSTANCE(optim::state_dict<float> optimizer<adam<float>, float, adam_options>::state_dict() const)
XGRAD_INSTANCE(void optimizer<adam<float>, float, adam_options>::load_state_dict(const optim::state_dict<float>&))
XGRAD_INSTANCE(void optimizer<adamw<float>, float, adamw_options>::add_param_group(std::vector<parameter<float>>,
                                                                                  const adamw_options&))
XGRAD_INSTANCE(optim::state_dict<float> optimizer<adamw<float>, float, adamw_options>::state_dict() const)
XGRAD_INSTANCE(void optimizer<adamw<float>, float, adamw_options>::load_state_dict(const optim::state_dict<float>&))

}  // namespace xgrad::optim
