#pragma once
// Parameter initializers, all drawing from an explicit xgrad::rng so results are reproducible.
// Each fills a tensor (or a parameter's value) in place and returns it, like torch.nn.init.*_.
//
// Fans of a weight {out, in, k...}: fan_in = in * prod(k), fan_out = out * prod(k).
//   xavier_uniform  U(-a, a),  a   = gain * sqrt(6 / (fan_in + fan_out))   (Glorot & Bengio, 2010)
//   xavier_normal   N(0, s^2), s   = gain * sqrt(2 / (fan_in + fan_out))
//   kaiming_uniform U(-b, b),  b   = gain * sqrt(3 / fan)                    (He et al., 2015)
//   kaiming_normal  N(0, s^2), s   = gain / sqrt(fan)
// where fan is fan_in or fan_out (mode) and gain = calculate_gain(nonlinearity, a).
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../core/transfer.hpp"

namespace xgrad::nn::init {

/// The nonlinearity that follows a layer; it sets the gain that keeps activations' variance.
enum class nonlinearity { linear, conv, sigmoid, tanh, relu, leaky_relu, selu };

/// Whether kaiming_* preserves the variance of activations (fan_in) or of gradients (fan_out).
enum class fan_mode { fan_in, fan_out };

/// PyTorch's recommended gains: 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu,
/// sqrt(2 / (1 + slope^2)) for leaky_relu (slope defaults to 0.01), 3/4 for selu.
inline double calculate_gain(nonlinearity nl, std::optional<double> param = std::nullopt) {
    switch (nl) {
        case nonlinearity::linear:
        case nonlinearity::conv:
        case nonlinearity::sigmoid: return 1.0;
        case nonlinearity::tanh: return 5.0 / 3.0;
        case nonlinearity::relu: return std::sqrt(2.0);
        case nonlinearity::leaky_relu: {
            const double slope = param.value_or(0.01);
            if (!std::isfinite(slope))
                throw value_error("calculate_gain: leaky_relu slope must be finite, got " + std::to_string(slope));
            return std::sqrt(2.0 / (1.0 + slope * slope));
        }
        case nonlinearity::selu: return 0.75;
    }
    throw value_error("calculate_gain: unknown nonlinearity");
}

/// {fan_in, fan_out} of a weight of shape {out, in, k...}; needs at least two dimensions.
inline std::pair<std::size_t, std::size_t> calculate_fan_in_and_fan_out(const shape_t& s) {
    if (s.size() < 2)
        throw shape_error("calculate_fan_in_and_fan_out: needs a tensor with at least 2 dimensions, got shape " +
                          to_string(s));
    std::size_t receptive = 1;
    for (std::size_t d = 2; d < s.size(); ++d) receptive *= s[d];
    return {s[1] * receptive, s[0] * receptive};
}

/// Options of kaiming_uniform/kaiming_normal (PyTorch's defaults): `a` is the negative slope
/// of the leaky_relu that follows (only used for leaky_relu).
struct kaiming_options {
    double a = 0.0;
    fan_mode mode = fan_mode::fan_in;
    init::nonlinearity nonlinearity = init::nonlinearity::leaky_relu;
};

namespace detail {

template <class X>
struct init_target;
template <class T>
struct init_target<tensor<T>> {
    using value_type = T;
    static const tensor<T>& values(const tensor<T>& t) { return t; }
};
template <class T>
struct init_target<parameter<T>> {
    using value_type = T;
    static const tensor<T>& values(const parameter<T>& p) { return p.value(); }
};

/// Sets every element of t to f() in row-major order (any strides).
template <class T, class F>
void generate(const tensor<T>& t, F&& f) {
    T* p = t.data();
    xgrad::detail::for_each_offset(t.shape(), t.strides(), [&](std::ptrdiff_t o) { p[o] = static_cast<T>(f()); });
}

XGRAD_OUTLINE void check_finite(double v, const char* fn, const char* what) {
    if (!std::isfinite(v)) throw value_error(std::string(fn) + ": " + what + " must be finite, got " + std::to_string(v));
}
XGRAD_INSTANCE(void check_finite(double v, const char* fn, const char* what))
inline void check_non_negative(double v, const char* fn, const char* what) {
    if (!(v >= 0.0) || !std::isfinite(v))
        throw value_error(std::string(fn) + ": " + what + " must be finite and >= 0, got " + std::to_string(v));
}

inline std::size_t fan(const shape_t& s, fan_mode m) {
    auto [in, out] = calculate_fan_in_and_fan_out(s);
    return m == fan_mode::fan_in ? in : out;
}

}  // namespace detail

/// A tensor<T> or parameter<T> (an initializer fills the parameter's value).
template <class X>
concept initializable = requires { typename detail::init_target<std::remove_cvref_t<X>>::value_type; } &&
                        std::is_floating_point_v<typename detail::init_target<std::remove_cvref_t<X>>::value_type>;

template <class X>
auto& values_of(const X& x) {
    return detail::init_target<X>::values(x);
}

/// Every element set to `value`.
template <initializable X>
const X& constant(const X& x, double value) {
    using T = typename detail::init_target<X>::value_type;
    values_of(x).fill(static_cast<T>(value));
    return x;
}
template <initializable X>
const X& zeros(const X& x) {
    return constant(x, 0.0);
}
template <initializable X>
const X& ones(const X& x) {
    return constant(x, 1.0);
}

/// U(lo, hi).
template <initializable X>
const X& uniform(const X& x, rng& gen, double lo = 0.0, double hi = 1.0) {
    detail::check_finite(lo, "uniform", "lo");
    detail::check_finite(hi, "uniform", "hi");
    if (!(lo <= hi)) throw value_error("uniform: lo " + std::to_string(lo) + " must be <= hi " + std::to_string(hi));
    detail::generate(values_of(x), [&] { return gen.uniform(lo, hi); });
    return x;
}

/// N(mean, std^2).
template <initializable X>
const X& normal(const X& x, rng& gen, double mean = 0.0, double std = 1.0) {
    detail::check_finite(mean, "normal", "mean");
    detail::check_non_negative(std, "normal", "std");
    detail::generate(values_of(x), [&] { return gen.normal(mean, std); });
    return x;
}

/// U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)).
template <initializable X>
const X& xavier_uniform(const X& x, rng& gen, double gain = 1.0) {
    detail::check_non_negative(gain, "xavier_uniform", "gain");
    const auto& t = values_of(x);
    if (t.empty()) return x;
    const auto [in, out] = calculate_fan_in_and_fan_out(t.shape());
    const double a = gain * std::sqrt(6.0 / static_cast<double>(in + out));
    detail::generate(t, [&] { return gen.uniform(-a, a); });
    return x;
}

/// N(0, s^2) with s = gain sqrt(2 / (fan_in + fan_out)).
template <initializable X>
const X& xavier_normal(const X& x, rng& gen, double gain = 1.0) {
    detail::check_non_negative(gain, "xavier_normal", "gain");
    const auto& t = values_of(x);
    if (t.empty()) return x;
    const auto [in, out] = calculate_fan_in_and_fan_out(t.shape());
    const double s = gain * std::sqrt(2.0 / static_cast<double>(in + out));
    detail::generate(t, [&] { return gen.normal(0.0, s); });
    return x;
}

/// U(-b, b) with b = gain sqrt(3 / fan); PyTorch's default for linear and conv weights uses
/// {.a = sqrt(5)}, which gives b = 1 / sqrt(fan_in).
template <initializable X>
const X& kaiming_uniform(const X& x, rng& gen, kaiming_options opt = {}) {
    detail::check_finite(opt.a, "kaiming_uniform", "a");
    const auto& t = values_of(x);
    if (t.empty()) return x;
    const double b = calculate_gain(opt.nonlinearity, opt.a) *
                     std::sqrt(3.0 / static_cast<double>(detail::fan(t.shape(), opt.mode)));
    detail::generate(t, [&] { return gen.uniform(-b, b); });
    return x;
}

/// N(0, s^2) with s = gain / sqrt(fan).
template <initializable X>
const X& kaiming_normal(const X& x, rng& gen, kaiming_options opt = {}) {
    detail::check_finite(opt.a, "kaiming_normal", "a");
    const auto& t = values_of(x);
    if (t.empty()) return x;
    const double s =
        calculate_gain(opt.nonlinearity, opt.a) / std::sqrt(static_cast<double>(detail::fan(t.shape(), opt.mode)));
    detail::generate(t, [&] { return gen.normal(0.0, s); });
    return x;
}

}  // namespace xgrad::nn::init

namespace xgrad::nn::detail {

/// The weight (of shape {out, in, k...}) and bias {out} of a linear or convolution layer, with
/// PyTorch's default initialisation: weight kaiming_uniform {.a = sqrt(5)}, bias U(-k, k) with
/// k = 1 / sqrt(fan_in); without a bias, a zero tensor that requires no gradient. Drawn on the
/// host from `gen`, then copied to Device, so a model built with the same seed has the CPU
/// model's values.
template <class T, class Device>
std::pair<parameter<T, Device>, parameter<T, Device>> default_weight_and_bias(const shape_t& weight_shape,
                                                                              bool has_bias, rng& gen) {
    auto w = xgrad::param(tensor<T>::uninitialized(weight_shape));
    auto b = xgrad::param(zeros<T>({weight_shape[0]}));
    init::kaiming_uniform(w, gen, {.a = std::sqrt(5.0)});
    if (has_bias) {
        const double k = 1.0 / std::sqrt(static_cast<double>(init::calculate_fan_in_and_fan_out(weight_shape).first));
        init::uniform(b, gen, -k, k);
    } else {
        b.requires_grad(false);
    }
    return {xgrad::to<Device>(w), xgrad::to<Device>(b)};
}

}  // namespace xgrad::nn::detail
