#pragma once
// 2-D convolution layer, as torch.nn.Conv2d: x {N, in, H, W} -> {N, out, OH, OW} with weight
// {out, in / groups, kh, kw} and bias {out} (see ops/conv.hpp for the formula). PyTorch's
// default initialisation: weight and bias ~ U(-k, k), k = 1 / sqrt(in / groups * kh * kw),
// drawn on the host and copied to Device (as in linear).
#include <cmath>
#include <string>
#include <tuple>

#include "../core/transfer.hpp"
#include "../ops/dense.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

struct conv2d_options {
    size2 stride = 1;
    size2 padding = 0;
    size2 dilation = 1;
    std::ptrdiff_t groups = 1;
    bool bias = true;
};

template <class T = float, class Device = device::cpu>
class conv2d : public module<conv2d<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::conv2d<T>: T must be float or double");
    template <class, class>
    friend class conv2d;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "conv2d";

    parameter<T, Device> weight;
    parameter<T, Device> bias;  // a zero tensor, never listed, without a bias (as in linear)

    conv2d(std::size_t in_channels, std::size_t out_channels, size2 kernel_size, const conv2d_options& o = {},
           rng& gen = default_generator())
        : in_(in_channels), out_(out_channels), opt_{o.stride, o.padding, o.dilation, o.groups}, has_bias_(o.bias) {
        const auto g = o.groups;
        if (in_channels == 0 || out_channels == 0)
            throw value_error("conv2d: in_channels and out_channels must be > 0, got " + std::to_string(in_channels) +
                              " and " + std::to_string(out_channels));
        if (kernel_size.h < 1 || kernel_size.w < 1)
            throw value_error("conv2d: kernel_size must be >= 1, got " + to_string(kernel_size));
        if (g < 1 || in_channels % static_cast<std::size_t>(g) != 0 || out_channels % static_cast<std::size_t>(g) != 0)
            throw value_error("conv2d: groups (" + std::to_string(g) + ") must be >= 1 and divide in_channels (" +
                              std::to_string(in_channels) + ") and out_channels (" + std::to_string(out_channels) + ")");
        const shape_t ws{out_channels, in_channels / static_cast<std::size_t>(g),
                         static_cast<std::size_t>(kernel_size.h), static_cast<std::size_t>(kernel_size.w)};
        std::tie(weight, bias) = detail::default_weight_and_bias<T, Device>(ws, has_bias_, gen);
    }

    /// The same layer on Device: parameters copied (xgrad::to<Device>(model) uses this).
    template <class From>
    explicit conv2d(const conv2d<T, From>& o)
        : weight(xgrad::to<Device>(o.weight)),
          bias(xgrad::to<Device>(o.bias)),
          in_(o.in_),
          out_(o.out_),
          opt_(o.opt_),
          has_bias_(o.has_bias_) {
        this->set_training(o.is_training());
    }

    std::size_t in_channels() const { return in_; }
    std::size_t out_channels() const { return out_; }
    const xgrad::conv2d_options& options() const { return opt_; }
    bool has_bias() const { return has_bias_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        if (s.size() != 4 || s[1] != in_)
            throw shape_error("expected input of shape {N, " + std::to_string(in_) + ", H, W}, got " + to_string(s));
        return xgrad::conv2d(std::move(e), weight, bias, opt_);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
        if (has_bias_) f("bias", bias);
    }

private:
    std::size_t in_, out_;
    xgrad::conv2d_options opt_;
    bool has_bias_;
};

}  // namespace xgrad::nn
