#pragma once
// Direct convolution kernels for stride 1, dilation 1, selected by
// set_conv_algorithm(conv_algorithm::direct). On the CNN layers measured they did not beat
// im2col + GEMM (docs/dense_ops.md), so conv2d uses them only on request.
//
// "Wide rows": with the input zero-padded to Hp x Wp, output (i, j) and tap (p, q) read input
// position (i + p) Wp + (j + q). Indexing outputs by P = i Wp + j over the padded width turns
// every tap into a contiguous shifted read xp[P + p Wp + q], so SIMD runs along P. The columns
// j >= OW of a wide row are computed and thrown away (a (Wp - OW) / Wp overhead).
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "../../backend/cpu/gemm.hpp"  // aligned_vector
#include "../../detail/vmath.hpp"

namespace xgrad::detail {

/// Padded planes of one sample/group: C planes of Hp x Wp, plus `slack` zeros at the end so
/// that vector reads past the last wide row stay inside the buffer.
template <class T>
void pad_planes(const T* x, std::size_t C, std::size_t H, std::size_t W, std::size_t ph, std::size_t pw,
                std::size_t slack, aligned_vector<T>& out) {
    const std::size_t Hp = H + 2 * ph, Wp = W + 2 * pw;
    out.assign(C * Hp * Wp + slack, T(0));
    for (std::size_t c = 0; c < C; ++c)
        for (std::size_t h = 0; h < H; ++h)
            std::memcpy(out.data() + c * Hp * Wp + (h + ph) * Wp + pw, x + (c * H + h) * W, W * sizeof(T));
}

/// out[o, P] = sum_{c, p, q} w[o, c, p, q] xp[c, P + p Wp + q] for P in [0, np) (np a multiple of
/// the block width), o in [0, O). xp: C planes of size plane; w: {O, C, KH, KW} contiguous.
template <class T>
void direct_wide(const T* xp, std::size_t C, std::size_t plane, std::size_t Wp, const T* w, std::size_t O,
                 std::size_t KH, std::size_t KW, T* out, std::size_t ld_out, std::size_t np) {
    using B = simd_t<T>;
    constexpr std::size_t Wd = B::size, R = 4, V = 4;  // R output channels x V vectors per block
    const std::size_t taps = C * KH * KW;
    auto block = [&]<std::size_t RR>(std::size_t o0) {
        for (std::size_t p0 = 0; p0 < np; p0 += V * Wd) {
            B acc[RR][V];
            for (auto& a : acc)
                for (auto& v : a) v = B(T(0));
            for (std::size_t c = 0; c < C; ++c)
                for (std::size_t kh = 0; kh < KH; ++kh)
                    for (std::size_t kw = 0; kw < KW; ++kw) {
                        const T* src = xp + c * plane + kh * Wp + kw + p0;
                        B xv[V];
#pragma GCC unroll 4
                        for (std::size_t v = 0; v < V; ++v) xv[v] = B::load_unaligned(src + v * Wd);
                        const std::size_t t = (c * KH + kh) * KW + kw;
#pragma GCC unroll 4
                        for (std::size_t r = 0; r < RR; ++r) {
                            const B wv(w[(o0 + r) * taps + t]);
#pragma GCC unroll 4
                            for (std::size_t v = 0; v < V; ++v) acc[r][v] = xsimd::fma(wv, xv[v], acc[r][v]);
                        }
                    }
            for (std::size_t r = 0; r < RR; ++r)
                for (std::size_t v = 0; v < V; ++v) acc[r][v].store_unaligned(out + (o0 + r) * ld_out + p0 + v * Wd);
        }
    };
    std::size_t o = 0;
    for (; o + R <= O; o += R) block.template operator()<R>(o);
    for (; o < O; ++o) block.template operator()<1>(o);
}

/// dw[o, c, p, q] (+)= sum_P g[o, P] xp[c, P + p Wp + q] over P in [0, np); g holds zeros in the
/// discarded columns of each wide row, and in [valid, np).
template <class T>
void direct_weight_grad(const T* xp, std::size_t C, std::size_t plane, std::size_t Wp, const T* g, std::size_t ld_g,
                        std::size_t O, std::size_t KH, std::size_t KW, std::size_t np, T* dw, bool accumulate) {
    using B = simd_t<T>;
    constexpr std::size_t Wd = B::size, R = 4, TT = 4;  // R output channels x TT taps per block
    const std::size_t taps = C * KH * KW;
    auto offset = [&](std::size_t t) {
        const std::size_t c = t / (KH * KW), k = t % (KH * KW);
        return c * plane + (k / KW) * Wp + k % KW;
    };
    auto block = [&]<std::size_t RR, std::size_t NT>(std::size_t o0, std::size_t t0) {
        B acc[RR][NT];
        for (auto& a : acc)
            for (auto& v : a) v = B(T(0));
        std::size_t off[NT];
        for (std::size_t k = 0; k < NT; ++k) off[k] = offset(t0 + k);
        for (std::size_t p = 0; p < np; p += Wd) {
            B gv[RR], xv[NT];
#pragma GCC unroll 4
            for (std::size_t r = 0; r < RR; ++r) gv[r] = B::load_unaligned(g + (o0 + r) * ld_g + p);
#pragma GCC unroll 4
            for (std::size_t k = 0; k < NT; ++k) xv[k] = B::load_unaligned(xp + off[k] + p);
#pragma GCC unroll 4
            for (std::size_t r = 0; r < RR; ++r)
#pragma GCC unroll 4
                for (std::size_t k = 0; k < NT; ++k) acc[r][k] = xsimd::fma(gv[r], xv[k], acc[r][k]);
        }
        alignas(alignment) T lanes[Wd];
        for (std::size_t r = 0; r < RR; ++r)
            for (std::size_t k = 0; k < NT; ++k) {
                acc[r][k].store_aligned(lanes);  // (xsimd::hadd draws a false g++ 12 warning)
                T sum = 0;
                for (std::size_t l = 0; l < Wd; ++l) sum += lanes[l];
                T& d = dw[(o0 + r) * taps + t0 + k];
                d = accumulate ? d + sum : sum;
            }
    };
    auto row = [&]<std::size_t RR>(std::size_t o0) {
        std::size_t t = 0;
        for (; t + TT <= taps; t += TT) block.template operator()<RR, TT>(o0, t);
        for (; t < taps; ++t) block.template operator()<RR, 1>(o0, t);
    };
    std::size_t o = 0;
    for (; o + R <= O; o += R) row.template operator()<R>(o);
    for (; o < O; ++o) row.template operator()<1>(o);
}

}  // namespace xgrad::detail
