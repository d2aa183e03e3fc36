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

#include "../core/config.hpp"
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

    XGRAD_OUTLINE pool_geometry(const shape_t& x, size2 kernel, size2 stride, size2 padding, const char* op);

    /// Input rows [lo, hi) of output row i (window clipped to the input).
    void rows(std::size_t i, std::size_t& lo, std::size_t& hi) const { clip(i * sh, ph, kh, H, lo, hi); }
    void cols(std::size_t j, std::size_t& lo, std::size_t& hi) const { clip(j * sw, pw, kw, W, lo, hi); }
    XGRAD_HD static void clip(std::size_t start, std::size_t pad, std::size_t k, std::size_t n, std::size_t& lo,
                                       std::size_t& hi) {
        lo = start >= pad ? start - pad : 0;
        hi = start + k - pad < n ? start + k - pad : n;
    }
};

XGRAD_OUTLINE_DEF pool_geometry::pool_geometry(const shape_t& x, size2 kernel, size2 stride, size2 padding, const char* op) {
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
XGRAD_INSTANCE(pool_geometry::pool_geometry(const shape_t& x, size2 kernel, size2 stride, size2 padding, const char* op))

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
        if (two_by_two(g)) {
            for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p)
                    forward_2x2(g, x.data() + p * hw, y.data() + p * ohw, x.data() + x.size());
            });
            return y;
        }
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

    /// The common 2x2, stride 2, unpadded case: windows tile the input without overlap or clipping.
    static bool two_by_two(const pool_geometry& g) {
        return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0;
    }
    /// b when b > a or b is NaN, else a: over a window, the maximum (NaN when the window holds
    /// one), the value window_argmax's element has. Indexed rather than branched on: the
    /// window's maximum moves at random and a branch would be mispredicted half the time.
    static T first_max(T a, T b) {
        const T ab[2] = {a, b};
        return ab[(b > a) | (b != b)];
    }
    template <class B>
    static B first_max(const B& a, const B& b) {
        return xsimd::select((b > a) | (b != b), b, a);
    }

    /// y of one plane, 2x2 stride 2: per row pair, m[k] = max of x[2i.., k..k+1] for every
    /// column k with SIMD (contiguous loads), then y[i, j] = m[2 j]. Loads may run past the
    /// row into the next one (lanes past 2 OW are discarded), never past xend, the end of x.
    static void forward_2x2(const pool_geometry& g, const T* xp, T* yp, const T* xend) {
        using B = simd_t<T>;
        constexpr std::size_t L = B::size;
        thread_local aligned_vector<T> m;
        const std::size_t n = 2 * g.OW;
        m.resize(n + L);
        for (std::size_t i = 0; i < g.OH; ++i) {
            const T* r0 = xp + 2 * i * g.W;
            const T* r1 = r0 + g.W;
            std::size_t k = 0;
            for (; k < n && r1 + k + L + 1 <= xend; k += L) {
                const B a = B::load_unaligned(r0 + k), b = B::load_unaligned(r0 + k + 1);
                const B c = B::load_unaligned(r1 + k), d = B::load_unaligned(r1 + k + 1);
                first_max(first_max(first_max(a, b), c), d).store_unaligned(m.data() + k);
            }
            for (; k < n; k += 2) m[k] = first_max(first_max(first_max(r0[k], r0[k + 1]), r1[k]), r1[k + 1]);
            T* out = yp + i * g.OW;
            for (std::size_t j = 0; j < g.OW; ++j) out[j] = m[2 * j];
        }
    }

    /// dx of one plane, 2x2 stride 2: the window's first element equal to its output y (its
    /// first NaN when y is NaN) receives g, the other three 0; rows and columns no window
    /// covers (odd H or W) get 0. One plane is zeroed and then scattered into while in cache.
    static void backward_2x2(const pool_geometry& g, const T* xp, const T* yp, const T* gp, T* dp) {
        std::fill(dp, dp + g.H * g.W, T(0));
        const std::size_t at[4] = {0, 1, g.W, g.W + 1};  // window element -> offset from its corner
        for (std::size_t i = 0; i < g.OH; ++i) {
            const T* r0 = xp + 2 * i * g.W;
            const T* r1 = r0 + g.W;
            T* d0 = dp + 2 * i * g.W;
            for (std::size_t j = 0; j < g.OW; ++j) {
                const T y = yp[i * g.OW + j];
                const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j];  // else the fourth
                // v is y, or a NaN (only possible when y is NaN); no branches
                const unsigned na = !((a == y) | (a != a)), nb = !((b == y) | (b != b)), nc = !((c == y) | (c != c));
                d0[2 * j + at[na * (1 + nb * (1 + nc))]] = gp[i * g.OW + j];
            }
        }
    }

    void backward(const tensor<T>& grad, const tensor<T>& out, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> gi) const {
        if (!gi[0]) return;
        const pool_geometry g(in[0].shape(), kernel, stride, padding, name);
        const std::size_t hw = g.H * g.W, ohw = g.OH * g.OW;
        if (two_by_two(g)) {
            for_planes(g.planes, hw, [&](std::size_t p0, std::size_t p1) {
                for (std::size_t p = p0; p < p1; ++p)
                    backward_2x2(g, in[0].data() + p * hw, out.data() + p * ohw, grad.data() + p * ohw,
                                 gi[0]->data() + p * hw);
            });
            return;
        }
        gi[0]->fill(T(0));
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
