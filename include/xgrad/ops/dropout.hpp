#pragma once
// Dropout with inverted scaling: in training each element is zeroed with probability p and
// the survivors are scaled by 1/(1-p), so the expected value is unchanged and evaluation
// needs no rescaling; in evaluation it is the identity.
//
// It is elementwise, so it fuses: dropout(x) is the expression x * mask, where the mask
// (0 or 1/(1-p) per element) is drawn once, when dropout() is called. Forward and backward of
// that expression therefore see the same mask (d/dx = mask), however often it is evaluated;
// calling dropout() again draws a new one.
//
// On a device the mask is made there by one kernel: element i is kept when a counter-based
// hash of (seed, i) falls at or above p, with the seed drawn from `gen`; the hash is the
// same on every device, though it is not the CPU's mask.
#include <cstdint>
#include <string>

#include "../core/rng.hpp"
#include "../core/transfer.hpp"
#include "../expr/functions.hpp"
#include "detail/device_kernels.hpp"

namespace xgrad {

namespace detail {
/// The mask of dropout on a device (device_kernels<dropout_mask<T>, D>::make(*this, shape)):
/// keep = 1/(1-p) where uniform(seed, i) >= p, else 0.
template <class T>
struct dropout_mask {
    double p;
    std::uint64_t seed;
};
}  // namespace detail

/// x with elements dropped with probability p in [0, 1) when `training`; draws from `gen`.
/// In evaluation (or with p = 0) the mask is a single 1 that broadcasts: y = x exactly.
template <operand X>
auto dropout(X&& x, double p, bool training, rng& gen) {
    auto e = as_expr(std::forward<X>(x));
    using T = typename decltype(e)::value_type;
    static_assert(std::is_floating_point_v<T>, "xgrad::dropout: elements must be float or double");
    if (!(p >= 0 && p < 1)) throw value_error("dropout: p must be in [0, 1), got " + std::to_string(p));
    using D = detail::op_device_t<decltype(e)>;
    if constexpr (!std::is_same_v<D, device::cpu>) {
        static_assert(detail::has_device_kernels<detail::dropout_mask<T>, D>,
                      "xgrad::dropout: no mask kernel on the operand's device");
        tensor<T, D> mask = !training || p == 0
                                ? full<T, D>({}, T(1))
                                : detail::device_kernels<detail::dropout_mask<T>, D>::make(
                                      detail::dropout_mask<T>{p, gen()}, e.shape());
        return std::move(e) * std::move(mask);
    } else {
        tensor<T> mask;
        if (!training || p == 0) {
            mask = full<T>({}, T(1));
        } else {
            mask = tensor<T>::uninitialized(e.shape());
            const T keep = static_cast<T>(1.0 / (1.0 - p));
            T* m = mask.data();
            for (std::size_t i = 0; i < mask.size(); ++i) m[i] = gen.uniform() < p ? T(0) : keep;
        }
        return std::move(e) * std::move(mask);
    }
}

}  // namespace xgrad
