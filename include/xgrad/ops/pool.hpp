#pragma once
// 2-D pooling over the last two dimensions of {N, C, H, W} (or {C, H, W}) inputs, with
// PyTorch's semantics (floor mode):
//
//   max_pool2d(x, kernel, stride = kernel, padding = 0)
//       y = max over the window; padding counts as -inf. dx: the upstream gradient goes to the
//       window's first maximum (a NaN counts as the maximum, as PyTorch).
//   avg_pool2d(x, kernel, stride = kernel, padding = 0, count_include_pad = true)
//       y = sum over the window / (KH KW), zero padding included in the count (or, with
//       count_include_pad = false, / the number of input elements in the window).
//       dx[h, w] = sum over windows containing (h, w) of g / count.
//   adaptive_avg_pool2d(x, {OH, OW})
//       window i spans rows [floor(i H / OH), ceil((i + 1) H / OH)), likewise columns;
//       y = window mean, dx = g / window size over the window.
//
// OH = (H + 2 ph - KH) / sh + 1 (likewise OW). A stride of 0 means "equal to the kernel".
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "../expr/op_node.hpp"
#include "conv.hpp"  // size2
#include "detail/device_kernels.hpp"
#include "detail/epilogue.hpp"

namespace xgrad {

namespace detail {

/// Geometry of a pooling window sweep over the last two dimensions.
struct pool_geometry {
    std::size_t planes = 0, H = 0, W = 0, OH = 0, OW = 0;
    std::size_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
    shape_t out;

    pool_geometry(const shape_t& x, size2 kernel, size2 stride, size2 padding, const char* op) {
        const std::string name(op);
        if (stride.h == 0 && stride.w == 0) stride = kernel;
        if (kernel.h < 1 || kernel.w < 1) throw value_error(name + ": kernel must be >= 1, got " + to_string(kernel));
        if (stride.h < 1 || stride.w < 1) throw value_error(name + ": stride must be >= 1, got " + to_string(stride));
        if (padding.h < 0 || padding.w < 0)
            throw value_error(name + ": padding must be >= 0, got " + to_string(padding));
        if (2 * padding.h > kernel.h || 2 * padding.w > kernel.w)
            throw value_error(name + ": padding " + to_string(padding) + " must be at most half the kernel " +
                              to_string(kernel));
        if (x.size() != 3 && x.size() != 4)
            throw shape_error(name + ": input must be {N, C, H, W} or {C, H, W}, got shape " + to_string(x));
        H = x[x.size() - 2], W = x[x.size() - 1];
        if (H == 0 || W == 0) throw shape_error(name + ": input shape " + to_string(x) + " has an empty spatial dimension");
        planes = numel(x) / (H * W);
        kh = static_cast<std::size_t>(kernel.h), kw = static_cast<std::size_t>(kernel.w);
        sh = static_cast<std::size_t>(stride.h), sw = static_cast<std::size_t>(stride.w);
        ph = static_cast<std::size_t>(padding.h), pw = static_cast<std::size_t>(padding.w);
        if (kh > H + 2 * ph || kw > W + 2 * pw)
            throw shape_error(name + ": kernel " + to_string(kernel) + " is larger than the padded input " +
                              std::to_string(H + 2 * ph) + "x" + std::to_string(W + 2 * pw) + " (input shape " +
                              to_string(x) + ", padding " + to_string(padding) + ")");
        OH = (H + 2 * ph - kh) / sh + 1;
        OW = (W + 2 * pw - kw) / sw + 1;
        out = x;
        out[out.size() - 2] = OH;
        out[out.size() - 1] = OW;
    }

    /// Input rows [lo, hi) of output row i (window clipped to the input).
    void rows(std::size_t i, std::size_t& lo, std::size_t& hi) const { clip(i * sh, ph, kh, H, lo, hi); }
    void cols(std::size_t j, std::size_t& lo, std::size_t& hi) const { clip(j * sw, pw, kw, W, lo, hi); }
    XGRAD_HD static void clip(std::size_t start, std::size_t pad, std::size_t k, std::size_t n, std::size_t& lo,
                                       std::size_t& hi) {
        lo = start >= pad ? start - pad : 0;
        hi = start + k - pad < n ? start + k - pad : n;
    }
};

/// Offset (within a plane of width W) of the first maximum of rows [r0, r1) x columns [c0, c1);
/// a NaN counts as the maximum. Shared by the CPU and the device kernels.
template <class T>
XGRAD_HD std::size_t window_argmax(const T* p, std::size_t W, std::size_t r0, std::size_t r1, std::size_t c0,
                                            std::size_t c1) {
    std::size_t best = r0 * W + c0;
    T m = -std::numeric_limits<T>::infinity();
    for (std::size_t r = r0; r < r1; ++r)
        for (std::size_t c = c0; c < c1; ++c) {
            const T v = p[r * W + c];
            if (v != v) return r * W + c;  // NaN
            if (v > m) {
                m = v;
                best = r * W + c;
            }
        }
    return best;
}

/// Runs f(p0, p1) over planes [0, planes), split over the pool for large inputs.
template <class F>
void for_planes(std::size_t planes, std::size_t plane_work, F&& f) {
    parallel_chunks(planes, std::max<std::size_t>(1, (std::size_t{1} << 15) / std::max<std::size_t>(plane_work, 1)),
                    std::forward<F>(f));
}

template <class T>
struct max_pool2d_op {
    static constexpr const char* name = "max_pool2d";
    size2 kernel, stride, padding;

    shape_t output_shape(const shape_t& x) const { return pool_geometry(x, kernel, stride, padding, name).out; }

    /// Offset (within a plane) of the first maximum of window (i, j).
    static std::size_t argmax(const pool_geometry& g, const T* p, std::size_t i, std::size_t j) {
        std::size_t r0, r1, c0, c1;
        g.rows(i, r0, r1);
        g.cols(j, c0, c1);
        return window_argmax(p, g.W, r0, r1, c0, c1);
    }

    tensor<T> forward(const tensor<T>& x) const {
        const pool_geometry g(x.shape(), kernel, stride, padding, name);
        auto y = tensor<T>::uninitialized(g.out);
        const std::size_t hw = g.H * g.W, ohw = g.OH * g.OW;
        for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                const T* xp = x.data() + p * hw;
                T* yp = y.data() + p * ohw;
                for (std::size_t i = 0; i < g.OH; ++i)
                    for (std::size_t j = 0; j < g.OW; ++j) yp[i * g.OW + j] = xp[argmax(g, xp, i, j)];
            }
        });
        return y;
    }

    void backward(const tensor<T>& grad, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> gi) const {
        if (!gi[0]) return;
        const pool_geometry g(in[0].shape(), kernel, stride, padding, name);
        gi[0]->fill(T(0));
        const std::size_t hw = g.H * g.W, ohw = g.OH * g.OW;
        for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                const T* xp = in[0].data() + p * hw;
                const T* gp = grad.data() + p * ohw;
                T* dp = gi[0]->data() + p * hw;
                for (std::size_t i = 0; i < g.OH; ++i)
                    for (std::size_t j = 0; j < g.OW; ++j) dp[argmax(g, xp, i, j)] += gp[i * g.OW + j];
            }
        });
    }
};

template <class T>
struct avg_pool2d_op {
    static constexpr const char* name = "avg_pool2d";
    size2 kernel, stride, padding;
    bool count_include_pad = true;

    shape_t output_shape(const shape_t& x) const { return pool_geometry(x, kernel, stride, padding, name).out; }

    /// 1 / the divisor of window (i, j), and its clipped bounds.
    T window(const pool_geometry& g, std::size_t i, std::size_t j, std::size_t& r0, std::size_t& r1, std::size_t& c0,
             std::size_t& c1) const {
        g.rows(i, r0, r1);
        g.cols(j, c0, c1);
        const std::size_t n = count_include_pad ? g.kh * g.kw : (r1 - r0) * (c1 - c0);
        return T(1) / static_cast<T>(n);
    }

    tensor<T> forward(const tensor<T>& x) const {
        const pool_geometry g(x.shape(), kernel, stride, padding, name);
        auto y = tensor<T>::uninitialized(g.out);
        const std::size_t hw = g.H * g.W, ohw = g.OH * g.OW;
        for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                const T* xp = x.data() + p * hw;
                T* yp = y.data() + p * ohw;
                for (std::size_t i = 0; i < g.OH; ++i)
                    for (std::size_t j = 0; j < g.OW; ++j) {
                        std::size_t r0, r1, c0, c1;
                        const T inv = window(g, i, j, r0, r1, c0, c1);
                        T s = 0;
                        for (std::size_t r = r0; r < r1; ++r)
                            for (std::size_t c = c0; c < c1; ++c) s += xp[r * g.W + c];
                        yp[i * g.OW + j] = s * inv;
                    }
            }
        });
        return y;
    }

    void backward(const tensor<T>& grad, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> gi) const {
        if (!gi[0]) return;
        const pool_geometry g(in[0].shape(), kernel, stride, padding, name);
        gi[0]->fill(T(0));
        const std::size_t hw = g.H * g.W, ohw = g.OH * g.OW;
        for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p) {
                const T* gp = grad.data() + p * ohw;
                T* dp = gi[0]->data() + p * hw;
                for (std::size_t i = 0; i < g.OH; ++i)
                    for (std::size_t j = 0; j < g.OW; ++j) {
                        std::size_t r0, r1, c0, c1;
                        const T share = gp[i * g.OW + j] * window(g, i, j, r0, r1, c0, c1);
                        for (std::size_t r = r0; r < r1; ++r)
                            for (std::size_t c = c0; c < c1; ++c) dp[r * g.W + c] += share;
                    }
            }
        });
    }
};

template <class T>
struct adaptive_avg_pool2d_op {
    static constexpr const char* name = "adaptive_avg_pool2d";
    size2 size;

    shape_t output_shape(const shape_t& x) const {
        const std::string n(name);
        if (size.h < 1 || size.w < 1) throw value_error(n + ": output size must be >= 1, got " + to_string(size));
        if (x.size() != 3 && x.size() != 4)
            throw shape_error(n + ": input must be {N, C, H, W} or {C, H, W}, got shape " + to_string(x));
        if (x[x.size() - 2] == 0 || x[x.size() - 1] == 0)
            throw shape_error(n + ": input shape " + to_string(x) + " has an empty spatial dimension");
        shape_t out = x;
        out[out.size() - 2] = static_cast<std::size_t>(size.h);
        out[out.size() - 1] = static_cast<std::size_t>(size.w);
        return out;
    }

    // window i of n outputs over an extent of `in`: [floor(i in / n), ceil((i + 1) in / n))
    XGRAD_HD static std::size_t start(std::size_t i, std::size_t n, std::size_t in) { return i * in / n; }
    XGRAD_HD static std::size_t end(std::size_t i, std::size_t n, std::size_t in) {
        return ((i + 1) * in + n - 1) / n;
    }

    template <class F>
    void sweep(const shape_t& xs, F&& f) const {
        const std::size_t H = xs[xs.size() - 2], W = xs[xs.size() - 1];
        const std::size_t OH = static_cast<std::size_t>(size.h), OW = static_cast<std::size_t>(size.w);
        const std::size_t planes = numel(xs) / (H * W);
        for_planes(planes, H * W, [&](std::size_t p0, std::size_t p1) {
            for (std::size_t p = p0; p < p1; ++p)
                for (std::size_t i = 0; i < OH; ++i)
                    for (std::size_t j = 0; j < OW; ++j) {
                        const std::size_t r0 = start(i, OH, H), r1 = end(i, OH, H);
                        const std::size_t c0 = start(j, OW, W), c1 = end(j, OW, W);
                        f(p * H * W, (p * OH + i) * OW + j, r0, r1, c0, c1, W,
                          T(1) / static_cast<T>((r1 - r0) * (c1 - c0)));
                    }
        });
    }

    tensor<T> forward(const tensor<T>& x) const {
        auto y = tensor<T>::uninitialized(output_shape(x.shape()));
        sweep(x.shape(), [&](std::size_t xo, std::size_t yo, std::size_t r0, std::size_t r1, std::size_t c0,
                             std::size_t c1, std::size_t W, T inv) {
            T s = 0;
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t c = c0; c < c1; ++c) s += x.data()[xo + r * W + c];
            y.data()[yo] = s * inv;
        });
        return y;
    }

    void backward(const tensor<T>& grad, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> gi) const {
        if (!gi[0]) return;
        gi[0]->fill(T(0));
        T* dx = gi[0]->data();
        sweep(in[0].shape(), [&](std::size_t xo, std::size_t yo, std::size_t r0, std::size_t r1, std::size_t c0,
                                 std::size_t c1, std::size_t W, T inv) {
            const T share = grad.data()[yo] * inv;
            for (std::size_t r = r0; r < r1; ++r)
                for (std::size_t c = c0; c < c1; ++c) dx[xo + r * W + c] += share;
        });
    }
};

}  // namespace detail

/// Max pooling over the last two dimensions; stride 0 (the default) means stride = kernel.
/// Throws value_error on a bad kernel/stride/padding, shape_error on a bad input shape.
template <operand X>
auto max_pool2d(X&& x, size2 kernel, size2 stride = 0, size2 padding = 0) {
    using T = typename expr_t<X>::value_type;
    return make_op(detail::max_pool2d_op<T>{kernel, stride, padding}, std::forward<X>(x));
}

/// Average pooling over the last two dimensions; stride 0 (the default) means stride = kernel.
template <operand X>
auto avg_pool2d(X&& x, size2 kernel, size2 stride = 0, size2 padding = 0, bool count_include_pad = true) {
    using T = typename expr_t<X>::value_type;
    return make_op(detail::avg_pool2d_op<T>{kernel, stride, padding, count_include_pad}, std::forward<X>(x));
}

/// Average pooling to a fixed output size {OH, OW} (PyTorch's window formula).
template <operand X>
auto adaptive_avg_pool2d(X&& x, size2 output_size) {
    using T = typename expr_t<X>::value_type;
    return make_op(detail::adaptive_avg_pool2d_op<T>{output_size}, std::forward<X>(x));
}

}  // namespace xgrad
