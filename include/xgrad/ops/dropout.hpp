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
//
// barrier_dropout_impl is the same dropout as a barrier op, for an operand that is
// materialized anyway (the input of a linear layer): y = x * mask, dx = g * mask, and without a
// mask (p = 0 or evaluation) y = x and dx = g with no pass over the data and no copy (the
// elementwise form x * 1 would cost a pass each way). Its element formula is dropout_apply; the
// Thrust devices' driver is in backend/thrust/ops_embedding.hpp.
#include <array>
#include <cstdint>
#include <string>

#include "../core/rng.hpp"
#include "../core/transfer.hpp"
#include "../expr/functions.hpp"
#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/epilogue.hpp"
#include "detail/layout.hpp"

namespace xgrad {

namespace detail {
/// The mask of dropout on a device (device_kernels<dropout_mask<T>, D>::make(*this, shape)):
/// keep = 1/(1-p) where uniform(seed, i) >= p, else 0.
template <class T>
struct dropout_mask {
    double p;
    std::uint64_t seed;
};

/// A dropout mask of shape s on D: 0 with probability p, else 1/(1-p). The CPU draws every
/// element from gen in order; a device draws one seed from gen and runs dropout_mask's kernel.
template <class T, class D>
tensor<T, D> dropout_keep_mask(const shape_t& s, double p, rng& gen) {
    if constexpr (!std::is_same_v<D, device::cpu>) {
        static_assert(has_device_kernels<dropout_mask<T>, D>, "xgrad::dropout: no mask kernel on the operand's device");
        return device_kernels<dropout_mask<T>, D>::make(dropout_mask<T>{p, gen()}, s);
    } else {
        auto mask = tensor<T>::uninitialized(s);
        const T keep = static_cast<T>(1.0 / (1.0 - p));
        T* m = mask.data();
        for (std::size_t i = 0; i < mask.size(); ++i) m[i] = gen.uniform() < p ? T(0) : keep;
        return mask;
    }
}

/// Dropout's element formula, y = x m (and its backward, dx = g m), for a SIMD batch or a scalar.
template <class V>
XGRAD_HD XGRAD_INLINE V dropout_apply(V x, V m) {
    return x * m;
}

/// Dropout as a barrier op (see the top of this file). D: the operand's device.
template <class T, class D = device::cpu>
struct barrier_dropout_impl {
    static constexpr const char* name = "dropout";
    tensor<T, D> mask;  // 0 or 1/(1-p) per element; empty: the identity

    shape_t output_shape(const shape_t& s) const {
        if (mask.size() != 0 && mask.shape() != s)
            throw shape_error("dropout: mask of shape " + to_string(mask.shape()) + " for an input of shape " + to_string(s));
        return s;
    }
    tensor<T> forward(const tensor<T>& x) const {
        if (mask.size() == 0) return x;
        auto y = tensor<T>::uninitialized(x.shape());
        apply(x.data(), mask.data(), y.data(), y.size());
        return y;
    }
    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>&,
                  std::array<tensor<T>*, 1> dx) const {
        if (!dx[0]) return;
        if (mask.size() == 0) {
            *dx[0] = g;  // shares g's storage: dx = g
            return;
        }
        apply(g.data(), mask.data(), dx[0]->data(), g.size());
    }
    static void apply(const T* a, const T* m, T* out, std::size_t n) {
        parallel_chunks(n, std::size_t{1} << 15, [&](std::size_t lo, std::size_t hi) {
            simd_for<T>(hi - lo, [&]<class V>(std::size_t i) {
                store(dropout_apply(load<V>(a + lo + i), load<V>(m + lo + i)), out + lo + i);
            });
        });
    }
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
    tensor<T, D> mask =
        !training || p == 0 ? full<T, D>({}, T(1)) : detail::dropout_keep_mask<T, D>(e.shape(), p, gen);
    return std::move(e) * std::move(mask);
}

}  // namespace xgrad
