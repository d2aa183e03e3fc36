#pragma once
// Losses, with PyTorch's semantics.
//
// Elementwise losses (mse_loss, l1_loss, huber_loss, binary_cross_entropy_with_logits) are
// fused expressions: mse_loss(a, b) *is* mean(square(a - b)), so backward(mse_loss(a, b))
// computes the value and every gradient in one loop. Class losses (cross_entropy, nll_loss)
// are one barrier op that writes one loss per sample; mean and sum add a fused sum over it.
//
// The reduction is a tag whose *type* matters: mean and sum give a scalar expression
// (backward(loss) compiles), none gives one loss per element or sample.
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "../core/transfer.hpp"
#include "../expr/functions.hpp"
#include "../expr/op_node.hpp"
#include "../expr/reduce.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"
#include "detail/line.hpp"

namespace xgrad {

namespace detail {
struct reduction_token {
    explicit constexpr reduction_token() = default;
};
}  // namespace detail

/// How a loss reduces its per-element (or per-sample) values.
namespace reduction {
/// The mean (class losses with weights: the weighted mean, see cross_entropy).
struct mean_t {};
/// The sum. sum_t and none_t have no default constructor on purpose: see cross_entropy_options.
struct sum_t {
    explicit constexpr sum_t(detail::reduction_token) {}
};
/// No reduction: one loss per element (elementwise losses) or per sample (class losses).
struct none_t {
    explicit constexpr none_t(detail::reduction_token) {}
};
inline constexpr mean_t mean{};
inline constexpr sum_t sum{detail::reduction_token{}};
inline constexpr none_t none{detail::reduction_token{}};
}  // namespace reduction

template <class R>
concept reduction_kind = std::same_as<R, reduction::mean_t> || std::same_as<R, reduction::sum_t> ||
                         std::same_as<R, reduction::none_t>;

/// Options of cross_entropy. Designated initializers must keep this order. This primary
/// template serves reduction::sum and reduction::none, which must be named; the mean
/// specialization below lets `.reduction` be left out. (A member without a default
/// initializer whose type has no default constructor makes `{.label_smoothing = 0.1}`
/// convert to the mean variant only.)
template <reduction_kind R, class T>
struct cross_entropy_options {
    R reduction;
    double label_smoothing = 0;         // epsilon in [0, 1]
    std::optional<tensor<T>> weight{};  // per-class weights, shape {C}
    std::int64_t ignore_index = -100;   // samples with this label add nothing
};
template <class T>
struct cross_entropy_options<reduction::mean_t, T> {
    reduction::mean_t reduction{};
    double label_smoothing = 0;
    std::optional<tensor<T>> weight{};
    std::int64_t ignore_index = -100;
};

/// Options of nll_loss (same rules as cross_entropy_options).
template <reduction_kind R, class T>
struct nll_loss_options {
    R reduction;
    std::optional<tensor<T>> weight{};
    std::int64_t ignore_index = -100;
};
template <class T>
struct nll_loss_options<reduction::mean_t, T> {
    reduction::mean_t reduction{};
    std::optional<tensor<T>> weight{};
    std::int64_t ignore_index = -100;
};

namespace ops {

/// Huber loss of d = a - b: d^2/2 where |d| <= delta, delta (|d| - delta/2) elsewhere.
/// d/da = clamp(d, -delta, delta), d/db = -d/da.
template <class T>
struct huber {
    static constexpr const char* name = "huber_loss";
    T delta;
    template <class V> XGRAD_HD V f(V a, V b) const {
        const V d = a - b, ad = vm::abs(d);
        return vm::select(ad <= V(delta), V(0.5) * d * d, V(delta) * (ad - V(0.5) * V(delta)));
    }
    template <class V> XGRAD_HD V da(V a, V b, V) const { return vm::min(vm::max(a - b, V(-delta)), V(delta)); }
    template <class V> XGRAD_HD V db(V a, V b, V y) const { return -da(a, b, y); }
};

/// Binary cross-entropy of logit x against target t in its stable form
///   max(x, 0) - x t + log(1 + exp(-|x|))   (never exp of a large positive number)
/// d/dx = sigmoid(x) - t (exact, also at x = 0), d/dt = -x.
struct bce_with_logits {
    static constexpr const char* name = "binary_cross_entropy_with_logits";
    template <class V> XGRAD_HD V f(V x, V t) const {
        return vm::max(x, V(0)) - x * t + vm::log(V(1) + vm::exp(-vm::abs(x)));
    }
    template <class V> XGRAD_HD V da(V x, V t, V) const { return V(1) / (V(1) + vm::exp(-x)) - t; }
    template <class V> XGRAD_HD V db(V x, V, V) const { return -x; }
};

}  // namespace ops

namespace detail {

/// mean(e), sum(e) or e itself.
template <reduction_kind R, class E>
auto reduce_by(E e) {
    if constexpr (std::same_as<R, reduction::mean_t>)
        return xgrad::mean(std::move(e));
    else if constexpr (std::same_as<R, reduction::sum_t>)
        return xgrad::sum(std::move(e));
    else
        return e;
}

/// The two operands of an elementwise loss as expressions, checked to have one shape.
template <operand A, operand B>
auto loss_operands(const char* op, A&& a, B&& b) {
    auto ea = as_expr(std::forward<A>(a));
    auto eb = as_expr(std::forward<B>(b));
    static_assert(std::is_floating_point_v<typename decltype(ea)::value_type>,
                  "xgrad losses: elements must be float or double");
    if (ea.shape() != eb.shape())
        throw shape_error(std::string(op) + ": input shape " + to_string(ea.shape()) + " and target shape " +
                          to_string(eb.shape()) + " differ");
    return std::pair{std::move(ea), std::move(eb)};
}

/// What every sample of a class loss reads (class_loss_impl below has the formulas): labels,
/// weights (null without), and the constants, computed once per call by the backend's driver.
template <class T>
struct class_loss_args {
    const std::int64_t* labels;
    const T* weight;  // {C} or null
    std::size_t classes, inner;
    std::int64_t ignore;
    T smoothing, scale, wsum;  // scale: 1, or 1 / the counted weight for the mean; wsum: W
    XGRAD_HD T w(std::int64_t c) const { return weight ? weight[c] : T(1); }
};

/// max_c z_c and log sum_c exp(z_c - max) of one class line (see line.hpp), kept apart so that
/// callers form (z_c - m) - ls, exact where z_c == m.
template <class L, class T>
XGRAD_HD XGRAD_INLINE void line_logsumexp(const L& line, const T* z, T& m, T& ls) {
    m = line.max([&]<class V>(std::size_t c) { return load<V>(z + line.at(c)); });
    const T mm = m;
    ls = vm::log(line.sum([&]<class V>(std::size_t c) { return V(vm::exp(load<V>(z + line.at(c)) - V(mm))); }));
}

/// The (scaled) loss of sample i, whose class scores are the line z (one value per lane: the
/// CPU runs a contiguous line, a device one line per thread).
template <bool FromLogits, class L, class T>
XGRAD_HD XGRAD_INLINE T class_loss_sample(const L& line, const T* z, std::size_t i, const class_loss_args<T>& a) {
    const std::int64_t y = a.labels[i];
    if (y == a.ignore) return T(0) * a.scale;  // 0, or NaN when every label is ignored (see scale)
    const std::size_t zy = line.at(static_cast<std::size_t>(y));
    if constexpr (FromLogits) {
        // -log_softmax(z)_c = ls - (z_c - m)
        T m, ls;
        line_logsumexp(line, z, m, ls);
        T l = (T(1) - a.smoothing) * a.w(y) * (ls - (z[zy] - m));
        if (a.smoothing != T(0)) {
            // sum_c w_c (ls - (z_c - m)) = W ls - sum_c w_c (z_c - m)
            const T wz = a.weight ? line.sum([&]<class V>(std::size_t c) {
                                        return V(load<V>(a.weight + c) * (load<V>(z + line.at(c)) - V(m)));
                                    })
                                  : line.sum([&]<class V>(std::size_t c) { return V(load<V>(z + line.at(c)) - V(m)); });
            l += a.smoothing / T(a.classes) * (a.wsum * ls - wz);
        }
        return l * a.scale;
    } else {
        return -a.w(y) * z[zy] * a.scale;
    }
}

/// dz over the class line of sample i from its upstream gradient g (see class_loss_impl).
/// dz may alias z.
template <bool FromLogits, class L, class T>
XGRAD_HD XGRAD_INLINE void class_loss_sample_backward(const L& line, const T* z, T* dz, std::size_t i, T g,
                                                      const class_loss_args<T>& a) {
    const std::int64_t y = a.labels[i];
    if (!FromLogits || y == a.ignore)
        line.each([&]<class V>(std::size_t c) { store(V(T(0)), dz + line.at(c)); });
    if (y == a.ignore) return;
    const std::size_t zy = line.at(static_cast<std::size_t>(y));
    const T gs = g * a.scale, wy = a.w(y);
    if constexpr (FromLogits) {
        T m, ls;
        line_logsumexp(line, z, m, ls);
        const T e = a.smoothing / T(a.classes);
        const T coef = gs * ((T(1) - a.smoothing) * wy + e * a.wsum);
        if (a.weight)
            line.each([&]<class V>(std::size_t c) {
                const std::size_t k = line.at(c);
                store(V(V(coef) * vm::exp((load<V>(z + k) - V(m)) - V(ls)) - V(gs * e) * load<V>(a.weight + c)), dz + k);
            });
        else
            line.each([&]<class V>(std::size_t c) {
                const std::size_t k = line.at(c);
                store(V(V(coef) * vm::exp((load<V>(z + k) - V(m)) - V(ls)) - V(gs * e)), dz + k);
            });
        dz[zy] -= gs * (T(1) - a.smoothing) * wy;
    } else {
        dz[zy] = -gs * wy;
    }
}

/// One barrier op for cross_entropy (FromLogits) and nll_loss: input {N, C, d...}, labels
/// {N, d...}, output one loss per sample {N, d...}, each multiplied by `scale` (1, or
/// 1/sum of the weights of the counted labels for the mean).
///
/// Per sample with label y, weights w (all 1 without weights), W = sum_c w_c, C classes and
/// smoothing eps, writing lp = log_softmax(z):
///   cross_entropy: l = (1 - eps) w_y (-lp_y) + (eps / C) sum_c w_c (-lp_c)
///   nll_loss:      l = -w_y x_y
/// Backward (p = softmax(z), g the upstream gradient of the sample):
///   cross_entropy: dz_c = g scale [((1 - eps) w_y + (eps/C) W) p_c - (eps/C) w_c - (1 - eps) w_y [c == y]]
///   nll_loss:      dx_c = -g scale w_y [c == y]
/// Samples labelled ignore_index have l = 0 and no gradient, and are left out of the mean.
/// Labels and weights live on the device D the op runs on.
template <class T, bool FromLogits, class D = device::cpu>
struct class_loss_impl {
    static constexpr const char* name = FromLogits ? "cross_entropy" : "nll_loss";
    tensor<std::int64_t, D> labels;
    bool weighted = false;
    tensor<T, D> weight;  // {C} when weighted
    T smoothing = 0;
    std::int64_t ignore_index = -100;
    bool mean = false;

    shape_t output_shape(const shape_t& s) const;

    /// The message of a label outside [0, classes) at flat position i.
    std::string label_error(std::int64_t y, std::size_t i, std::size_t classes) const;

    void check_labels(std::size_t classes) const {
        const std::int64_t* y = labels.data();
        for (std::size_t i = 0; i < labels.size(); ++i)
            if (y[i] != ignore_index && (y[i] < 0 || static_cast<std::uint64_t>(y[i]) >= classes))
                throw value_error(label_error(y[i], i, classes));
    }

    T class_weight(std::int64_t c) const { return weighted ? weight.data()[c] : T(1); }

    /// What each sample's loss is multiplied by.
    T scale() const {
        if (!mean) return T(1);
        T denom = 0;
        const std::int64_t* y = labels.data();
        for (std::size_t i = 0; i < labels.size(); ++i)
            if (y[i] != ignore_index) denom += class_weight(y[i]);
        return T(1) / denom;  // inf when every label is ignored: 0 * inf = NaN, PyTorch's 0/0
    }

    /// The constants of both formulas for input shape s.
    class_loss_args<T> args(const shape_t& s) const {
        const std::size_t n = s[0], classes = s[1];
        const T* w = weighted ? weight.data() : nullptr;
        return {labels.data(), w,       classes, labels.size() / (n ? n : 1), ignore_index, smoothing, scale(),
                w ? std::accumulate(w, w + classes, T(0)) : T(classes)};
    }

    /// Calls f(offset of the sample's first class score, stride between its classes, a scratch
    /// line of C values, sample index, values from that offset to the end of the thread's
    /// samples) for every sample, split across threads. A class score costs an exp and more,
    /// about 16 elements of a streaming loop: 256 samples of 10 classes take ~7 us forward and
    /// ~11 us backward on one AVX-512 core, worth a second thread.
    template <class F>
    void for_samples(const shape_t& s, F&& f) const {
        const std::size_t n = s[0], classes = s[1], inner = labels.size() / (n ? n : 1);
        parallel_rows(labels.size(), classes * 16, [&](std::size_t b, std::size_t e) {
            std::vector<T> line(short_lines(classes) ? simd_t<T>::size : inner == 1 ? 0 : classes, T(0));
            for (std::size_t i = b; i < e; ++i) {
                const std::size_t first = i / inner * classes * inner + i % inner;
                f(first, inner, line, i, inner == 1 ? e * classes - first : 0);
            }
        });
    }

    // The CPU's driver: each sample's class line made contiguous (gathered into a scratch line
    // when strided), then the shared formulas with SIMD along it.
    tensor<T> forward(const tensor<T>& x) const;

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> grad) const;

private:
    /// Whether the CPU driver runs each sample as one padded SIMD batch (short_line): fewer
    /// classes than lanes and no class weights (their loads would read past the weights).
    bool short_lines(std::size_t classes) const { return classes < simd_t<T>::size && !weighted; }

    /// run(line) with the line walker the CPU driver uses for `classes` values.
    template <class F>
    void with_line(std::size_t classes, F&& run) const {
        if (short_lines(classes))
            run(short_line<T>{classes});
        else
            run(contiguous_line<T>{classes});
    }

    /// Whether a sample's class line can be used where it lies: contiguous, and when buf is a
    /// padded short line, with buf.size() values of the thread's own samples from its start
    /// (`room`). The lanes past the line then read the next sample's scores, which the short
    /// line leaves out of max and sums, and backward's writes there are overwritten when the
    /// next sample runs. Copying each line into buf instead cost a store-to-load stall per sample
    /// (ten scalar stores read back as one vector): 2.5x the time of cross_entropy over 10 classes.
    static bool in_place(std::size_t classes, std::size_t inner, const std::vector<T>& buf, std::size_t room) {
        return inner == 1 && (buf.size() <= classes || room >= buf.size());
    }

    /// The class line of one sample as contiguous values (copied into buf unless in_place).
    static const T* gather(const T* p, std::size_t classes, std::size_t inner, std::vector<T>& buf,
                           std::size_t room) {
        if (in_place(classes, inner, buf, room)) return p;
        for (std::size_t c = 0; c < classes; ++c) buf[c] = p[c * inner];
        return buf.data();
    }
};

template <class T, bool FromLogits, class D>
shape_t class_loss_impl<T, FromLogits, D>::output_shape(const shape_t& s) const {
    if (s.size() < 2)
        throw shape_error(std::string(name) + ": input must have shape {N, C} or {N, C, d1, ...}, got " + to_string(s));
    shape_t per_sample = s;
    per_sample.erase(per_sample.begin() + 1);
    if (labels.shape() != per_sample)
        throw shape_error(std::string(name) + ": labels of shape " + to_string(labels.shape()) +
                          " do not match input of shape " + to_string(s) + " (expected labels of shape " +
                          to_string(per_sample) + ")");
    if (weighted && weight.shape() != shape_t{s[1]})
        throw shape_error(std::string(name) + ": weight of shape " + to_string(weight.shape()) +
                          " does not match " + std::to_string(s[1]) + " classes of input shape " + to_string(s));
    if constexpr (std::same_as<D, device::cpu>)
        check_labels(s[1]);
    else
        device_kernels<class_loss_impl, D>::check_labels(*this, s[1]);
    return per_sample;
}

template <class T, bool FromLogits, class D>
std::string class_loss_impl<T, FromLogits, D>::label_error(std::int64_t y, std::size_t i, std::size_t classes) const {
    return std::string(name) + ": label " + std::to_string(y) + " at position " + position_string(i, labels.shape()) +
           " is out of range for " + std::to_string(classes) + " classes (expected 0.." +
           std::to_string(static_cast<std::int64_t>(classes) - 1) + " or ignore_index " +
           std::to_string(ignore_index) + ")";
}

template <class T, bool FromLogits, class D>
tensor<T> class_loss_impl<T, FromLogits, D>::forward(const tensor<T>& x) const {
    const shape_t& s = x.shape();
    check_labels(s[1]);  // the labels tensor may have changed since the op was built
    const std::size_t classes = s[1];
    auto out = tensor<T>::uninitialized(labels.shape());
    const class_loss_args<T> a = args(s);
    auto run = [&](auto line) {
        for_samples(s, [&](std::size_t first, std::size_t inner, std::vector<T>& buf, std::size_t i, std::size_t room) {
            const T* z = labels.data()[i] == ignore_index ? nullptr : gather(x.data() + first, classes, inner, buf, room);
            out.data()[i] = class_loss_sample<FromLogits>(line, z, i, a);
        });
    };
    with_line(classes, run);
    return out;
}

template <class T, bool FromLogits, class D>
void class_loss_impl<T, FromLogits, D>::backward(const tensor<T>& g, const tensor<T>&,
                                                 const std::array<tensor<T>, 1>& in,
                                                 std::array<tensor<T>*, 1> grad) const {
    if (!grad[0]) return;
    const tensor<T>& x = in[0];
    const shape_t& s = x.shape();
    const std::size_t classes = s[1];
    const class_loss_args<T> a = args(s);
    T* dx = grad[0]->data();
    auto run = [&](auto line) {
        for_samples(s, [&](std::size_t first, std::size_t inner, std::vector<T>& buf, std::size_t i, std::size_t room) {
            T* d = dx + first;
            const bool counted = labels.data()[i] != ignore_index;
            const T* z = FromLogits && counted ? gather(x.data() + first, classes, inner, buf, room) : nullptr;
            const bool direct = in_place(classes, inner, buf, room);  // else dz goes through buf
            T* dz = direct ? d : buf.data();  // buf holds z; overwriting it in place is fine
            class_loss_sample_backward<FromLogits>(line, z, dz, i, g.data()[i], a);
            if (!direct)
                for (std::size_t c = 0; c < classes; ++c) d[c * inner] = dz[c];
        });
    };
    with_line(classes, run);
}
// cross_entropy on float CPU tensors, compiled once in xgrad_precompiled (core/config.hpp)
XGRAD_INSTANCE(shape_t class_loss_impl<float, true>::output_shape(const shape_t&) const)
XGRAD_INSTANCE(std::string class_loss_impl<float, true>::label_error(std::int64_t, std::size_t, std::size_t) const)
XGRAD_INSTANCE(tensor<float> class_loss_impl<float, true>::forward(const tensor<float>&) const)
XGRAD_INSTANCE(void class_loss_impl<float, true>::backward(const tensor<float>&, const tensor<float>&,
                                                          const std::array<tensor<float>, 1>&,
                                                          std::array<tensor<float>*, 1>) const)

/// Labels on device D (the input's device); the weight tensor, given on the host, is copied there.
template <class T, bool FromLogits, reduction_kind R, operand X, class D>
auto class_loss(X&& input, const tensor<std::int64_t, D>& labels, const std::optional<tensor<T>>& weight,
                double smoothing, std::int64_t ignore_index) {
    static_assert(std::is_floating_point_v<T>, "xgrad::cross_entropy/nll_loss: input must hold float or double");
    static_assert(std::same_as<op_device_t<expr_t<X>>, D> || std::same_as<D, device::cpu>,
                  "xgrad::cross_entropy/nll_loss: the labels must be on the input's device; move them with "
                  "xgrad::to<Device>(labels)");
    using impl = class_loss_impl<T, FromLogits, D>;
    if (!(smoothing >= 0 && smoothing <= 1))
        throw value_error(std::string(impl::name) + ": label_smoothing must be in [0, 1], got " + std::to_string(smoothing));
    impl im{labels.contiguous(), weight.has_value(), weight ? to<D>(weight->contiguous()) : tensor<T, D>(),
            static_cast<T>(smoothing), ignore_index, std::same_as<R, reduction::mean_t>};
    auto op = make_op(std::move(im), std::forward<X>(input));
    if constexpr (std::same_as<R, reduction::none_t>)
        return op;
    else
        return xgrad::sum(std::move(op));
}

template <class X>
using elem_t = typename expr_t<X>::value_type;

}  // namespace detail

// --- class losses -----------------------------------------------------------------------

/// Cross-entropy of logits {N, C} (or {N, C, d1, ...}) against integer class labels {N} (or
/// {N, d1, ...}): log_softmax over the classes and the negative log-likelihood in one op.
/// Reduction mean divides by the sum of the weights of the counted labels (N without weights).
/// Throws shape_error for mismatched shapes and value_error for a label outside [0, C).
template <operand X>
auto cross_entropy(X&& logits, const tensor<std::int64_t>& labels,
                   cross_entropy_options<reduction::mean_t, detail::elem_t<X>> opt = {}) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::mean_t>(std::forward<X>(logits), labels, opt.weight,
                                                                         opt.label_smoothing, opt.ignore_index);
}
template <operand X>
auto cross_entropy(X&& logits, const tensor<std::int64_t>& labels,
                   cross_entropy_options<reduction::sum_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::sum_t>(std::forward<X>(logits), labels, opt.weight,
                                                                        opt.label_smoothing, opt.ignore_index);
}
template <operand X>
auto cross_entropy(X&& logits, const tensor<std::int64_t>& labels,
                   cross_entropy_options<reduction::none_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::none_t>(std::forward<X>(logits), labels, opt.weight,
                                                                         opt.label_smoothing, opt.ignore_index);
}

/// Negative log-likelihood of log-probabilities {N, C} (or {N, C, d1, ...}), e.g. the output of
/// log_softmax(x, 1), against integer labels; same weights, ignore_index and reductions as
/// cross_entropy (without smoothing).
template <operand X>
auto nll_loss(X&& log_probs, const tensor<std::int64_t>& labels,
              nll_loss_options<reduction::mean_t, detail::elem_t<X>> opt = {}) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::mean_t>(std::forward<X>(log_probs), labels,
                                                                          opt.weight, 0.0, opt.ignore_index);
}
template <operand X>
auto nll_loss(X&& log_probs, const tensor<std::int64_t>& labels,
              nll_loss_options<reduction::sum_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::sum_t>(std::forward<X>(log_probs), labels,
                                                                         opt.weight, 0.0, opt.ignore_index);
}
template <operand X>
auto nll_loss(X&& log_probs, const tensor<std::int64_t>& labels,
              nll_loss_options<reduction::none_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::none_t>(std::forward<X>(log_probs), labels,
                                                                          opt.weight, 0.0, opt.ignore_index);
}

/// cross_entropy and nll_loss with labels on a device (the input's): the same options, the
/// weight tensor given on the host and copied to the device.
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto cross_entropy(X&& logits, const tensor<std::int64_t, D>& labels,
                   cross_entropy_options<reduction::mean_t, detail::elem_t<X>> opt = {}) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::mean_t>(std::forward<X>(logits), labels, opt.weight,
                                                                         opt.label_smoothing, opt.ignore_index);
}
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto cross_entropy(X&& logits, const tensor<std::int64_t, D>& labels,
                   cross_entropy_options<reduction::sum_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::sum_t>(std::forward<X>(logits), labels, opt.weight,
                                                                        opt.label_smoothing, opt.ignore_index);
}
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto cross_entropy(X&& logits, const tensor<std::int64_t, D>& labels,
                   cross_entropy_options<reduction::none_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, true, reduction::none_t>(std::forward<X>(logits), labels, opt.weight,
                                                                         opt.label_smoothing, opt.ignore_index);
}
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto nll_loss(X&& log_probs, const tensor<std::int64_t, D>& labels,
              nll_loss_options<reduction::mean_t, detail::elem_t<X>> opt = {}) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::mean_t>(std::forward<X>(log_probs), labels,
                                                                          opt.weight, 0.0, opt.ignore_index);
}
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto nll_loss(X&& log_probs, const tensor<std::int64_t, D>& labels,
              nll_loss_options<reduction::sum_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::sum_t>(std::forward<X>(log_probs), labels,
                                                                         opt.weight, 0.0, opt.ignore_index);
}
template <operand X, class D>
    requires(!std::same_as<D, device::cpu>)
auto nll_loss(X&& log_probs, const tensor<std::int64_t, D>& labels,
              nll_loss_options<reduction::none_t, detail::elem_t<X>> opt) {
    return detail::class_loss<detail::elem_t<X>, false, reduction::none_t>(std::forward<X>(log_probs), labels,
                                                                          opt.weight, 0.0, opt.ignore_index);
}

// --- elementwise losses (fused) ---------------------------------------------------------

/// Mean squared error: reduce((input - target)^2). Shapes must be equal.
template <operand A, operand B, reduction_kind R = reduction::mean_t>
auto mse_loss(A&& input, B&& target, R = {}) {
    auto [a, b] = detail::loss_operands("mse_loss", std::forward<A>(input), std::forward<B>(target));
    return detail::reduce_by<R>(square(std::move(a) - std::move(b)));
}

/// Mean absolute error: reduce(|input - target|); the gradient at a tie is 0.
template <operand A, operand B, reduction_kind R = reduction::mean_t>
auto l1_loss(A&& input, B&& target, R = {}) {
    auto [a, b] = detail::loss_operands("l1_loss", std::forward<A>(input), std::forward<B>(target));
    return detail::reduce_by<R>(abs(std::move(a) - std::move(b)));
}

/// Huber loss with threshold delta > 0 (see ops::huber).
template <operand A, operand B, reduction_kind R = reduction::mean_t>
auto huber_loss(A&& input, B&& target, double delta = 1.0, R = {}) {
    if (!(delta > 0)) throw value_error("huber_loss: delta must be > 0, got " + std::to_string(delta));
    auto [a, b] = detail::loss_operands("huber_loss", std::forward<A>(input), std::forward<B>(target));
    using T = typename decltype(a)::value_type;
    using node = binary_node<ops::huber<T>, decltype(a), decltype(b)>;
    return detail::reduce_by<R>(node(ops::huber<T>{static_cast<T>(delta)}, std::move(a), std::move(b)));
}
template <operand A, operand B, reduction_kind R>
auto huber_loss(A&& input, B&& target, R r) {
    return huber_loss(std::forward<A>(input), std::forward<B>(target), 1.0, r);
}

/// Binary cross-entropy of logits against targets in [0, 1] (see ops::bce_with_logits).
template <operand A, operand B, reduction_kind R = reduction::mean_t>
auto binary_cross_entropy_with_logits(A&& logits, B&& target, R = {}) {
    auto [a, b] = detail::loss_operands("binary_cross_entropy_with_logits", std::forward<A>(logits),
                                        std::forward<B>(target));
    using node = binary_node<ops::bce_with_logits, decltype(a), decltype(b)>;
    return detail::reduce_by<R>(node(ops::bce_with_logits{}, std::move(a), std::move(b)));
}

}  // namespace xgrad
