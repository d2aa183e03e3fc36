#pragma once
// Models on devices. A layer's device is a template argument (nn::linear<float, Device>, CPU by
// default); a model moves like a tensor:
//
//   auto model = nn::sequential(nn::linear(4, 8), nn::relu(), nn::linear(8, 2));
//   auto gpu_model = xgrad::to<xgrad::device::cuda>(model);   // same weights, on the GPU
//
// to<Device>(model) rebuilds the library's layers (and sequentials of them) with the device
// argument replaced, copying parameters and buffers; layers without parameters are copied.
// A user layer templated as my_layer<T, Device> moves the same way when it has a converting
// constructor from my_layer<T, From>; any other layer is built on the device by its own
// constructor and filled with nn::copy_state(device_model, cpu_model), which copies every
// parameter and buffer by dotted name.
#include <string>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/transfer.hpp"
#include "module.hpp"
#include "sequential.hpp"

namespace xgrad::nn {

/// The type of layer L on device To: L<T, To> for a layer template over <T, Device>, a
/// sequential of converted layers, L itself for a layer without a device.
template <class L, class To>
struct on_device {
    using type = L;
};
// (a layer that names its device_type must name D: L<T, Act, Device = cpu> also binds here, as
// L<T, Act>, and has its own specialization)
template <template <class, class> class L, class T, class D, class To>
    requires layer<L<T, D>> && std::is_floating_point_v<T> &&
             (!requires { typename L<T, D>::device_type; } || std::is_same_v<typename L<T, D>::device_type, D>)
struct on_device<L<T, D>, To> {
    using type = L<T, To>;
};
template <class... L, class To>
struct on_device<sequential<L...>, To> {
    using type = sequential<typename on_device<L, To>::type...>;
};
template <class L, class To>
using on_device_t = typename on_device<std::remove_cvref_t<L>, To>::type;

/// Copies every parameter and buffer of `src` into the one of the same dotted name in `dst`
/// (any devices; through the host between two devices). Names and shapes must match exactly,
/// else value_error/shape_error and nothing is copied.
template <layer Dst, layer Src>
Dst& copy_state(Dst& dst, Src& src) {
    auto dp = named_parameters(dst);
    auto sp = named_parameters(src);
    auto db = named_buffers(dst);
    auto sb = named_buffers(src);
    auto check = [](const auto& d, const auto& s, const char* what) {
        if (d.size() != s.size())
            throw value_error(std::string("copy_state: the models have ") + std::to_string(d.size()) + " and " +
                              std::to_string(s.size()) + " " + what);
        for (std::size_t i = 0; i < d.size(); ++i) {
            if (d[i].first != s[i].first)
                throw value_error(std::string("copy_state: ") + what + " '" + d[i].first + "' and '" + s[i].first +
                                  "' differ in name");
            const shape_t& ds = d[i].second.shape();  // a parameter's or a tensor's
            const shape_t& ss = s[i].second.shape();
            if (ds != ss)
                throw shape_error("copy_state: '" + d[i].first + "' has shape " + to_string(ds) + " here and " +
                                  to_string(ss) + " in the source");
        }
    };
    check(dp, sp, "parameters");
    check(db, sb, "buffers");
    using T = value_type_of<Dst>;
    using D = device_type_of<Dst>;
    auto copy = [](const tensor<T, D>& d, const auto& s) {
        d.assign(xgrad::to<D>(s.template astype<T>()));
    };
    for (std::size_t i = 0; i < dp.size(); ++i) copy(dp[i].second.value(), sp[i].second.value());
    for (std::size_t i = 0; i < db.size(); ++i) copy(db[i].second, sb[i].second);
    return dst;
}

}  // namespace xgrad::nn

namespace xgrad {

/// The model on device To: a new model of type nn::on_device_t<M, To> with copies of the
/// parameters and buffers, in the same training mode (see the top of this file). A model on To
/// already comes back as a copy sharing its parameters, as to<To>(tensor) returns the tensor.
template <class To, nn::layer M>
nn::on_device_t<M, To> to(const M& model) {
    using R = nn::on_device_t<M, To>;
    static_assert(std::is_constructible_v<R, const M&>,
                  "xgrad::to<Device>(model): this layer cannot be converted to the device; give it a converting "
                  "constructor from its CPU version, or build it on the device and call "
                  "xgrad::nn::copy_state(device_model, cpu_model)");
    return R(model);
}

}  // namespace xgrad
