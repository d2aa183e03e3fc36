#pragma once
// Fully connected layer, as torch.nn.Linear: y = x W^T + b with W {out, in}, b {out}, for x of
// shape {..., in}. PyTorch's default initialisation: W ~ U(-k, k) (kaiming_uniform with
// a = sqrt(5)) and b ~ U(-k, k), k = 1 / sqrt(in). On a device (linear<float, Device>) the
// values are drawn on the host from the same generator, then copied: a model built with the same
// seed has the CPU model's weights.
#include <cmath>
#include <string>
#include <tuple>

#include "../core/transfer.hpp"
#include "../ops/dense.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

struct linear_options {
    bool bias = true;
};

template <class T = float, class Device = device::cpu>
class linear : public module<linear<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::linear<T>: T must be float or double");
    template <class, class>
    friend class linear;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "linear";

    parameter<T, Device> weight;
    // Without a bias this is a zero tensor that is never listed, trained or saved: the layer
    // keeps one expression type either way, and the GEMM epilogue adds it for free.
    parameter<T, Device> bias;

    linear(std::size_t in_features, std::size_t out_features, const linear_options& o = {},
           rng& gen = default_generator())
        : in_(in_features), out_(out_features), has_bias_(o.bias) {
        if (in_features == 0 || out_features == 0)
            throw value_error("linear: in_features and out_features must be > 0, got " + std::to_string(in_features) +
                              " and " + std::to_string(out_features));
        std::tie(weight, bias) =
            detail::default_weight_and_bias<T, Device>({out_features, in_features}, has_bias_, gen);
    }

    /// The same layer on Device: parameters copied (xgrad::to<Device>(model) uses this).
    template <class From>
    explicit linear(const linear<T, From>& o)
        : weight(xgrad::to<Device>(o.weight)),
          bias(xgrad::to<Device>(o.bias)),
          in_(o.in_),
          out_(o.out_),
          has_bias_(o.has_bias_) {
        this->set_training(o.is_training());
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
