#pragma once
// RMSprop (Hinton, Srivastava & Swersky, 2012, Neural Networks for Machine Learning, lecture
// 6e; centered form from Graves, 2013), exactly as torch.optim.RMSprop. With
// g = grad + weight_decay * p:
//   v  = alpha v + (1 - alpha) g^2
//   centered: a = a + (1 - alpha) (g - a),  d = sqrt(v - a^2) + eps;  else d = sqrt(v) + eps
//   momentum > 0: b = momentum b + g / d,  p -= lr b;                  else p -= lr g / d
// One fused loop per parameter reads p, grad and the state once and writes each once.
#include "optimizer.hpp"

namespace xgrad::optim {

struct rmsprop_options {
    double lr = 1e-2;
    double alpha = 0.99;
    double eps = 1e-8;
    double weight_decay = 0.0;
    double momentum = 0.0;
    bool centered = false;

    template <class F>
    void fields(F&& f) {
        f("lr", lr);
        f("alpha", alpha);
        f("eps", eps);
        f("weight_decay", weight_decay);
        f("momentum", momentum);
        f("centered", centered);
    }
};

template <class T, class Device = device::cpu>
class rmsprop : public optimizer<rmsprop<T, Device>, T, rmsprop_options, Device> {
    using base = optimizer<rmsprop<T, Device>, T, rmsprop_options, Device>;
    friend base;

public:
    static constexpr const char* name = "rmsprop";

    explicit rmsprop(std::vector<parameter<T, Device>> params, const rmsprop_options& o = {})
        : base(std::move(params), o) {}

    static void validate(const rmsprop_options& o) {
        detail::require_non_negative(name, "lr", o.lr);
        detail::require_non_negative(name, "alpha", o.alpha);
        detail::require_non_negative(name, "eps", o.eps);
        detail::require_non_negative(name, "weight_decay", o.weight_decay);
        detail::require_non_negative(name, "momentum", o.momentum);
    }

private:
    void update(const parameter<T, Device>& p, const tensor<T, Device>& grad, param_state<T, Device>& s,
                const rmsprop_options& o) {
        const tensor<T, Device>& w = p.value();
        with_denominator(w, grad + T(o.weight_decay) * w, s, o);  // + 0 exactly without decay
    }

    template <class G>
    static void with_denominator(const tensor<T, Device>& w, const G& g, param_state<T, Device>& s,
                                 const rmsprop_options& o) {
        const tensor<T, Device> v = s.get("square_avg", w.shape());
        const T alpha(o.alpha), c(1 - o.alpha), eps(o.eps);
        auto v_next = into(v, v * alpha + c * g * g);
        if (o.centered) {
            const tensor<T, Device> a = s.get("grad_avg", w.shape());
            descend(w, g, sqrt(v - a * a) + eps, s, o, v_next, into(a, a + c * (g - a)));
        } else {
            descend(w, g, sqrt(v) + eps, s, o, v_next);
        }
    }

    // `state` are the assignments of v (and a), which run before the denominator reads them.
    template <class G, class D, class... S>
    static void descend(const tensor<T, Device>& w, const G& g, const D& d, param_state<T, Device>& s,
                        const rmsprop_options& o, const S&... state) {
        const T lr(o.lr);
        if (o.momentum > 0) {
            const tensor<T, Device> b = s.get("momentum_buffer", w.shape());
            assign(state..., into(b, b * T(o.momentum) + g / d), into(w, w - lr * b));
        } else {
            assign(state..., into(w, w - lr * g / d));
        }
    }
};

}  // namespace xgrad::optim
