#pragma once
// batch_norm and layer_norm on the Thrust devices: only the drivers; the per-channel, per-row
// and per-element formulas are ops/norm.hpp's, shared with the CPU.
//   batch_norm: the per-channel sums are reductions of the fused engine over the {outer, C,
//     inner} view (one loop + one merge each, parallel over every element); a launch over the
//     C channels turns them into statistics (and the running update), and one launch over the
//     elements applies them.
//   layer_norm: one position per row computes its mean and rstd, one per element applies
//     them; backward has a per-row pass, a per-element pass and a per-column pass for the
//     gamma/beta sums (each column summed over the rows in order: deterministic).
#include "../../ops/norm.hpp"
#include "engine.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

/// Per channel c: mean[c] = mu; rstd[c]; running statistics updated once (m values each).
template <class T>
struct batch_norm_stats {
    const T* mu;
    const T* var;
    T* mean;
    T* rstd;
    T* running_mean;  // null: no update
    T* running_var;
    T momentum, eps;
    std::size_t m;
    XGRAD_HD void operator()(std::ptrdiff_t c) const {
        mean[c] = mu[c];
        rstd[c] = norm_rstd(var[c], eps);
        if (running_mean) batch_norm_update_running(running_mean[c], running_var[c], mu[c], var[c], momentum, m);
    }
};

/// Element k of channel c = (k / inner) % C: y = x a + b.
template <class T>
struct batch_norm_apply {
    const T *x, *gamma, *beta, *mean, *rstd;
    T* y;
    std::size_t C, inner;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t c = (static_cast<std::size_t>(k) / inner) % C;
        const auto ab = batch_norm_affine(gamma[c], beta[c], mean[c], rstd[c]);
        y[k] = x[k] * ab.a + ab.b;
    }
};

/// Per channel, from sg = sum g and sgd = sum g (x - mu): dgamma, dbeta, and dx's coefficients.
template <class T>
struct batch_norm_grad_coefs {
    const T *sg, *sgd, *gamma, *rstd;
    T *dgamma, *dbeta;
    batch_norm_channel_grad<T>* coef;
    std::size_t m;
    bool training;
    XGRAD_HD void operator()(std::ptrdiff_t c) const {
        const batch_norm_channel_grad<T> k = batch_norm_grad_of<T>(sg[c], sgd[c], gamma[c], rstd[c], m, training);
        if (dgamma) dgamma[c] = k.dgamma;
        if (dbeta) dbeta[c] = k.dbeta;
        coef[c] = k;
    }
};

template <class T>
struct batch_norm_dx_kernel {
    const T *x, *g, *mean;
    const batch_norm_channel_grad<T>* coef;
    T* dx;
    std::size_t C, inner;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t c = (static_cast<std::size_t>(k) / inner) % C;
        dx[k] = batch_norm_dx(x[k], g[k], mean[c], coef[c]);
    }
};

/// Row r of D values: mean and rstd.
template <class T>
struct layer_norm_stats {
    const T* x;
    T *mean, *rstd;
    std::size_t D;
    T eps;
    XGRAD_HD void operator()(std::ptrdiff_t r) const {
        layer_norm_row_stats(strided_lines<T>{D, 1}, x + static_cast<std::size_t>(r) * D, eps, mean[r], rstd[r]);
    }
};

template <class T>
struct layer_norm_apply {
    const T *x, *gamma, *beta, *mean, *rstd;
    T* y;
    std::size_t D;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t r = static_cast<std::size_t>(k) / D, j = static_cast<std::size_t>(k) - r * D;
        y[k] = layer_norm_y(x[k], gamma[j], beta[j], mean[r], rstd[r]);
    }
};

/// Row r: mean(gg) and mean(gg xhat), gg = g gamma, into mg[r], mgx[r].
template <class T>
struct layer_norm_row_sums {
    const T *x, *g, *gamma, *mean, *rstd;
    T *mg, *mgx;
    std::size_t D;
    XGRAD_HD void operator()(std::ptrdiff_t r) const {
        const std::size_t b = static_cast<std::size_t>(r) * D;
        layer_norm_row_grad_means(strided_lines<T>{D, 1}, x + b, g + b, gamma, mean[r], rstd[r], mg[r], mgx[r]);
    }
};

template <class T>
struct layer_norm_dx_kernel {
    const T *x, *g, *gamma, *mean, *rstd, *mg, *mgx;
    T* dx;
    std::size_t D;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t r = static_cast<std::size_t>(k) / D, j = static_cast<std::size_t>(k) - r * D;
        dx[k] = layer_norm_dx(x[k], g[k], gamma[j], mean[r], rstd[r], mg[r], mgx[r]);
    }
};

/// Column j: dgamma[j] = sum_r g xhat, dbeta[j] = sum_r g, rows in order.
template <class T>
struct layer_norm_column_sums {
    const T *x, *g, *mean, *rstd;
    T *dgamma, *dbeta;  // either may be null
    std::size_t rows, D;
    XGRAD_HD void operator()(std::ptrdiff_t j) const {
        T sg = 0, sgx = 0;
        for (std::size_t r = 0; r < rows; ++r) {
            const std::size_t k = r * D + static_cast<std::size_t>(j);
            sgx += layer_norm_dgamma_term(x[k], g[k], mean[r], rstd[r]);
            sg += g[k];
        }
        if (dgamma) dgamma[j] = sgx;
        if (dbeta) dbeta[j] = sg;
    }
};

}  // namespace thrust_backend

template <class T, thrust_device D>
struct device_kernels<batch_norm_impl<T, D>, D> {
    static constexpr bool available = true;
    using op = batch_norm_impl<T, D>;

    /// x as {outer, C, inner} (a view: op_node hands over contiguous inputs).
    static tensor<T, D> grouped(const tensor<T, D>& x, const axis_layout& l) {
        return x.reshape(shape_t{l.outer, l.extent, l.inner});
    }

    static tensor<T, D> forward(const op& o, const tensor<T, D>& x, const tensor<T, D>& gamma, const tensor<T, D>& beta) {
        const axis_layout l = layout_along(x.shape(), 1);
        const std::size_t C = l.extent, m = l.outer * l.inner;
        auto& st = *o.stats;
        st.mean = tensor<T, D>::uninitialized({C});
        st.rstd = tensor<T, D>::uninitialized({C});
        tensor<T, D> mu, var;
        const bool update = o.training && !st.running_updated;
        if (o.training) {
            const auto xg = grouped(x, l);
            mu = xgrad::eval(xgrad::mean(xg, {0, 2}));
            var = xgrad::eval(xgrad::mean(xgrad::square(xg - mu.reshape(shape_t{1, C, 1})), {0, 2}));
            st.running_updated = true;
        } else {
            mu = o.running_mean;
            var = o.running_var;
        }
        thrust_backend::for_each_index<D>(
            C, thrust_backend::batch_norm_stats<T>{mu.data(), var.data(), st.mean.data(), st.rstd.data(),
                                                   update ? o.running_mean.data() : nullptr,
                                                   update ? o.running_var.data() : nullptr, o.momentum, o.eps, m});
        auto y = tensor<T, D>::uninitialized(x.shape());
        thrust_backend::for_each_index<D>(x.size(), thrust_backend::batch_norm_apply<T>{x.data(), gamma.data(), beta.data(),
                                                                                       st.mean.data(), st.rstd.data(),
                                                                                       y.data(), C, l.inner});
        return y;
    }

    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 3>& in,
                         std::array<tensor<T, D>*, 3> grad) {
        const tensor<T, D>& x = in[0];
        const axis_layout l = layout_along(x.shape(), 1);
        const std::size_t C = l.extent, m = l.outer * l.inner;
        const auto& st = *o.stats;
        const auto xg = grouped(x, l), gg = grouped(g, l);
        const auto sg = xgrad::eval(xgrad::sum(gg, {0, 2}));
        const auto sgd = xgrad::eval(xgrad::sum(gg * (xg - st.mean.reshape(shape_t{1, C, 1})), {0, 2}));
        // one batch_norm_channel_grad<T> (5 values) per channel
        static_assert(sizeof(batch_norm_channel_grad<T>) == 5 * sizeof(T));
        auto coef_store = tensor<T, D>::uninitialized({C, 5});
        auto* coef = reinterpret_cast<batch_norm_channel_grad<T>*>(coef_store.data());
        thrust_backend::for_each_index<D>(
            C, thrust_backend::batch_norm_grad_coefs<T>{sg.data(), sgd.data(), in[1].data(), st.rstd.data(),
                                                        grad[1] ? grad[1]->data() : nullptr,
                                                        grad[2] ? grad[2]->data() : nullptr, coef, m, o.training});
        if (grad[0])
            thrust_backend::for_each_index<D>(
                x.size(), thrust_backend::batch_norm_dx_kernel<T>{x.data(), g.data(), st.mean.data(), coef, grad[0]->data(),
                                                                  C, l.inner});
    }
};

template <class T, thrust_device D>
struct device_kernels<layer_norm_impl<T, D>, D> {
    static constexpr bool available = true;
    using op = layer_norm_impl<T, D>;

    static tensor<T, D> forward(const op& o, const tensor<T, D>& x, const tensor<T, D>& gamma, const tensor<T, D>& beta) {
        const std::size_t Dn = numel(o.normalized), rows = Dn ? x.size() / Dn : 0;
        auto& st = *o.stats;
        st.mean = tensor<T, D>::uninitialized({rows});
        st.rstd = tensor<T, D>::uninitialized({rows});
        auto y = tensor<T, D>::uninitialized(x.shape());
        thrust_backend::for_each_index<D>(rows,
                                          thrust_backend::layer_norm_stats<T>{x.data(), st.mean.data(), st.rstd.data(), Dn, o.eps});
        thrust_backend::for_each_index<D>(
            rows * Dn, thrust_backend::layer_norm_apply<T>{x.data(), gamma.data(), beta.data(), st.mean.data(),
                                                           st.rstd.data(), y.data(), Dn});
        return y;
    }

    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 3>& in,
                         std::array<tensor<T, D>*, 3> grad) {
        const tensor<T, D>& x = in[0];
        const std::size_t Dn = numel(o.normalized), rows = Dn ? x.size() / Dn : 0;
        const auto& st = *o.stats;
        if (grad[0]) {
            auto sums = tensor<T, D>::uninitialized({2, rows});
            thrust_backend::for_each_index<D>(
                rows, thrust_backend::layer_norm_row_sums<T>{x.data(), g.data(), in[1].data(), st.mean.data(),
                                                             st.rstd.data(), sums.data(), sums.data() + rows, Dn});
            thrust_backend::for_each_index<D>(
                rows * Dn, thrust_backend::layer_norm_dx_kernel<T>{x.data(), g.data(), in[1].data(), st.mean.data(), st.rstd.data(),
                                                            sums.data(), sums.data() + rows, grad[0]->data(), Dn});
        }
        if (grad[1] || grad[2])
            thrust_backend::for_each_index<D>(
                Dn, thrust_backend::layer_norm_column_sums<T>{x.data(), g.data(), st.mean.data(), st.rstd.data(),
                                                              grad[1] ? grad[1]->data() : nullptr,
                                                              grad[2] ? grad[2]->data() : nullptr, rows, Dn});
    }
};

}  // namespace xgrad::detail
