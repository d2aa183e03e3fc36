#pragma once
// The one generic gradient checker: central finite differences in float64 against both
// backward paths (explicit upstream gradient, and the fused sum at the root).
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "../core/rng.hpp"
#include "backward.hpp"

namespace xgrad {

struct gradcheck_options {
    double eps = 1e-6;    // finite-difference step
    double rtol = 1e-5;   // |analytic - numeric| <= atol + rtol * |numeric|
    double atol = 1e-6;
};

struct gradcheck_result {
    bool ok = true;
    double max_abs_error = 0;
    std::size_t checked = 0;  // gradient elements compared
    std::string report;       // the first mismatches, readable
    explicit operator bool() const { return ok; }
};

/// Checks d(f())/d(params) where f is a callable returning an expression over `params`.
/// A non-scalar output is contracted with fixed random weights R, so the vector-Jacobian
/// product is checked in every direction: L = sum(f() * R).
template <class F>
gradcheck_result gradcheck(F&& f, const std::vector<parameter<double>>& params, rng& gen,
                           gradcheck_options opt = {}) {
    gradcheck_result res;
    const tensor<double> y = eval(f());
    const tensor<double> w = randn<double>(y.shape(), gen);
    auto contract = [&](const tensor<double>& v) {
        double s = 0;
        const auto a = v.to_vector(), b = w.to_vector();
        for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
        return s;
    };

    // analytic gradients, two ways
    std::vector<std::vector<double>> upstream_grads, fused_grads;
    for (auto& p : params) p.zero_grad();
    backward(f(), w);
    for (auto& p : params) upstream_grads.push_back(p.grad().to_vector());
    for (auto& p : params) p.zero_grad();
    const double fused_value = backward(sum(f() * w));
    for (auto& p : params) fused_grads.push_back(p.grad().to_vector());
    for (auto& p : params) p.zero_grad();

    std::ostringstream rep;
    auto mismatch = [&](double a, double n) {
        return !(std::fabs(a - n) <= opt.atol + opt.rtol * std::fabs(n));  // NaN fails
    };
    const double direct_value = contract(y);
    if (mismatch(fused_value, direct_value)) {
        res.ok = false;
        rep << "fused backward value " << fused_value << " != eval value " << direct_value << "\n";
    }

    int reported = 0;
    for (std::size_t k = 0; k < params.size(); ++k) {
        const tensor<double>& v = params[k].value();
        std::vector<std::ptrdiff_t> offs;
        detail::for_each_offset(v.shape(), v.strides(), [&](std::ptrdiff_t o) { offs.push_back(o); });
        for (std::size_t i = 0; i < offs.size(); ++i) {
            double& x = v.data()[offs[i]];
            const double orig = x;
            x = orig + opt.eps;
            const double fp = contract(eval(f()));
            x = orig - opt.eps;
            const double fm = contract(eval(f()));
            x = orig;
            const double num = (fp - fm) / (2 * opt.eps);
            for (const auto* g : {&upstream_grads[k], &fused_grads[k]}) {
                const double a = (*g)[i];
                res.max_abs_error = std::max(res.max_abs_error, std::fabs(a - num));
                ++res.checked;
                if (mismatch(a, num)) {
                    res.ok = false;
                    if (reported++ < 8)
                        rep << "param " << k << " shape " << to_string(v.shape()) << " element " << i << ": "
                            << (g == &upstream_grads[k] ? "upstream" : "fused") << " analytic " << a
                            << " vs numeric " << num << "\n";
                }
            }
        }
    }
    res.report = rep.str();
    return res;
}

}  // namespace xgrad
