#pragma once
// softmax, log_softmax and the class losses (cross_entropy, nll_loss) on the Thrust devices:
// only the drivers. The per-line formulas are ops/softmax.hpp's softmax_line(_backward) and
// ops/loss.hpp's class_loss_sample(_backward), run here one line along the axis (one sample
// for the losses) per position, so forward and backward are one launch each.
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

template <bool Log, class T>
struct softmax_forward {
    const T* x;
    T* y;
    std::size_t n, inner;
    XGRAD_HD void operator()(std::ptrdiff_t line) const {
        const std::size_t b = line_start(static_cast<std::size_t>(line), n, inner);
        softmax_line<Log>(strided_lines<T>{n, inner}, x + b, y + b);
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
        softmax_line_backward<Log>(strided_lines<T>{n, inner}, g + b, y + b, dx + b);
    }
};

template <class T, bool FromLogits>
struct class_loss_forward {
    const T* x;
    T* out;
    class_loss_args<T> a;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const auto s = static_cast<std::size_t>(i);
        out[i] = class_loss_sample<FromLogits>(strided_lines<T>{a.classes, a.inner},
                                               x + line_start(s, a.classes, a.inner), s, a);
    }
};

template <class T, bool FromLogits>
struct class_loss_backward {
    const T* x;
    const T* g;
    T* dx;
    class_loss_args<T> a;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const auto s = static_cast<std::size_t>(i);
        const std::size_t first = line_start(s, a.classes, a.inner);
        class_loss_sample_backward<FromLogits>(strided_lines<T>{a.classes, a.inner}, x + first, dx + first, s, g[i], a);
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
    static class_loss_args<T> args(const op& o, const shape_t& s) {
        const std::size_t n = s[0], classes = s[1];
        const T* w = o.weighted ? o.weight.data() : nullptr;
        class_loss_args<T> a{o.labels.data(), w,        classes, o.labels.size() / (n ? n : 1),
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
