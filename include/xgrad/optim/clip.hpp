#pragma once
// Gradient clipping, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_. Parameters whose
// gradient is logically zero (no backward reached them since zero_grad) are left out, like
// PyTorch parameters whose .grad is None. Parameters on a device are clipped there (the norms'
// sums run on the device; only one number per parameter comes back).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../backend/cpu/engine.hpp"
#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../expr/assign.hpp"
#include "../expr/functions.hpp"
#include "../expr/reduce.hpp"

namespace xgrad::optim {

namespace detail {
template <class T, class D>
bool has_grad(const parameter<T, D>& p) {
    return p.requires_grad() && !p.state().grad_zero;
}
}  // namespace detail

/// The norm of all gradients together, ||(||g_1||, ..., ||g_n||)||_norm_type (norm_type > 0,
/// or infinity for the largest magnitude).
template <class T, class D>
double grad_norm(const std::vector<parameter<T, D>>& params, double norm_type = 2.0) {
    if (!(norm_type > 0))
        throw value_error("grad_norm: norm_type must be > 0 (or infinity), got " + std::to_string(norm_type));
    const bool inf = std::isinf(norm_type);
    double total = 0;
    for (auto& p : params) {
        if (!detail::has_grad(p) || p.size() == 0) continue;
        const tensor<T, D>& g = p.grad();
        if (inf) {
            total = std::max(total, static_cast<double>(eval(max(abs(g))).item()));
        } else if (norm_type == 2.0) {
            const double n = std::sqrt(static_cast<double>(eval(sum(square(g))).item()));
            total += n * n;
        } else if (norm_type == 1.0) {
            total += static_cast<double>(eval(sum(abs(g))).item());
        } else {
            total += static_cast<double>(eval(sum(pow(abs(g), norm_type))).item());
        }
    }
    if (inf || norm_type == 1.0) return total;
    return norm_type == 2.0 ? std::sqrt(total) : std::pow(total, 1.0 / norm_type);
}

/// Scales all gradients by min(1, max_norm / (total_norm + 1e-6)) so that their joint norm is
/// at most max_norm; returns the norm before clipping. With error_if_nonfinite, a NaN or
/// infinite norm throws value_error instead of spreading NaN into the gradients.
template <class T, class D>
double clip_grad_norm_(const std::vector<parameter<T, D>>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
    if (!(max_norm >= 0))
        throw value_error("clip_grad_norm_: max_norm must be >= 0, got " + std::to_string(max_norm));
    const double total = grad_norm(params, norm_type);
    if (error_if_nonfinite && !std::isfinite(total))
        throw value_error("clip_grad_norm_: the total norm of order " + std::to_string(norm_type) +
                          " of the gradients is " + std::to_string(total));
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0 || std::isnan(coef)) {
        const T c(coef);
        for (auto& p : params)
            if (detail::has_grad(p)) assign(p.grad(), p.grad() * c);
    }
    return total;
}

/// Clamps every gradient element to [-clip_value, clip_value].
template <class T, class D>
void clip_grad_value_(const std::vector<parameter<T, D>>& params, double clip_value) {
    if (!(clip_value >= 0))
        throw value_error("clip_grad_value_: clip_value must be >= 0, got " + std::to_string(clip_value));
    const T c(clip_value);
    for (auto& p : params)
        if (detail::has_grad(p)) assign(p.grad(), minimum(maximum(p.grad(), -c), c));
}

}  // namespace xgrad::optim
