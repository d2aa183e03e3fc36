#pragma once
// Normalization layers as barrier ops (their statistics need the whole batch or row).
//
// With xhat = (x - mu) * rstd, rstd = 1 / sqrt(var + eps) (biased variance), y = gamma xhat + beta,
// and sums/means over the m elements that share one mu (a channel for batch_norm, a row for
// layer_norm), the backward formulas are
//   dbeta  = sum g,   dgamma = sum g xhat
//   dx     = rstd / m * (m gamma g - gamma sum g - xhat gamma sum g xhat)     (batch_norm)
//   dx     = rstd * (gg - mean(gg) - xhat mean(gg xhat)),  gg = g gamma      (layer_norm)
// and, for batch_norm in evaluation (fixed running statistics), dx = g gamma rstd.
// The per-group mu and rstd are saved by the forward for the backward of the same pass.
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <memory>
#include <string>
#include <vector>

#include "../core/transfer.hpp"
#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"
#include "detail/line.hpp"

namespace xgrad {

struct batch_norm_options {
    bool training = false;  // batch statistics (and a running-statistics update) or running statistics
    double momentum = 0.1;  // running = (1 - momentum) running + momentum batch
    double eps = 1e-5;
};

namespace detail {

/// mu and rstd per group, written by forward and read by backward.
template <class T>
struct norm_stats {
    std::vector<T> mean, rstd;
    bool running_updated = false;  // batch_norm updates its running statistics once per node
};

/// The same on a device D: mu and rstd per group in device memory.
template <class T, class D>
struct device_norm_stats {
    tensor<T, D> mean, rstd;
    bool running_updated = false;
};

template <class T, class D>
using norm_stats_t = std::conditional_t<std::same_as<D, device::cpu>, norm_stats<T>, device_norm_stats<T, D>>;

// --- the formulas, shared by the CPU drivers below and the device drivers ----------------

/// rstd = 1 / sqrt(var + eps) of a channel or row with biased variance var.
template <class T>
XGRAD_HD XGRAD_INLINE T norm_rstd(T var, T eps) {
    return T(1) / vm::sqrt(var + eps);
}

/// batch_norm's running statistics after a training pass over m values per channel (the
/// running variance is the unbiased estimate, as PyTorch).
template <class T>
XGRAD_HD XGRAD_INLINE void batch_norm_update_running(T& rm, T& rv, T mu, T var, T momentum, std::size_t m) {
    rm = (T(1) - momentum) * rm + momentum * mu;
    rv = (T(1) - momentum) * rv + momentum * var * T(m) / T(m - 1);
}

/// y = x a + b per channel.
template <class T>
struct channel_affine {
    T a, b;
};
/// a = gamma rstd, b = beta - mu a.
template <class T>
XGRAD_HD XGRAD_INLINE channel_affine<T> batch_norm_affine(T gamma, T beta, T mu, T rstd) {
    const T a = gamma * rstd;
    return {a, beta - mu * a};
}

/// One channel's gradients: dgamma, dbeta, and dx = a (g - mg - (x - mu) mgx).
template <class T>
struct batch_norm_channel_grad {
    T dgamma, dbeta, a, mg, mgx;
};
/// From sg = sum g and sgd = sum g (x - mu) over the channel's m values, accumulated in Acc
/// (double on the CPU). training: dx = a (g - sg/m - xhat sgx/m); evaluation: dx = a g.
template <class T, class Acc>
XGRAD_HD XGRAD_INLINE batch_norm_channel_grad<T> batch_norm_grad_of(Acc sg, Acc sgd, T gamma, T rs, std::size_t m,
                                                                   bool training) {
    const Acc sgx = sgd * Acc(rs);  // sum g xhat
    return {static_cast<T>(sgx), static_cast<T>(sg), gamma * rs, training ? static_cast<T>(sg / Acc(m)) : T(0),
            training ? static_cast<T>(sgx / Acc(m)) * rs : T(0)};
}
template <class V, class T>
XGRAD_HD XGRAD_INLINE V batch_norm_dx(V x, V g, T mu, const batch_norm_channel_grad<T>& k) {
    return V(V(k.a) * (g - V(k.mg) - (x - V(mu)) * V(k.mgx)));
}

/// Mean and rstd of one row (see line.hpp), two-pass for accuracy.
template <class L, class T>
XGRAD_HD XGRAD_INLINE void layer_norm_row_stats(const L& line, const T* x, T eps, T& mu, T& rstd) {
    const T n = T(line.n);
    const T m = line.sum([&]<class V>(std::size_t j) { return load<V>(x + line.at(j)); }) / n;
    const T var = line.sum([&]<class V>(std::size_t j) {
                      const V d = load<V>(x + line.at(j)) - V(m);
                      return V(d * d);
                  }) / n;
    mu = m;
    rstd = norm_rstd(var, eps);
}

/// y = (x - mu) rstd gamma + beta.
template <class V, class T>
XGRAD_HD XGRAD_INLINE V layer_norm_y(V x, V gamma, V beta, T mu, T rs) {
    return V((x - V(mu)) * V(rs) * gamma + beta);
}

/// mean(gg) and mean(gg xhat) over one row, gg = g gamma.
template <class L, class T>
XGRAD_HD XGRAD_INLINE void layer_norm_row_grad_means(const L& line, const T* x, const T* g, const T* gamma, T mu, T rs,
                                                     T& mg, T& mgx) {
    const auto s = line.sum2([&]<class V>(std::size_t j) {
        const std::size_t k = line.at(j);
        const V gg = load<V>(g + k) * load<V>(gamma + j);
        return std::pair<V, V>{gg, gg * (load<V>(x + k) - V(mu))};
    });
    mg = s.first / T(line.n);
    mgx = s.second * rs / T(line.n);
}

/// dx = rstd (gg - mean(gg) - xhat mean(gg xhat)).
template <class V, class T>
XGRAD_HD XGRAD_INLINE V layer_norm_dx(V x, V g, V gamma, T mu, T rs, T mg, T mgx) {
    const V xhat = (x - V(mu)) * V(rs);
    return V(V(rs) * (g * gamma - V(mg) - xhat * V(mgx)));
}

/// g xhat, one row's term of dgamma (dbeta's is g).
template <class V, class T>
XGRAD_HD XGRAD_INLINE V layer_norm_dgamma_term(V x, V g, T mu, T rs) {
    return V(g * (x - V(mu)) * V(rs));
}

// --- the CPU drivers ----------------------------------------------------------------------

template <class T, class D = device::cpu>
struct batch_norm_impl {
    static constexpr const char* name = "batch_norm";
    tensor<T, D> running_mean, running_var;  // {C}, updated in place when training
    bool training;
    T momentum, eps;
    std::shared_ptr<norm_stats_t<T, D>> stats = std::make_shared<norm_stats_t<T, D>>();

    shape_t output_shape(const shape_t& xs, const shape_t& gs, const shape_t& bs) const {
        if (xs.size() < 2)
            throw shape_error("batch_norm: input must have shape {N, C, ...}, got " + to_string(xs));
        const shape_t c{xs[1]};
        auto expect = [&](const shape_t& s, const char* what) {
            if (s != c)
                throw shape_error(std::string("batch_norm: ") + what + " of shape " + to_string(s) +
                                  " does not match " + std::to_string(xs[1]) + " channels of input shape " + to_string(xs));
        };
        expect(gs, "gamma");
        expect(bs, "beta");
        expect(running_mean.shape(), "running_mean");
        expect(running_var.shape(), "running_var");
        std::size_t per_channel = 1;
        for (std::size_t d = 0; d < xs.size(); ++d)
            if (d != 1) per_channel *= xs[d];
        if (training && per_channel <= 1)
            throw value_error("batch_norm: training needs more than one value per channel, got input of shape " +
                              to_string(xs));
        return xs;
    }

    tensor<T> forward(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta) const {
        const axis_layout l = layout_along(x.shape(), 1);
        const std::size_t C = l.extent, inner = l.inner, m = l.outer * inner;
        auto& st = *stats;
        st.mean.assign(C, T(0));
        st.rstd.assign(C, T(0));
        const T* px = x.data();
        parallel_rows(C, m, [&](std::size_t c0, std::size_t c1) {
            for (std::size_t c = c0; c < c1; ++c) {
                T mu, var;
                if (training) {
                    // two passes over the channel: mean, then mean squared deviation
                    double s = 0, ss = 0;
                    for (std::size_t o = 0; o < l.outer; ++o)
                        s += simd_sum<T>(inner, [&]<class V>(std::size_t k) { return load<V>(px + (o * C + c) * inner + k); });
                    mu = static_cast<T>(s / double(m));
                    for (std::size_t o = 0; o < l.outer; ++o)
                        ss += simd_sum<T>(inner, [&]<class V>(std::size_t k) {
                            const V d = load<V>(px + (o * C + c) * inner + k) - V(mu);
                            return V(d * d);
                        });
                    var = static_cast<T>(ss / double(m));
                    if (!st.running_updated)
                        batch_norm_update_running(running_mean.data()[c], running_var.data()[c], mu, var, momentum, m);
                } else {
                    mu = running_mean.data()[c];
                    var = running_var.data()[c];
                }
                st.mean[c] = mu;
                st.rstd[c] = norm_rstd(var, eps);
            }
        });
        if (training) st.running_updated = true;
        // y = x a + b with a = gamma rstd, b = beta - mu a, per channel
        auto y = tensor<T>::uninitialized(x.shape());
        T* py = y.data();
        parallel_rows(l.outer * C, inner, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const std::size_t c = r % C;
                const auto ab = batch_norm_affine(gamma.data()[c], beta.data()[c], st.mean[c], st.rstd[c]);
                simd_for<T>(inner, [&]<class V>(std::size_t k) {
                    store(V(load<V>(px + r * inner + k) * V(ab.a) + V(ab.b)), py + r * inner + k);
                });
            }
        });
        return y;
    }

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 3>& in,
                  std::array<tensor<T>*, 3> grad) const {
        const tensor<T>& x = in[0];
        const T* gamma = in[1].data();
        const axis_layout l = layout_along(x.shape(), 1);
        const std::size_t C = l.extent, inner = l.inner, m = l.outer * inner;
        const auto& st = *stats;
        const T *px = x.data(), *pg = g.data();
        parallel_rows(C, 2 * m, [&](std::size_t c0, std::size_t c1) {
            for (std::size_t c = c0; c < c1; ++c) {
                const T mu = st.mean[c], rs = st.rstd[c];
                double sg = 0, sgx = 0;  // sum g, sum g (x - mu)
                for (std::size_t o = 0; o < l.outer; ++o) {
                    const std::size_t base = (o * C + c) * inner;
                    const auto s = simd_sum2<T>(inner, [&]<class V>(std::size_t k) {
                        const V gk = load<V>(pg + base + k);
                        return std::pair<V, V>{gk, gk * (load<V>(px + base + k) - V(mu))};
                    });
                    sg += s.first;
                    sgx += s.second;
                }
                const auto k = batch_norm_grad_of<T>(sg, sgx, gamma[c], rs, m, training);
                if (grad[1]) grad[1]->data()[c] = k.dgamma;
                if (grad[2]) grad[2]->data()[c] = k.dbeta;
                if (!grad[0]) continue;
                T* dx = grad[0]->data();
                for (std::size_t o = 0; o < l.outer; ++o) {
                    const std::size_t base = (o * C + c) * inner;
                    simd_for<T>(inner, [&]<class V>(std::size_t j) {
                        store(batch_norm_dx(load<V>(px + base + j), load<V>(pg + base + j), mu, k), dx + base + j);
                    });
                }
            }
        });
    }
};

template <class T, class Dev = device::cpu>
struct layer_norm_impl {
    static constexpr const char* name = "layer_norm";
    shape_t normalized;  // the trailing dimensions normalized over
    T eps;
    std::shared_ptr<norm_stats_t<T, Dev>> stats = std::make_shared<norm_stats_t<T, Dev>>();

    shape_t output_shape(const shape_t& xs, const shape_t& gs, const shape_t& bs) const {
        const std::size_t k = normalized.size();
        if (k == 0 || xs.size() < k || !std::equal(normalized.begin(), normalized.end(), xs.end() - static_cast<std::ptrdiff_t>(k)))
            throw shape_error("layer_norm: normalized_shape " + to_string(normalized) +
                              " is not the trailing dimensions of input shape " + to_string(xs));
        if (gs != normalized || bs != normalized)
            throw shape_error("layer_norm: gamma of shape " + to_string(gs) + " and beta of shape " + to_string(bs) +
                              " must both have normalized_shape " + to_string(normalized));
        return xs;
    }

    tensor<T> forward(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta) const {
        const std::size_t D = numel(normalized), rows = D ? x.size() / D : 0;
        auto& st = *stats;
        st.mean.assign(rows, T(0));
        st.rstd.assign(rows, T(0));
        auto y = tensor<T>::uninitialized(x.shape());
        const T *px = x.data(), *pgam = gamma.data(), *pbet = beta.data();
        T* py = y.data();
        parallel_rows(rows, D, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const T* xr = px + r * D;
                T mu, rs;
                layer_norm_row_stats(contiguous_line<T>{D}, xr, eps, mu, rs);
                st.mean[r] = mu;
                st.rstd[r] = rs;
                simd_for<T>(D, [&]<class V>(std::size_t j) {
                    store(layer_norm_y(load<V>(xr + j), load<V>(pgam + j), load<V>(pbet + j), mu, rs), py + r * D + j);
                });
            }
        });
        return y;
    }

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 3>& in,
                  std::array<tensor<T>*, 3> grad) const {
        const tensor<T>& x = in[0];
        const std::size_t D = numel(normalized), rows = D ? x.size() / D : 0;
        const auto& st = *stats;
        const T *px = x.data(), *pg = g.data(), *pgam = in[1].data();
        if (grad[0]) {
            T* dx = grad[0]->data();
            parallel_rows(rows, 2 * D, [&](std::size_t r0, std::size_t r1) {
                for (std::size_t r = r0; r < r1; ++r) {
                    const T *xr = px + r * D, *gr = pg + r * D;
                    const T mu = st.mean[r], rs = st.rstd[r];
                    T mg, mgx;
                    layer_norm_row_grad_means(contiguous_line<T>{D}, xr, gr, pgam, mu, rs, mg, mgx);
                    simd_for<T>(D, [&]<class V>(std::size_t j) {
                        store(layer_norm_dx(load<V>(xr + j), load<V>(gr + j), load<V>(pgam + j), mu, rs, mg, mgx),
                              dx + r * D + j);
                    });
                }
            });
        }
        if (grad[1] || grad[2]) {
            // column sums over rows: one pass, vectorized along the row
            std::vector<T> dg(D, T(0)), db(D, T(0));
            for (std::size_t r = 0; r < rows; ++r) {
                const T *xr = px + r * D, *gr = pg + r * D;
                const T mu = st.mean[r], rs = st.rstd[r];
                simd_for<T>(D, [&]<class V>(std::size_t j) {
                    const V gj = load<V>(gr + j);
                    store(V(load<V>(dg.data() + j) + layer_norm_dgamma_term(load<V>(xr + j), gj, mu, rs)), dg.data() + j);
                    store(V(load<V>(db.data() + j) + gj), db.data() + j);
                });
            }
            if (grad[1]) std::copy(dg.begin(), dg.end(), grad[1]->data());
            if (grad[2]) std::copy(db.begin(), db.end(), grad[2]->data());
        }
    }
};

/// layer_norm when `on`, else the identity (y = x, dx = g, zero gamma/beta gradients): one
/// expression type serves both placements of a transformer's norms (norm_first true or false).
/// On any device: when on it runs layer_norm's kernels there (device_kernels), when off it
/// copies the gradient through.
template <class T, class D = device::cpu>
struct switchable_layer_norm_impl {
    static constexpr const char* name = "layer_norm";
    layer_norm_impl<T, D> ln;
    bool on;

    shape_t output_shape(const shape_t& xs, const shape_t& gs, const shape_t& bs) const {
        return ln.output_shape(xs, gs, bs);
    }
    tensor<T, D> forward(const tensor<T, D>& x, const tensor<T, D>& gamma, const tensor<T, D>& beta) const {
        return on ? device_kernels<layer_norm_impl<T, D>, D>::forward(ln, x, gamma, beta) : x;
    }
    void backward(const tensor<T, D>& g, const tensor<T, D>& y, const std::array<tensor<T, D>, 3>& in,
                  std::array<tensor<T, D>*, 3> grad) const {
        if (on) return device_kernels<layer_norm_impl<T, D>, D>::backward(ln, g, y, in, grad);
        if (grad[0]) {
            if constexpr (std::is_same_v<D, device::cpu>)
                std::copy_n(g.data(), g.size(), grad[0]->data());
            else
                grad[0]->assign(g);
        }
        if (grad[1]) grad[1]->fill(T(0));
        if (grad[2]) grad[2]->fill(T(0));
    }
};

}  // namespace detail

/// Batch normalization over every axis but the channel axis 1 of x {N, C, ...}: per channel,
/// y = gamma (x - mu) / sqrt(var + eps) + beta. Training uses the batch's mu and biased var and
/// updates running_mean/running_var ({C}, in place; unbiased var) the first time the node is
/// evaluated; evaluation uses the running statistics. gamma and beta ({C}) may be parameters or
/// plain tensors.
template <operand X, operand G, operand B, class D>
auto batch_norm(X&& x, G&& gamma, B&& beta, const tensor<typename expr_t<X>::value_type, D>& running_mean,
                const tensor<typename expr_t<X>::value_type, D>& running_var, batch_norm_options opt = {}) {
    using T = typename expr_t<X>::value_type;
    static_assert(std::is_floating_point_v<T>, "xgrad::batch_norm: elements must be float or double");
    if (!running_mean.is_contiguous() || !running_var.is_contiguous())
        throw value_error("batch_norm: running_mean and running_var must be contiguous (they are updated in place)");
    if (!(opt.eps > 0)) throw value_error("batch_norm: eps must be > 0, got " + std::to_string(opt.eps));
    if (!(opt.momentum >= 0 && opt.momentum <= 1))
        throw value_error("batch_norm: momentum must be in [0, 1], got " + std::to_string(opt.momentum));
    static_assert(std::same_as<detail::op_device_t<expr_t<X>, expr_t<G>, expr_t<B>>, D>,
                  "xgrad::batch_norm: running_mean and running_var must be on the input's device");
    detail::batch_norm_impl<T, D> impl{running_mean, running_var, opt.training, static_cast<T>(opt.momentum),
                                       static_cast<T>(opt.eps)};
    return make_op(std::move(impl), std::forward<X>(x), std::forward<G>(gamma), std::forward<B>(beta));
}

/// Layer normalization over the trailing dimensions `normalized_shape` of x:
/// y = gamma (x - mu) / sqrt(var + eps) + beta, with mu and the biased var per row; gamma and
/// beta have normalized_shape.
template <operand X, operand G, operand B>
auto layer_norm(X&& x, const shape_t& normalized_shape, G&& gamma, B&& beta, double eps = 1e-5) {
    using T = typename expr_t<X>::value_type;
    static_assert(std::is_floating_point_v<T>, "xgrad::layer_norm: elements must be float or double");
    if (!(eps > 0)) throw value_error("layer_norm: eps must be > 0, got " + std::to_string(eps));
    using D = detail::op_device_t<expr_t<X>, expr_t<G>, expr_t<B>>;
    return make_op(detail::layer_norm_impl<T, D>{normalized_shape, static_cast<T>(eps)}, std::forward<X>(x),
                   std::forward<G>(gamma), std::forward<B>(beta));
}

/// Layer normalization over the last `last_k` dimensions of x (gamma and beta have their shape).
template <operand X, std::integral K, operand G, operand B>
auto layer_norm(X&& x, K last_k, G&& gamma, B&& beta, double eps = 1e-5) {
    auto e = as_expr(std::forward<X>(x));
    const shape_t& s = e.shape();
    if (last_k < 1 || static_cast<std::size_t>(last_k) > s.size())
        throw shape_error("layer_norm: cannot normalize over the last " + std::to_string(last_k) +
                          " dimensions of input shape " + to_string(s));
    const shape_t normalized(s.end() - static_cast<std::ptrdiff_t>(last_k), s.end());
    return layer_norm(std::move(e), normalized, std::forward<G>(gamma), std::forward<B>(beta), eps);
}

/// Layer normalization without the affine part (gamma = 1, beta = 0).
template <operand X>
auto layer_norm(X&& x, const shape_t& normalized_shape, double eps = 1e-5) {
    using T = typename expr_t<X>::value_type;
    using D = detail::op_device_t<expr_t<X>>;
    return layer_norm(std::forward<X>(x), normalized_shape, ones<T, D>(normalized_shape), zeros<T, D>(normalized_shape),
                      eps);
}

}  // namespace xgrad
