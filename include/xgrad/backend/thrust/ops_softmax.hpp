#pragma once
// softmax, log_softmax and the class losses (cross_entropy, nll_loss) on the Thrust devices
// (ops/softmax.hpp and ops/loss.hpp have the formulas). One position per line along the axis
// (per sample for the losses): it reads its line for the maximum, again for the sum of
// exponentials, and writes its outputs, so forward and backward are one launch each.
#include <thrust/reduce.h>

#include "../../ops/loss.hpp"
#include "../../ops/softmax.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

/// The line of element o of [outer, n, inner] lines: its first offset (stride inner).
XGRAD_HD inline std::size_t line_start(std::size_t line, std::size_t n, std::size_t inner) {
    const std::size_t o = line / inner;
    return o * n * inner + (line - o * inner);
}

/// max and log(sum exp(z - max)) of n values at z with stride s (the CPU's logsumexp_line).
template <class T>
XGRAD_HD inline void line_logsumexp(const T* z, std::size_t n, std::size_t s, T& m, T& ls) {
    m = -std::numeric_limits<T>::infinity();
    for (std::size_t i = 0; i < n; ++i) m = vm::max(m, z[i * s]);
    T sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += vm::exp(z[i * s] - m);
    ls = vm::log(sum);
}

template <bool Log, class T>
struct softmax_forward {
    const T* x;
    T* y;
    std::size_t n, inner;
    XGRAD_HD void operator()(std::ptrdiff_t line) const {
        const std::size_t b = line_start(static_cast<std::size_t>(line), n, inner);
        const T* xl = x + b;
        T* yl = y + b;
        T m = -std::numeric_limits<T>::infinity();
        for (std::size_t i = 0; i < n; ++i) m = vm::max(m, xl[i * inner]);
        T sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T e = vm::exp(xl[i * inner] - m);
            sum += e;
            if constexpr (!Log) yl[i * inner] = e;
        }
        if constexpr (Log) {
            const T ls = vm::log(sum);
            for (std::size_t i = 0; i < n; ++i) yl[i * inner] = (xl[i * inner] - m) - ls;
        } else {
            const T r = T(1) / sum;
            for (std::size_t i = 0; i < n; ++i) yl[i * inner] *= r;
        }
    }
};

template <bool Log, class T>
struct softmax_backward {
    const T* g;
    const T* y;
    T* dx;
    std::size_t n, inner;
    XGRAD_HD void operator()(std::ptrdiff_t line) const {
        const std::size_t b = line_start(static_cast<std::size_t>(line), n, inner);
        T acc = 0;  // sum g (log_softmax) or sum g y (softmax)
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t k = b + i * inner;
            if constexpr (Log)
                acc += g[k];
            else
                acc += g[k] * y[k];
        }
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t k = b + i * inner;
            if constexpr (Log)
                dx[k] = g[k] - vm::exp(y[k]) * acc;
            else
                dx[k] = y[k] * (g[k] - acc);
        }
    }
};

/// What one class-loss sample reads: labels, weights (null without), the constants.
template <class T>
struct class_loss_args {
    const std::int64_t* labels;
    const T* weight;  // {C} or null
    std::size_t classes, inner;
    std::int64_t ignore;
    T smoothing, scale, wsum;
    XGRAD_HD T w(std::int64_t c) const { return weight ? weight[c] : T(1); }
};

template <class T, bool FromLogits>
struct class_loss_forward {
    const T* x;
    T* out;
    class_loss_args<T> a;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const std::int64_t y = a.labels[i];
        if (y == a.ignore) {
            out[i] = T(0) * a.scale;  // 0, or NaN when every label is ignored (see class_loss_impl::scale)
            return;
        }
        const T* z = x + line_start(static_cast<std::size_t>(i), a.classes, a.inner);
        const std::size_t s = a.inner;
        T l;
        if constexpr (FromLogits) {
            T m, ls;
            line_logsumexp(z, a.classes, s, m, ls);
            l = (T(1) - a.smoothing) * a.w(y) * (ls - (z[y * s] - m));
            if (a.smoothing != T(0)) {
                T wz = 0;  // sum_c w_c (z_c - m)
                for (std::size_t c = 0; c < a.classes; ++c) wz += a.w(static_cast<std::int64_t>(c)) * (z[c * s] - m);
                l += a.smoothing / T(a.classes) * (a.wsum * ls - wz);
            }
        } else {
            l = -a.w(y) * z[y * s];
        }
        out[i] = l * a.scale;
    }
};

template <class T, bool FromLogits>
struct class_loss_backward {
    const T* x;
    const T* g;
    T* dx;
    class_loss_args<T> a;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const std::size_t first = line_start(static_cast<std::size_t>(i), a.classes, a.inner), s = a.inner;
        T* d = dx + first;
        const std::int64_t y = a.labels[i];
        if (y == a.ignore) {
            for (std::size_t c = 0; c < a.classes; ++c) d[c * s] = T(0);
            return;
        }
        const T gs = g[i] * a.scale, wy = a.w(y);
        if constexpr (FromLogits) {
            const T* z = x + first;
            T m, ls;
            line_logsumexp(z, a.classes, s, m, ls);
            const T e = a.smoothing / T(a.classes);
            const T coef = gs * ((T(1) - a.smoothing) * wy + e * a.wsum);
            for (std::size_t c = 0; c < a.classes; ++c) {
                T v = coef * vm::exp((z[c * s] - m) - ls) - gs * e * a.w(static_cast<std::int64_t>(c));
                if (static_cast<std::int64_t>(c) == y) v -= gs * (T(1) - a.smoothing) * wy;
                d[c * s] = v;
            }
        } else {
            for (std::size_t c = 0; c < a.classes; ++c) d[c * s] = T(0);
            d[y * s] = -gs * wy;
        }
    }
};

/// The weight of a counted label (0 for ignored ones): the mean's denominator, summed.
template <class T>
struct counted_weight {
    const std::int64_t* labels;
    const T* weight;
    std::int64_t ignore;
    XGRAD_HD T operator()(std::ptrdiff_t i) const {
        const std::int64_t y = labels[i];
        return y == ignore ? T(0) : (weight ? weight[y] : T(1));
    }
};

}  // namespace thrust_backend

template <bool Log, thrust_device D>
struct device_kernels<softmax_impl<Log>, D> {
    static constexpr bool available = true;
    template <class T>
    static tensor<T, D> forward(const softmax_impl<Log>& op, const tensor<T, D>& x) {
        auto y = tensor<T, D>::uninitialized(x.shape());
        const axis_layout l = layout_along(x.shape(), op.axis);
        if (l.extent > 0)
            thrust_backend::for_each_index<D>(l.outer * l.inner,
                                              thrust_backend::softmax_forward<Log, T>{x.data(), y.data(), l.extent, l.inner});
        return y;
    }
    template <class T>
    static void backward(const softmax_impl<Log>& op, const tensor<T, D>& g, const tensor<T, D>& y,
                         const std::array<tensor<T, D>, 1>&, std::array<tensor<T, D>*, 1> dx) {
        if (!dx[0]) return;
        const axis_layout l = layout_along(y.shape(), op.axis);
        if (l.extent > 0)
            thrust_backend::for_each_index<D>(
                l.outer * l.inner, thrust_backend::softmax_backward<Log, T>{g.data(), y.data(), dx[0]->data(), l.extent, l.inner});
    }
};

template <class T, bool FromLogits, thrust_device D>
struct device_kernels<class_loss_impl<T, FromLogits, D>, D> {
    static constexpr bool available = true;
    using op = class_loss_impl<T, FromLogits, D>;

    static void check_labels(const op& o, std::size_t classes) {
        const std::ptrdiff_t bad =
            thrust_backend::first_bad_label<D>(o.labels.data(), o.labels.size(), classes, true, o.ignore_index);
        if (bad < static_cast<std::ptrdiff_t>(o.labels.size()))
            throw value_error(o.label_error(thrust_backend::read_element<D>(o.labels.data() + bad),
                                            static_cast<std::size_t>(bad), classes));
    }

    /// The constants of both kernels: scale (1 / the counted weight for the mean) and W.
    static thrust_backend::class_loss_args<T> args(const op& o, const shape_t& s) {
        const std::size_t n = s[0], classes = s[1];
        const T* w = o.weighted ? o.weight.data() : nullptr;
        thrust_backend::class_loss_args<T> a{o.labels.data(), w,        classes, o.labels.size() / (n ? n : 1),
                                             o.ignore_index,  o.smoothing, T(1),  T(classes)};
        auto policy = thrust_backend::system<D>::policy();
        if (o.mean) {
            const auto len = static_cast<std::ptrdiff_t>(o.labels.size());
            const T denom = thrust::transform_reduce(policy, thrust::counting_iterator<std::ptrdiff_t>(0),
                                                     thrust::counting_iterator<std::ptrdiff_t>(len),
                                                     thrust_backend::counted_weight<T>{o.labels.data(), w, o.ignore_index},
                                                     T(0), thrust::plus<T>());
            a.scale = T(1) / denom;  // inf when every label is ignored, as on the CPU
        }
        if (w) a.wsum = thrust::reduce(policy, w, w + classes, T(0), thrust::plus<T>());
        return a;
    }

    static tensor<T, D> forward(const op& o, const tensor<T, D>& x) {
        check_labels(o, x.shape()[1]);  // the labels tensor may have changed since the op was built
        auto out = tensor<T, D>::uninitialized(o.labels.shape());
        thrust_backend::for_each_index<D>(out.size(),
                                          thrust_backend::class_loss_forward<T, FromLogits>{x.data(), out.data(), args(o, x.shape())});
        return out;
    }

    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                         std::array<tensor<T, D>*, 1> grad) {
        if (!grad[0]) return;
        thrust_backend::for_each_index<D>(
            o.labels.size(), thrust_backend::class_loss_backward<T, FromLogits>{in[0].data(), g.data(), grad[0]->data(),
                                                                               args(o, in[0].shape())});
    }
};

}  // namespace xgrad::detail
