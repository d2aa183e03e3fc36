#pragma once
// Fully connected layer, as torch.nn.Linear: y = x W^T + b with W {out, in}, b {out}, for x of
// shape {..., in}. PyTorch's default initialisation: W ~ U(-k, k) (kaiming_uniform with
// a = sqrt(5)) and b ~ U(-k, k), k = 1 / sqrt(in).
#include <cmath>
#include <string>

#include "../ops/dense.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

struct linear_options {
    bool bias = true;
};

template <class T = float>
class linear : public module<linear<T>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::linear<T>: T must be float or double");

public:
    using value_type = T;
    static constexpr const char* kind = "linear";

    parameter<T> weight;
    // Without a bias this is a zero tensor that is never listed, trained or saved: the layer
    // keeps one expression type either way, and the GEMM epilogue adds it for free.
    parameter<T> bias;

    linear(std::size_t in_features, std::size_t out_features, const linear_options& o = {},
           rng& gen = default_generator())
        : weight(xgrad::param(tensor<T>::uninitialized({out_features, in_features}))),
          bias(xgrad::param(zeros<T>({out_features}))),
          in_(in_features),
          out_(out_features),
          has_bias_(o.bias) {
        if (in_features == 0 || out_features == 0)
            throw value_error("linear: in_features and out_features must be > 0, got " + std::to_string(in_features) +
                              " and " + std::to_string(out_features));
        init::kaiming_uniform(weight, gen, {.a = std::sqrt(5.0)});
        if (has_bias_) {
            const double k = 1.0 / std::sqrt(static_cast<double>(in_features));
            init::uniform(bias, gen, -k, k);
        } else {
            bias.requires_grad(false);
        }
    }

    std::size_t in_features() const { return in_; }
    std::size_t out_features() const { return out_; }
    bool has_bias() const { return has_bias_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        if (s.empty() || s.back() != in_)
            throw shape_error("expected input of shape {..., " + std::to_string(in_) + "}, got " + to_string(s));
        return xgrad::linear(std::move(e), weight, bias);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
        if (has_bias_) f("bias", bias);
    }

private:
    std::size_t in_, out_;
    bool has_bias_;
};

}  // namespace xgrad::nn
