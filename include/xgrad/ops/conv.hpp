#pragma once
// 2-D convolution (cross-correlation, as PyTorch), NCHW, with stride, padding, dilation and
// groups, optionally fused with its bias and an activation.
//
//   x: {N, C, H, W},  w: {OC, C / groups, KH, KW},  b: {OC}  ->  y: {N, OC, OH, OW}
//   OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1   (likewise OW)
//   y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] x[n, g Cg + c, i sh - ph + p dh, j sw - pw + q dw]
//
// Algorithm: im2col + GEMM. Per sample and group, the receptive fields are unrolled into
// cols {Cg KH KW, OH OW} and Y_g = W_g cols is one GEMM whose output is already NCHW; bias
// and activation run in that GEMM's epilogue. A 1x1, stride 1, unpadded convolution uses x as
// cols directly. Samples are spread over xgrad's threads, each GEMM then single-threaded.
// Direct xsimd kernels (detail/conv_direct.hpp) can be selected with set_conv_algorithm.
//
// Gradients (G = upstream gradient times act'):
//   dW_g = sum_n G_g cols^T,   dcols = W_g^T G_g scattered back (col2im) into dx,   db = sum_{n,i,j} G.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "../core/config.hpp"
#include "../backend/cpu/gemm.hpp"
#include "../expr/op_node.hpp"
#include "activation.hpp"
#include "detail/conv_direct.hpp"
#include "detail/device_kernels.hpp"
#include "detail/epilogue.hpp"

namespace xgrad {

/// A pair of extents (height, width); an int means the same value for both.
struct size2 {
    std::ptrdiff_t h = 0, w = 0;
    constexpr size2(std::ptrdiff_t v = 0) : h(v), w(v) {}  // NOLINT: implicit by design (stride = 2)
    constexpr size2(std::ptrdiff_t hh, std::ptrdiff_t ww) : h(hh), w(ww) {}
    // User-provided copies make size2, and the option structs holding it, non-trivially
    // copyable, so they are passed by address. g++ 12 at -march=native (AVX-512) miscompiles
    // trivially copyable aggregates of these built in a call's stack argument area (its
    // vectorised stores lose fields).
    constexpr size2(const size2& o) : h(o.h), w(o.w) {}
    constexpr size2& operator=(const size2& o) {
        h = o.h;
        w = o.w;
        return *this;
    }
    friend constexpr bool operator==(const size2&, const size2&) = default;
};

inline std::string to_string(const size2& s) { return "{" + std::to_string(s.h) + ", " + std::to_string(s.w) + "}"; }

/// conv2d settings, meant for designated initializers: {.stride = 2, .padding = {1, 0}}.
struct conv2d_options {
    size2 stride = 1;
    size2 padding = 0;
    size2 dilation = 1;
    std::ptrdiff_t groups = 1;
};

/// How conv2d computes. `automatic` (the default) is im2col + GEMM, measured faster than the
/// direct kernels on every CNN layer shape benchmarked (docs/dense_ops.md); `direct` selects
/// the direct xsimd kernels where they apply (stride 1, dilation 1, padding < kernel; other
/// shapes still use im2col).
enum class conv_algorithm { automatic, im2col, direct };

namespace detail {
inline std::atomic<conv_algorithm>& conv_algorithm_setting() {
    static std::atomic<conv_algorithm> a{conv_algorithm::automatic};
    return a;
}
}  // namespace detail

inline conv_algorithm get_conv_algorithm() { return detail::conv_algorithm_setting().load(); }
inline void set_conv_algorithm(conv_algorithm a) { detail::conv_algorithm_setting() = a; }

namespace detail {

/// Sizes of one convolution, validated against its input and weight shapes.
struct conv_geometry {
    std::size_t N = 0, C = 0, H = 0, W = 0, OC = 0, KH = 0, KW = 0, OH = 0, OW = 0;
    std::size_t G = 1, Cg = 0, OCg = 0;
    std::size_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;

    XGRAD_OUTLINE conv_geometry(const shape_t& x, const shape_t& w, const conv2d_options& o, const char* op);

    shape_t out_shape() const { return {N, OC, OH, OW}; }
    std::size_t ckk() const { return Cg * KH * KW; }  // GEMM inner extent per group
    std::size_t ohw() const { return OH * OW; }
    /// 1x1, stride 1, no padding: x itself is the column matrix.
    bool pointwise() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
    /// Whether this convolution runs the direct kernels (which need stride 1, dilation 1 and,
    /// for dx, padding below the kernel size).
    bool direct() const {
        const bool ok = sh == 1 && sw == 1 && dh == 1 && dw == 1 && ph < KH && pw < KW && !pointwise();
        return ok && get_conv_algorithm() == conv_algorithm::direct;
    }
    // wide-row layout of the direct kernels (conv_direct.hpp)
    std::size_t wp() const { return W + 2 * pw; }
    std::size_t plane() const { return (H + 2 * ph) * wp(); }
    std::size_t wide() const { return OH * wp(); }  // wide outputs per channel
    std::size_t wide_blocks() const {               // ... rounded up to the kernel's block
        constexpr std::size_t blk = 4 * simd_t<float>::size;
        return (wide() + blk - 1) / blk * blk;
    }
    std::size_t slack() const { return wide_blocks() - wide() + KW + 4 * simd_t<float>::size; }

    /// Output columns [lo, hi) whose input column j * s - p + k d lies inside [0, extent).
    static void valid_range(std::size_t out, std::size_t extent, std::size_t s, std::size_t p, std::size_t kd,
                            std::size_t& lo, std::size_t& hi) {
        // j * s + kd >= p  and  j * s + kd < p + extent
        lo = kd >= p ? 0 : (p - kd + s - 1) / s;
        hi = p + extent > kd ? std::min(out, (p + extent - kd + s - 1) / s) : 0;
        lo = std::min(lo, hi);
    }
};

XGRAD_OUTLINE_DEF conv_geometry::conv_geometry(const shape_t& x, const shape_t& w, const conv2d_options& o, const char* op) {
    const std::string name(op);
    if (o.stride.h < 1 || o.stride.w < 1)
        throw value_error(name + ": stride must be >= 1, got " + to_string(o.stride));
    if (o.dilation.h < 1 || o.dilation.w < 1)
        throw value_error(name + ": dilation must be >= 1, got " + to_string(o.dilation));
    if (o.padding.h < 0 || o.padding.w < 0)
        throw value_error(name + ": padding must be >= 0, got " + to_string(o.padding));
    if (o.groups < 1) throw value_error(name + ": groups must be >= 1, got " + std::to_string(o.groups));
    if (x.size() != 4) throw shape_error(name + ": input must be 4-D {N, C, H, W}, got shape " + to_string(x));
    if (w.size() != 4)
        throw shape_error(name + ": weight must be 4-D {out, in / groups, KH, KW}, got shape " + to_string(w));
    N = x[0], C = x[1], H = x[2], W = x[3];
    OC = w[0], KH = w[2], KW = w[3];
    G = static_cast<std::size_t>(o.groups);
    if (C % G != 0 || OC % G != 0)
        throw shape_error(name + ": groups = " + std::to_string(G) + " must divide the input channels (" +
                          std::to_string(C) + ", input shape " + to_string(x) + ") and the output channels (" +
                          std::to_string(OC) + ", weight shape " + to_string(w) + ")");
    Cg = C / G, OCg = OC / G;
    if (w[1] != Cg)
        throw shape_error(name + ": input shape " + to_string(x) + " has " + std::to_string(C) +
                          " channels, so with groups = " + std::to_string(G) + " the weight needs " +
                          std::to_string(Cg) + " input channels, but weight shape " + to_string(w) + " has " +
                          std::to_string(w[1]));
    sh = static_cast<std::size_t>(o.stride.h), sw = static_cast<std::size_t>(o.stride.w);
    ph = static_cast<std::size_t>(o.padding.h), pw = static_cast<std::size_t>(o.padding.w);
    dh = static_cast<std::size_t>(o.dilation.h), dw = static_cast<std::size_t>(o.dilation.w);
    if (KH == 0 || KW == 0) throw shape_error(name + ": weight shape " + to_string(w) + " has an empty kernel");
    const std::size_t eh = dh * (KH - 1) + 1, ew = dw * (KW - 1) + 1;  // dilated kernel extent
    if (eh > H + 2 * ph || ew > W + 2 * pw)
        throw shape_error(name + ": kernel " + std::to_string(KH) + "x" + std::to_string(KW) + " (dilated extent " +
                          std::to_string(eh) + "x" + std::to_string(ew) + ") is larger than the padded input " +
                          std::to_string(H + 2 * ph) + "x" + std::to_string(W + 2 * pw) + " (input shape " +
                          to_string(x) + ", padding " + to_string(o.padding) + ")");
    OH = (H + 2 * ph - eh) / sh + 1;
    OW = (W + 2 * pw - ew) / sw + 1;
}
XGRAD_INSTANCE(conv_geometry::conv_geometry(const shape_t& x, const shape_t& w, const conv2d_options& o, const char* op))

/// cols[(c KH + p) KW + q, i OW + j] = x[c, i sh - ph + p dh, j sw - pw + q dw] (0 in the padding),
/// for the Cg channels starting at `x` (one sample, one group).
template <class T>
void im2col(const conv_geometry& g, const T* x, T* cols) {
    const std::size_t OH = g.OH, OW = g.OW, HW = g.H * g.W;
    for (std::size_t c = 0; c < g.Cg; ++c)
        for (std::size_t p = 0; p < g.KH; ++p)
            for (std::size_t q = 0; q < g.KW; ++q) {
                T* row = cols + ((c * g.KH + p) * g.KW + q) * OH * OW;
                std::size_t jlo, jhi;
                conv_geometry::valid_range(OW, g.W, g.sw, g.pw, q * g.dw, jlo, jhi);
                for (std::size_t i = 0; i < OH; ++i) {
                    T* dst = row + i * OW;
                    const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(i * g.sh + p * g.dh) - static_cast<std::ptrdiff_t>(g.ph);
                    if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(g.H)) {
                        std::fill(dst, dst + OW, T(0));
                        continue;
                    }
                    const T* src = x + c * HW + static_cast<std::size_t>(ih) * g.W;
                    std::fill(dst, dst + jlo, T(0));
                    const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(q * g.dw) - static_cast<std::ptrdiff_t>(g.pw);
                    if (g.sw == 1)
                        std::memcpy(dst + jlo, src + static_cast<std::ptrdiff_t>(jlo) + off, (jhi - jlo) * sizeof(T));
                    else
                        for (std::size_t j = jlo; j < jhi; ++j) dst[j] = src[static_cast<std::ptrdiff_t>(j * g.sw) + off];
                    std::fill(dst + jhi, dst + OW, T(0));
                }
            }
}

/// The adjoint of im2col: dx[c, ...] += dcols[...] for every receptive-field position.
template <class T>
void col2im(const conv_geometry& g, const T* cols, T* dx) {
    const std::size_t OH = g.OH, OW = g.OW, HW = g.H * g.W;
    for (std::size_t c = 0; c < g.Cg; ++c)
        for (std::size_t p = 0; p < g.KH; ++p)
            for (std::size_t q = 0; q < g.KW; ++q) {
                const T* row = cols + ((c * g.KH + p) * g.KW + q) * OH * OW;
                std::size_t jlo, jhi;
                conv_geometry::valid_range(OW, g.W, g.sw, g.pw, q * g.dw, jlo, jhi);
                const std::ptrdiff_t off = static_cast<std::ptrdiff_t>(q * g.dw) - static_cast<std::ptrdiff_t>(g.pw);
                for (std::size_t i = 0; i < OH; ++i) {
                    const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(i * g.sh + p * g.dh) - static_cast<std::ptrdiff_t>(g.ph);
                    if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(g.H)) continue;
                    T* dst = dx + c * HW + static_cast<std::size_t>(ih) * g.W;
                    const T* src = row + i * OW;
                    for (std::size_t j = jlo; j < jhi; ++j) dst[static_cast<std::ptrdiff_t>(j * g.sw) + off] += src[j];
                }
            }
}

/// Runs f(thread, n0, n1) over the batch: split across xgrad's threads, each GEMM then on its
/// own thread; a batch of one keeps the threads for the GEMM instead.
template <class F>
void for_batch(std::size_t n, F&& f) {
    const std::size_t nt = std::min(num_threads(), n);
    if (nt <= 1) {
        f(std::size_t{0}, std::size_t{0}, n);
        return;
    }
    single_threaded_gemm one;
    const std::size_t per = (n + nt - 1) / nt;
    parallel_run(nt, [&](std::size_t t) {
        const std::size_t lo = std::min(n, t * per), hi = std::min(n, (t + 1) * per);
        if (lo < hi) f(t, lo, hi);
    });
}

/// y = act(conv2d(x, w) + b).
template <class T, class Act, bool Bias>
struct conv2d_op {
    static constexpr const char* name = "conv2d";
    static constexpr std::size_t arity = Bias ? 3 : 2;
    conv2d_options opt;
    pre_store<T, Act> pre;

    template <class... S>
    shape_t output_shape(const shape_t& x, const shape_t& w, const S&... b) const {
        const conv_geometry g(x, w, opt, name);
        if constexpr (Bias) {
            const shape_t& sb = (b, ...);
            if (sb != shape_t{g.OC})
                throw shape_error(std::string(name) + ": bias must have shape {" + std::to_string(g.OC) +
                                  "} for weight shape " + to_string(w) + ", got " + to_string(sb));
        }
        return g.out_shape();
    }

    template <class... Rest>
    tensor<T> forward(const tensor<T>& x, const tensor<T>& w, const Rest&... rest) const {
        const conv_geometry g(x.shape(), w.shape(), opt, name);
        auto y = tensor<T>::uninitialized(g.out_shape());
        const T* bias = nullptr;
        if constexpr (Bias) bias = (rest, ...).data();
        T* pre_z = pre.prepare(y.shape());
        std::vector<std::ptrdiff_t> channel(g.OC);  // bias offset of each GEMM row: its channel
        for (std::size_t o = 0; o < g.OC; ++o) channel[o] = static_cast<std::ptrdiff_t>(o);
        const std::size_t ckk = g.ckk(), ohw = g.ohw();
        if (g.direct()) {
            forward_direct(g, x, w, bias, channel, y, pre_z);
            return y;
        }
        for_batch(g.N, [&](std::size_t, std::size_t n0, std::size_t n1) {
            thread_local aligned_vector<T> cols;
            if (!g.pointwise()) cols.resize(ckk * ohw);
            for (std::size_t n = n0; n < n1; ++n)
                for (std::size_t gr = 0; gr < g.G; ++gr) {
                    const T* xs = x.data() + (n * g.C + gr * g.Cg) * g.H * g.W;
                    const T* B = xs;
                    if (!g.pointwise()) {
                        im2col(g, xs, cols.data());
                        B = cols.data();
                    }
                    const std::size_t off = (n * g.OC + gr * g.OCg) * ohw;
                    T* C = y.data() + off;
                    const T* A = w.data() + gr * g.OCg * ckk;
                    if (bias || !trivial_activation<Act>) {
                        bias_act_epilogue<T, Act> epi{C, ohw, bias, channel.data() + gr * g.OCg, 0,
                                                      pre_z ? pre_z + off : nullptr};
                        gemm<T>(false, false, g.OCg, ohw, ckk, T(1), A, ckk, B, ohw, T(0), C, ohw, epi);
                    } else {
                        gemm<T>(false, false, g.OCg, ohw, ckk, T(1), A, ckk, B, ohw, T(0), C, ohw);
                    }
                }
        });
        return y;
    }

    void backward(const tensor<T>& grad, const tensor<T>& out, const std::array<tensor<T>, arity>& in,
                  std::array<tensor<T>*, arity> gi) const {
        const tensor<T>& x = in[0];
        const tensor<T>& w = in[1];
        const conv_geometry g(x.shape(), w.shape(), opt, name);
        tensor<T> dz = grad;  // gradient w.r.t. conv(x, w) + b
        if (!trivial_activation<Act>) dz = tensor<T>::uninitialized(grad.shape());
        if (Bias || !trivial_activation<Act>) {  // act' and db = sum of dz per channel, one pass
            bias_layout L;
            T* db = nullptr;
            if constexpr (Bias) {
                L = make_bias_layout(shape_t{g.OC, 1, 1}, grad.shape(), 2, name);  // b[o] per channel
                db = gi[2] ? gi[2]->data() : nullptr;
            }
            epilogue_backward<T, Act>(grad.data(), out.data(), pre.data(), dz.data(), g.N * g.OC, g.ohw(), L, db, g.OC);
        }
        if (!gi[0] && !gi[1]) return;
        const std::size_t nt = std::max<std::size_t>(1, std::min(num_threads(), g.N));
        // dW: one partial sum per thread (the first writes into the result), added up at the end
        std::vector<tensor<T>> dw_part;
        if (gi[1])
            for (std::size_t t = 1; t < nt; ++t) dw_part.push_back(tensor<T>::uninitialized(w.shape()));
        std::vector<char> dw_written(nt, 0);
        if (g.direct()) {
            backward_direct(g, x, w, dz, gi[0], gi[1], dw_part, dw_written);
        } else {
            backward_im2col(g, x, w, dz, gi[0], gi[1], dw_part, dw_written);  // zeroes dx per sample
        }
        if (gi[1]) {
            T* dw = gi[1]->data();
            if (!dw_written[0]) gi[1]->fill(T(0));
            for (std::size_t t = 1; t < nt; ++t)
                if (dw_written[t]) {
                    const T* p = dw_part[t - 1].data();
                    for (std::size_t i = 0; i < w.size(); ++i) dw[i] += p[i];
                }
        }
    }

private:
    /// dx and per-thread dW partial sums through im2col + GEMM. Each thread zeroes its own
    /// samples of dx before col2im adds into them (first touch on the thread that writes).
    void backward_im2col(const conv_geometry& g, const tensor<T>& x, const tensor<T>& w, const tensor<T>& dz,
                         tensor<T>* gx, tensor<T>* gw, std::vector<tensor<T>>& dw_part,
                         std::vector<char>& dw_written) const {
        std::array<tensor<T>*, 2> gi{gx, gw};
        const std::size_t ckk = g.ckk(), ohw = g.ohw();
        for_batch(g.N, [&](std::size_t t, std::size_t n0, std::size_t n1) {
            thread_local aligned_vector<T> cols, dcols;
            if (!g.pointwise()) {
                if (gi[1]) cols.resize(ckk * ohw);
                if (gi[0]) dcols.resize(ckk * ohw);
            }
            T* dw = gi[1] ? (t == 0 ? gi[1]->data() : dw_part[t - 1].data()) : nullptr;
            if (gi[0]) std::fill(gi[0]->data() + n0 * g.C * g.H * g.W, gi[0]->data() + n1 * g.C * g.H * g.W, T(0));
            for (std::size_t n = n0; n < n1; ++n)
                for (std::size_t gr = 0; gr < g.G; ++gr) {
                    const std::size_t xoff = (n * g.C + gr * g.Cg) * g.H * g.W;
                    const T* Gy = dz.data() + (n * g.OC + gr * g.OCg) * ohw;
                    const T* Wg = w.data() + gr * g.OCg * ckk;
                    if (dw) {  // dW_g (+)= G_g cols^T
                        const T* B = x.data() + xoff;
                        if (!g.pointwise()) {
                            im2col(g, B, cols.data());
                            B = cols.data();
                        }
                        gemm<T>(false, true, g.OCg, ckk, ohw, T(1), Gy, ohw, B, ohw, n == n0 ? T(0) : T(1),
                                dw + gr * g.OCg * ckk, ckk);
                    }
                    if (gi[0]) {  // dcols = W_g^T G_g, then col2im
                        T* dx = gi[0]->data() + xoff;
                        if (g.pointwise()) {
                            gemm<T>(true, false, ckk, ohw, g.OCg, T(1), Wg, ckk, Gy, ohw, T(0), dx, ohw);
                        } else {
                            gemm<T>(true, false, ckk, ohw, g.OCg, T(1), Wg, ckk, Gy, ohw, T(0), dcols.data(), ohw);
                            col2im(g, dcols.data(), dx);
                        }
                    }
                }
            if (dw && n0 < n1) dw_written[t] = 1;
        });
    }

    /// Forward through the direct kernel: wide rows into scratch, then the valid columns into y
    /// and the bias/activation epilogue over them.
    void forward_direct(const conv_geometry& g, const tensor<T>& x, const tensor<T>& w, const T* bias,
                        const std::vector<std::ptrdiff_t>& channel, tensor<T>& y, T* pre_z) const {
        const std::size_t ohw = g.ohw(), Wp = g.wp(), np = g.wide_blocks();
        for_batch(g.N, [&](std::size_t, std::size_t n0, std::size_t n1) {
            thread_local aligned_vector<T> xp, out;
            out.resize(g.OCg * np);
            for (std::size_t n = n0; n < n1; ++n)
                for (std::size_t gr = 0; gr < g.G; ++gr) {
                    pad_planes(x.data() + (n * g.C + gr * g.Cg) * g.H * g.W, g.Cg, g.H, g.W, g.ph, g.pw, g.slack(), xp);
                    direct_wide(xp.data(), g.Cg, g.plane(), Wp, w.data() + gr * g.OCg * g.ckk(), g.OCg, g.KH, g.KW,
                                out.data(), np, np);
                    const std::size_t off = (n * g.OC + gr * g.OCg) * ohw;
                    T* C = y.data() + off;
                    for (std::size_t o = 0; o < g.OCg; ++o)
                        for (std::size_t i = 0; i < g.OH; ++i)
                            std::memcpy(C + o * ohw + i * g.OW, out.data() + o * np + i * Wp, g.OW * sizeof(T));
                    if (bias || !trivial_activation<Act>) {
                        bias_act_epilogue<T, Act> epi{C, ohw, bias, channel.data() + gr * g.OCg, 0,
                                                      pre_z ? pre_z + off : nullptr};
                        epi(0, g.OCg, 0, ohw);
                    }
                }
        });
    }

    /// dx and per-thread dW partial sums through the direct kernels: dW as dot products of wide
    /// gradient rows with shifted input rows; dx as the forward kernel run on the gradient
    /// padded by K - 1 - p with the kernel flipped and its channel axes swapped.
    void backward_direct(const conv_geometry& g, const tensor<T>& x, const tensor<T>& w, const tensor<T>& dz,
                         tensor<T>* gx, tensor<T>* gw, std::vector<tensor<T>>& dw_part,
                         std::vector<char>& dw_written) const {
        const std::size_t ohw = g.ohw(), Wp = g.wp(), KK = g.KH * g.KW;
        // wf[gr][c, o, p, q] = w[gr OCg + o, c, KH-1-p, KW-1-q]
        std::vector<T> wf;
        if (gx) {
            wf.resize(w.size());
            for (std::size_t gr = 0; gr < g.G; ++gr)
                for (std::size_t o = 0; o < g.OCg; ++o)
                    for (std::size_t c = 0; c < g.Cg; ++c)
                        for (std::size_t k = 0; k < KK; ++k)
                            wf[((gr * g.Cg + c) * g.OCg + o) * KK + (KK - 1 - k)] =
                                w.data()[((gr * g.OCg + o) * g.Cg + c) * KK + k];
        }
        // geometry of dx as a forward convolution of the gradient
        const std::size_t qh = g.KH - 1 - g.ph, qw = g.KW - 1 - g.pw;
        const std::size_t Wq = g.OW + 2 * qw, Hq = g.OH + 2 * qh, widex = g.H * Wq;
        constexpr std::size_t blk = 4 * simd_t<float>::size;
        const std::size_t npx = (widex + blk - 1) / blk * blk;
        const std::size_t np_w = (g.wide() + simd_t<T>::size - 1) / simd_t<T>::size * simd_t<T>::size;
        for_batch(g.N, [&](std::size_t t, std::size_t n0, std::size_t n1) {
            thread_local aligned_vector<T> xp, gwide, gp, outx;
            T* dw = gw ? (t == 0 ? gw->data() : dw_part[t - 1].data()) : nullptr;
            for (std::size_t n = n0; n < n1; ++n)
                for (std::size_t gr = 0; gr < g.G; ++gr) {
                    const T* Gy = dz.data() + (n * g.OC + gr * g.OCg) * ohw;
                    if (dw) {  // gwide: G in wide rows, zero in the discarded columns
                        pad_planes(x.data() + (n * g.C + gr * g.Cg) * g.H * g.W, g.Cg, g.H, g.W, g.ph, g.pw, g.slack(),
                                   xp);
                        gwide.assign(g.OCg * np_w, T(0));
                        for (std::size_t o = 0; o < g.OCg; ++o)
                            for (std::size_t i = 0; i < g.OH; ++i)
                                std::memcpy(gwide.data() + o * np_w + i * Wp, Gy + o * ohw + i * g.OW, g.OW * sizeof(T));
                        direct_weight_grad(xp.data(), g.Cg, g.plane(), Wp, gwide.data(), np_w, g.OCg, g.KH, g.KW, np_w,
                                           dw + gr * g.OCg * g.ckk(), n != n0);
                    }
                    if (gx) {
                        pad_planes(Gy, g.OCg, g.OH, g.OW, qh, qw, npx - widex + g.KW + blk, gp);
                        outx.resize(g.Cg * npx);
                        direct_wide(gp.data(), g.OCg, Hq * Wq, Wq, wf.data() + gr * g.Cg * g.OCg * KK, g.Cg, g.KH, g.KW,
                                    outx.data(), npx, npx);
                        T* dx = gx->data() + (n * g.C + gr * g.Cg) * g.H * g.W;
                        for (std::size_t c = 0; c < g.Cg; ++c)
                            for (std::size_t h = 0; h < g.H; ++h)
                                std::memcpy(dx + (c * g.H + h) * g.W, outx.data() + c * npx + h * Wq, g.W * sizeof(T));
                    }
                }
            if (dw && n0 < n1) dw_written[t] = 1;
        });
        if (gx && g.N == 0) gx->fill(T(0));
    }
};

template <class T, class Act, bool Bias, class... E>
struct dense_fusion<op_node<conv2d_op<T, Act, Bias>, E...>> : std::bool_constant<trivial_activation<Act>> {
    template <class A>
    static auto fuse(A, const op_node<conv2d_op<T, Act, Bias>, E...>& n) {
        using op = conv2d_op<T, A, Bias>;
        return std::apply([&](const auto&... x) { return op_node<op, E...>(op{n.impl.opt, {}}, x...); }, n.args);
    }
};

}  // namespace detail

/// 2-D convolution of x {N, C, H, W} with w {OC, C / groups, KH, KW}; see the top of this file.
/// Throws shape_error on mismatched channels, groups or a kernel larger than the padded input,
/// value_error on a non-positive stride, dilation or groups, or negative padding.
template <operand X, operand Wt>
auto conv2d(X&& x, Wt&& w, const conv2d_options& opt = {}) {
    using T = typename expr_t<X>::value_type;
    static_assert(std::is_floating_point_v<T>, "xgrad::conv2d: operands must hold float or double");
    return make_op(detail::conv2d_op<T, activation::identity_t, false>{opt, {}}, std::forward<X>(x), std::forward<Wt>(w));
}

/// conv2d with a bias b {OC} and an activation, both fused into the GEMM's output pass.
template <operand X, operand Wt, operand Bv, fusable_activation Act = activation::identity_t>
auto conv2d(X&& x, Wt&& w, Bv&& b, const conv2d_options& opt = {}, Act = {}) {
    using T = typename expr_t<X>::value_type;
    static_assert(std::is_floating_point_v<T>, "xgrad::conv2d: operands must hold float or double");
    return make_op(detail::conv2d_op<T, Act, true>{opt, {}}, std::forward<X>(x), std::forward<Wt>(w),
                   std::forward<Bv>(b));
}

}  // namespace xgrad
