#pragma once
// Normalization layers, as torch.nn.BatchNorm1d/BatchNorm2d (Ioffe & Szegedy, 2015) and
// LayerNorm (Ba, Kiros & Hinton, 2016); ops/norm.hpp has the formulas and gradients.
//   batch norm: y = gamma (x - mu) / sqrt(var + eps) + beta per channel (axis 1), with the
//     batch's statistics in training (running_mean/var updated with `momentum`, unbiased var)
//     and the running ones in evaluation. Defaults: gamma = 1, beta = 0, running_mean = 0,
//     running_var = 1, eps = 1e-5, momentum = 0.1, as PyTorch.
//   layer norm: the same over the trailing normalized_shape of each sample, always with the
//     sample's own statistics; gamma = 1, beta = 0.
// Without affine parameters gamma and beta are fixed tensors of ones and zeros (never listed,
// trained or saved); without track_running_stats batch statistics are used in both modes.
// Parameters and running statistics live on the layers' Device.
#include <algorithm>
#include <string>

#include "../core/transfer.hpp"
#include "../ops/nn_functional.hpp"
#include "module.hpp"

namespace xgrad::nn {

struct batch_norm_options {
    double eps = 1e-5;
    double momentum = 0.1;
    bool affine = true;
    bool track_running_stats = true;
};

namespace detail {

/// Batch norm over {N, C, ...} inputs of an accepted rank (Ranks lists them).
template <class T, class Device, class Derived, std::size_t... Ranks>
class batch_norm_base : public module<Derived> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn batch norm: T must be float or double");
    template <class, class, class, std::size_t...>
    friend class batch_norm_base;

public:
    using value_type = T;
    using device_type = Device;

    parameter<T, Device> weight, bias;       // gamma, beta {C}
    tensor<T, Device> running_mean, running_var;  // {C}

    /// The same layer on Device (parameters and running statistics copied).
    template <class From, class Other>
    explicit batch_norm_base(const batch_norm_base<T, From, Other, Ranks...>& o)
        : weight(xgrad::to<Device>(o.weight)),
          bias(xgrad::to<Device>(o.bias)),
          running_mean(xgrad::to<Device>(o.running_mean).clone()),
          running_var(xgrad::to<Device>(o.running_var).clone()),
          c_(o.c_),
          o_(o.o_) {
        this->set_training(o.is_training());
    }

    batch_norm_base(std::size_t num_features, const batch_norm_options& o)
        : weight(xgrad::param(ones<T, Device>({num_features}))),
          bias(xgrad::param(zeros<T, Device>({num_features}))),
          running_mean(zeros<T, Device>({num_features})),
          running_var(ones<T, Device>({num_features})),
          c_(num_features),
          o_(o) {
        if (num_features == 0) throw value_error(std::string(Derived::kind) + ": num_features must be > 0");
        if (!(o.eps > 0)) throw value_error(std::string(Derived::kind) + ": eps must be > 0, got " + std::to_string(o.eps));
        if (!(o.momentum >= 0 && o.momentum <= 1))
            throw value_error(std::string(Derived::kind) + ": momentum must be in [0, 1], got " +
                              std::to_string(o.momentum));
        if (!o.affine) {
            weight.requires_grad(false);
            bias.requires_grad(false);
        }
    }

    std::size_t num_features() const { return c_; }
    const batch_norm_options& options() const { return o_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        if (((s.size() != Ranks) && ...) || s[1] != c_) throw shape_error("expected input of shape " + expected() + ", got " + to_string(s));
        const bool batch_stats = this->is_training() || !o_.track_running_stats;
        // without tracking, the statistics go to scratch tensors nobody reads
        const tensor<T, Device>& rm = o_.track_running_stats ? running_mean : zeros<T, Device>({c_});
        const tensor<T, Device>& rv = o_.track_running_stats ? running_var : ones<T, Device>({c_});
        return xgrad::batch_norm(std::move(e), weight, bias, rm, rv,
                                 {.training = batch_stats, .momentum = o_.momentum, .eps = o_.eps});
    }

    template <class F>
    void for_each_member(F&& f) {
        if (o_.affine) {
            f("weight", weight);
            f("bias", bias);
        }
        if (o_.track_running_stats) {
            f("running_mean", running_mean);
            f("running_var", running_var);
        }
    }

private:
    std::string expected() const {
        const std::string c = std::to_string(c_);
        std::string out;
        for (std::size_t r : {Ranks...}) {
            out += out.empty() ? "" : " or ";
            out += r == 2 ? "{N, " + c + "}" : r == 3 ? "{N, " + c + ", L}" : "{N, " + c + ", H, W}";
        }
        return out;
    }
    std::size_t c_;
    batch_norm_options o_;
};

}  // namespace detail

/// Batch norm over {N, C} or {N, C, L} inputs.
template <class T = float, class Device = device::cpu>
class batch_norm1d : public detail::batch_norm_base<T, Device, batch_norm1d<T, Device>, 2, 3> {
    using base = detail::batch_norm_base<T, Device, batch_norm1d<T, Device>, 2, 3>;

public:
    static constexpr const char* kind = "batch_norm1d";
    explicit batch_norm1d(std::size_t num_features, const batch_norm_options& o = {}) : base(num_features, o) {}
    template <class From>
    explicit batch_norm1d(const batch_norm1d<T, From>& o) : base(o) {}
};

/// Batch norm over {N, C, H, W} inputs.
template <class T = float, class Device = device::cpu>
class batch_norm2d : public detail::batch_norm_base<T, Device, batch_norm2d<T, Device>, 4> {
    using base = detail::batch_norm_base<T, Device, batch_norm2d<T, Device>, 4>;

public:
    static constexpr const char* kind = "batch_norm2d";
    explicit batch_norm2d(std::size_t num_features, const batch_norm_options& o = {}) : base(num_features, o) {}
    template <class From>
    explicit batch_norm2d(const batch_norm2d<T, From>& o) : base(o) {}
};

struct layer_norm_options {
    double eps = 1e-5;
    bool elementwise_affine = true;
};

/// Layer norm over the trailing dimensions normalized_shape.
template <class T = float, class Device = device::cpu>
class layer_norm : public module<layer_norm<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::layer_norm<T>: T must be float or double");
    template <class, class>
    friend class layer_norm;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "layer_norm";

    parameter<T, Device> weight, bias;  // gamma, beta of normalized_shape

    /// The same layer on Device (parameters copied).
    template <class From>
    explicit layer_norm(const layer_norm<T, From>& o)
        : weight(xgrad::to<Device>(o.weight)), bias(xgrad::to<Device>(o.bias)), shape_(o.shape_), o_(o.o_) {
        this->set_training(o.is_training());
    }

    explicit layer_norm(shape_t normalized_shape, const layer_norm_options& o = {})
        : weight(xgrad::param(ones<T, Device>(normalized_shape))),
          bias(xgrad::param(zeros<T, Device>(normalized_shape))),
          shape_(std::move(normalized_shape)),
          o_(o) {
        if (shape_.empty() || numel(shape_) == 0)
            throw value_error("layer_norm: normalized_shape must be non-empty, got " + to_string(shape_));
        if (!(o.eps > 0)) throw value_error("layer_norm: eps must be > 0, got " + std::to_string(o.eps));
        if (!o.elementwise_affine) {
            weight.requires_grad(false);
            bias.requires_grad(false);
        }
    }
    explicit layer_norm(std::size_t features, const layer_norm_options& o = {}) : layer_norm(shape_t{features}, o) {}

    const shape_t& normalized_shape() const { return shape_; }
    const layer_norm_options& options() const { return o_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        const std::size_t k = shape_.size();
        if (s.size() < k || !std::equal(shape_.begin(), shape_.end(), s.end() - static_cast<std::ptrdiff_t>(k))) {
            std::string want = to_string(shape_);
            throw shape_error("expected input of shape {..., " + want.substr(1, want.size() - 2) + "}, got " +
                              to_string(s));
        }
        return xgrad::layer_norm(std::move(e), shape_, weight, bias, o_.eps);
    }

    template <class F>
    void for_each_member(F&& f) {
        if (o_.elementwise_affine) {
            f("weight", weight);
            f("bias", bias);
        }
    }

private:
    shape_t shape_;
    layer_norm_options o_;
};

}  // namespace xgrad::nn
