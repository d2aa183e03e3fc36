#pragma once
// Dropout layer, as torch.nn.Dropout (Srivastava et al., 2014): in training each element is
// zeroed with probability p and the rest scaled by 1 / (1 - p); in evaluation the identity.
// Each forward in training draws a new mask from the layer's own generator, which is split
// off default_generator() (or the generator given) when the layer is built.
#include <string>

#include "../ops/nn_functional.hpp"
#include "module.hpp"

namespace xgrad::nn {

class dropout : public module<dropout> {
public:
    static constexpr const char* kind = "dropout";
    explicit dropout(double p = 0.5, rng& gen = default_generator()) : p_(p), gen_(gen.split()) {
        if (!(p >= 0 && p < 1)) throw value_error("dropout: p must be in [0, 1), got " + std::to_string(p));
    }
    double p() const { return p_; }
    /// The mask generator (checkpoints save its state so that a resumed fit draws the same masks).
    rng& generator() { return gen_; }
    template <operand X>
    auto forward(X&& x) {
        return xgrad::dropout(std::forward<X>(x), p_, this->is_training(), gen_);
    }

private:
    double p_;
    rng gen_;
};

}  // namespace xgrad::nn
