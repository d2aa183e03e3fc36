#pragma once
// The int8 GEMM of the quantized layers: C = A B^T with A {M, K} uint8 (activations) and B
// {N, K} int8 (weights, packed once), accumulated exactly in int32, then stored as int32 or
// dequantized to float in the same pass:
//
//   y[m, n] = a_scale * w_scale[n] * (C[m, n] - a_zero_point * sum_k B[n, k]) + bias[n]   (relu optional)
//
// Kernel choice (compile time): with AVX-512 VNNI (__AVX512VNNI__, e.g. -march=native on this
// machine) the micro-kernel uses vpdpbusd (_mm512_dpbusd_epi32): per 32-bit lane it multiplies
// four u8 by four s8 and adds the four products to the int32 accumulator. No intermediate is
// narrower than 32 bits, so no product sum saturates: the full uint8 range [0, 255] is usable.
// This is why xgrad does not need PyTorch's reduce_range (7-bit activations): fbgemm's AVX2
// kernels use vpmaddubsw, which adds two u8*s8 products into a *saturating int16*
// (255*127*2 = 64770 > 32767), so activations are limited to [0, 127] there. The non-saturating
// vpdpbusd (not vpdpbusds) is chosen because the int32 sum itself cannot overflow for
// K <= 66311 (K * 255 * 127 < 2^31, weights kept in [-127, 127]); packing checks that bound.
// Without VNNI a portable scalar kernel over the same packed layout computes the same integers.
//
// Blocking (VNNI): B is packed in panels of 64 columns; for each panel and each block of K
// (int8_gemm_kc4 steps of 4, so the panel's slice, 32 KiB, stays in L1) the rows of A pass in
// register tiles of 6 rows x 64 columns (24 zmm accumulators; per step 4 B loads and 6 A
// broadcasts feed 24 vpdpbusd). Between K blocks the int32 partial sums wait in the output
// itself; the epilogue runs once, after the last block.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512F__)
#include <immintrin.h>
#define XGRAD_INT8_VNNI 1
#else
#define XGRAD_INT8_VNNI 0
#endif

#include "../../core/error.hpp"
#include "thread_pool.hpp"


namespace xgrad::quant {

/// True when the int8 GEMM runs the AVX-512 VNNI kernel (else the portable one).
inline constexpr bool int8_gemm_uses_vnni() { return XGRAD_INT8_VNNI != 0; }

/// Largest K whose int32 sums cannot overflow: K * 255 * 127 < 2^31.
inline constexpr std::size_t int8_gemm_max_k = 66311;

/// Columns per packed panel of B: four zmm registers of 16 int32 lanes.
inline constexpr std::size_t int8_gemm_nr = 64;

/// B {N, K} int8 repacked once for the kernel: K padded to a multiple of 4, N to a multiple of
/// 64, stored as panels of 64 columns, [N / 64][K / 4][64][4]: per panel and 4 k one contiguous
/// 256-byte row, the four zmm operands of vpdpbusd for columns 0-15, 16-31, 32-47, 48-63. Also
/// the row sums of B, the zero-point compensation sum_k B[n, k] of the epilogue, computed here
/// once instead of per call.
struct packed_int8_weights {
    std::size_t n = 0, k = 0, kp = 0, np = 0;
    std::vector<std::int8_t> data;
    std::vector<std::int32_t> row_sum;

    packed_int8_weights() = default;
    packed_int8_weights(const std::int8_t* b, std::size_t N, std::size_t K) : n(N), k(K) {
        if (K > int8_gemm_max_k)
            throw value_error("int8 GEMM: K = " + std::to_string(K) + " exceeds " + std::to_string(int8_gemm_max_k) +
                              " (int32 accumulators could overflow)");
        kp = (K + 3) / 4 * 4;
        np = (N + int8_gemm_nr - 1) / int8_gemm_nr * int8_gemm_nr;
        data.assign(np * kp, 0);
        row_sum.assign(N, 0);
        for (std::size_t j = 0; j < N; ++j)
            for (std::size_t q = 0; q < K; ++q) {
                const std::int8_t v = b[j * K + q];
                data[((j / int8_gemm_nr) * (kp / 4) + q / 4) * (4 * int8_gemm_nr) + (j % int8_gemm_nr) * 4 + q % 4] = v;
                row_sum[j] += v;
            }
    }

    /// Start of the packed panel holding columns [j0, j0 + 64) (j0 a multiple of 64).
    const std::int8_t* panel(std::size_t j0) const { return data.data() + (j0 / int8_gemm_nr) * kp * int8_gemm_nr; }
};

/// How to store the accumulators: as int32 (c32) or dequantized to float (c).
struct int8_epilogue {
    std::int32_t* c32 = nullptr;  // int32 output {M, N} (ldc = N), or
    float* c = nullptr;           // float output {M, N} (ldc = N)
    float a_scale = 1;
    std::int32_t a_zero_point = 0;
    const float* w_scale = nullptr;  // {N}
    const float* bias = nullptr;     // {N} or null
    bool relu = false;
};

namespace detail {

inline void int8_store(const int8_epilogue& e, const packed_int8_weights& w, std::size_t m, std::size_t j,
                       std::int32_t acc) {
    if (e.c32) {
        e.c32[m * w.n + j] = acc;
        return;
    }
    float y = e.a_scale * e.w_scale[j] * static_cast<float>(acc - e.a_zero_point * w.row_sum[j]);
    if (e.bias) y += e.bias[j];
    if (e.relu) y = std::max(y, 0.0f);
    e.c[m * w.n + j] = y;
}

/// Rows [m0, m0 + mr) of A (lda = w.kp, zero-padded) against the panel of columns [j0, j0 + 64).
/// The portable kernel: the same packed layout, plain int32 arithmetic, all of K at once.
inline void int8_kernel_portable(const std::uint8_t* a, std::size_t m0, std::size_t mr, std::size_t j0,
                                 const packed_int8_weights& w, const int8_epilogue& e) {
    constexpr std::size_t nr = int8_gemm_nr;
    std::int32_t acc[nr];
    for (std::size_t i = 0; i < mr; ++i) {
        std::fill(acc, acc + nr, 0);
        const std::uint8_t* ar = a + (m0 + i) * w.kp;
        const std::int8_t* bp = w.panel(j0);
        for (std::size_t q4 = 0; q4 < w.kp / 4; ++q4, bp += 4 * nr)
            for (std::size_t l = 0; l < nr; ++l) {
                std::int32_t s = 0;
                for (std::size_t t = 0; t < 4; ++t)
                    s += static_cast<std::int32_t>(ar[q4 * 4 + t]) * static_cast<std::int32_t>(bp[l * 4 + t]);
                acc[l] += s;
            }
        for (std::size_t l = 0; l < nr && j0 + l < w.n; ++l) int8_store(e, w, m0 + i, j0 + l, acc[l]);
    }
}

#if XGRAD_INT8_VNNI
/// Rows per register tile: 6 rows x 4 zmm columns = 24 int32 accumulators, 4 B registers and a
/// broadcast register out of 32. Each k-step of 4 loads 4 B vectors (one 256-byte row, reused by
/// the 6 rows) and broadcasts 4 A bytes per row: 10 loads per 24 vpdpbusd.
inline constexpr std::size_t int8_gemm_mr = 6;
/// k-steps (of 4 k) per block: a panel's 256-byte rows times this stay in L1 (32 KiB of 48)
/// while every row tile of A passes over them.
inline constexpr std::size_t int8_gemm_kc4 = 128;

/// One tile: rows ar[0..rows) (ar[i] already at the block's first k; rows <= MR, the missing
/// ones repeat the last row and are not stored) x NB zmm columns of the panel at bp, over
/// `steps` k-steps. first: start from zero, else from the int32 partial sums in the output;
/// last: apply the epilogue, else store the partial sums (into c32, or into the float output's
/// bytes, which the last block overwrites with the result).
template <std::size_t NB>
void int8_tile_vnni(const std::uint8_t* const* ar, std::size_t rows, const std::int8_t* bp, std::size_t steps,
                    std::size_t m0, std::size_t j0, bool first, bool last, const packed_int8_weights& w,
                    const int8_epilogue& e) {
    constexpr std::size_t MR = int8_gemm_mr;
    __m512i acc[MR][NB];
    __mmask16 mask[NB];
    for (std::size_t b = 0; b < NB; ++b) {
        const std::size_t j = j0 + b * 16;
        mask[b] = j >= w.n ? __mmask16(0) : w.n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (w.n - j)) - 1);
    }
    char* out = e.c32 ? reinterpret_cast<char*>(e.c32) : reinterpret_cast<char*>(e.c);
    auto at = [&](std::size_t i, std::size_t b) { return out + ((m0 + i) * w.n + j0 + b * 16) * 4; };
#pragma GCC unroll 8
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (std::size_t b = 0; b < NB; ++b) acc[i][b] = _mm512_setzero_si512();
    const std::uint8_t* arow[MR];
#pragma GCC unroll 8
    for (std::size_t i = 0; i < MR; ++i) arow[i] = ar[i];
    for (std::size_t q = 0; q < steps; ++q, bp += 4 * int8_gemm_nr) {
        __m512i bv[NB];
#pragma GCC unroll 4
        for (std::size_t b = 0; b < NB; ++b) bv[b] = _mm512_loadu_si512(bp + b * 64);
#pragma GCC unroll 8
        for (std::size_t i = 0; i < MR; ++i) {
            std::int32_t a4;
            std::memcpy(&a4, arow[i] + q * 4, 4);
            const __m512i av = _mm512_set1_epi32(a4);
#pragma GCC unroll 4
            for (std::size_t b = 0; b < NB; ++b) acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], av, bv[b]);
        }
    }
    // constant trip counts throughout, so that acc stays in registers
#pragma GCC unroll 4
    for (std::size_t b = 0; b < NB; ++b) {
        if (!mask[b]) break;
        if (!first)
#pragma GCC unroll 8
            for (std::size_t i = 0; i < MR; ++i)
                if (i < rows) acc[i][b] = _mm512_add_epi32(acc[i][b], _mm512_maskz_loadu_epi32(mask[b], at(i, b)));
        if (!last || e.c32) {
#pragma GCC unroll 8
            for (std::size_t i = 0; i < MR; ++i)
                if (i < rows) _mm512_mask_storeu_epi32(at(i, b), mask[b], acc[i][b]);
            continue;
        }
        const std::size_t j = j0 + b * 16;
        const __m512i rs = _mm512_maskz_loadu_epi32(mask[b], w.row_sum.data() + j);
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(e.a_scale), _mm512_maskz_loadu_ps(mask[b], e.w_scale + j));
        const __m512i corr = _mm512_mullo_epi32(rs, _mm512_set1_epi32(e.a_zero_point));
        const __m512 bias = e.bias ? _mm512_maskz_loadu_ps(mask[b], e.bias + j) : _mm512_setzero_ps();
#pragma GCC unroll 8
        for (std::size_t i = 0; i < MR; ++i) {
            if (i >= rows) break;
            __m512 y = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][b], corr)), bias);
            if (e.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(at(i, b), mask[b], y);
        }
    }
}
#endif

/// Rows [r0, r1) x panels [p0, p1) (of 64 columns).
inline void int8_gemm_block(const std::uint8_t* a, std::size_t r0, std::size_t r1, std::size_t p0, std::size_t p1,
                            const packed_int8_weights& w, const int8_epilogue& e) {
#if XGRAD_INT8_VNNI
    constexpr std::size_t MR = int8_gemm_mr;
    const std::size_t k4 = w.kp / 4;
    const std::size_t nkb = std::max<std::size_t>(1, (k4 + int8_gemm_kc4 - 1) / int8_gemm_kc4);
    const std::size_t kc4 = (k4 + nkb - 1) / nkb;  // equal blocks, no short last one
    for (std::size_t p = p0; p < p1; ++p) {
        const std::size_t j0 = p * int8_gemm_nr;
        const std::size_t nb = std::min<std::size_t>(4, (w.n - j0 + 15) / 16);
        const std::int8_t* panel = w.panel(j0);
        for (std::size_t q0 = 0;;) {
            const std::size_t steps = std::min(kc4, k4 - q0);
            const bool first = q0 == 0, last = q0 + steps == k4;
            const std::int8_t* bp = panel + q0 * 4 * int8_gemm_nr;
            for (std::size_t m = r0; m < r1; m += MR) {
                const std::size_t rows = std::min(MR, r1 - m);
                const std::uint8_t* ar[MR];
                for (std::size_t i = 0; i < MR; ++i) ar[i] = a + (m + std::min(i, rows - 1)) * w.kp + q0 * 4;
                switch (nb) {
                    case 1: int8_tile_vnni<1>(ar, rows, bp, steps, m, j0, first, last, w, e); break;
                    case 2: int8_tile_vnni<2>(ar, rows, bp, steps, m, j0, first, last, w, e); break;
                    case 3: int8_tile_vnni<3>(ar, rows, bp, steps, m, j0, first, last, w, e); break;
                    default: int8_tile_vnni<4>(ar, rows, bp, steps, m, j0, first, last, w, e); break;
                }
            }
            if (last) break;
            q0 += steps;
        }
    }
#else
    for (std::size_t p = p0; p < p1; ++p) int8_kernel_portable(a, r0, r1 - r0, p * int8_gemm_nr, w, e);
#endif
}

}  // namespace detail

/// C = A B^T through `e` (see above): A {M, w.kp} uint8, rows zero-padded from w.k to w.kp.
/// Runs on xgrad::num_threads() threads, split over rows or column panels.
inline void int8_gemm(const std::uint8_t* a, std::size_t M, const packed_int8_weights& w, const int8_epilogue& e,
                      std::size_t threads = num_threads()) {
#if XGRAD_INT8_VNNI
    constexpr std::size_t rows_per_unit = detail::int8_gemm_mr;
#else
    constexpr std::size_t rows_per_unit = 4;
#endif
    const std::size_t panels = w.np / int8_gemm_nr;
    const double work = 2.0 * static_cast<double>(M) * static_cast<double>(w.n) * static_cast<double>(w.k);
    if (work < 4e6) threads = 1;
    const bool by_rows = M / rows_per_unit >= panels;
    const std::size_t units = by_rows ? (M + rows_per_unit - 1) / rows_per_unit : panels;
    threads = std::max<std::size_t>(1, std::min(threads, units));
    if (threads == 1) {
        detail::int8_gemm_block(a, 0, M, 0, panels, w, e);
        return;
    }
    const std::size_t per = (units + threads - 1) / threads;
    xgrad::detail::parallel_run(threads, [&](std::size_t t) {
        const std::size_t lo = std::min(units, t * per), hi = std::min(units, (t + 1) * per);
        if (by_rows)
            detail::int8_gemm_block(a, std::min(M, lo * rows_per_unit), std::min(M, hi * rows_per_unit), 0, panels, w, e);
        else
            detail::int8_gemm_block(a, 0, M, lo, hi, w, e);
    });
}

/// The plain triple loop, C {M, N} int32 = A {M, K} uint8 times B {N, K} int8 transposed: the
/// reference the tests compare int8_gemm with.
inline void int8_gemm_reference(const std::uint8_t* a, const std::int8_t* b, std::int32_t* c, std::size_t M,
                                std::size_t N, std::size_t K) {
    for (std::size_t m = 0; m < M; ++m)
        for (std::size_t n = 0; n < N; ++n) {
            std::int32_t s = 0;
            for (std::size_t q = 0; q < K; ++q)
                s += static_cast<std::int32_t>(a[m * K + q]) * static_cast<std::int32_t>(b[n * K + q]);
            c[m * N + n] = s;
        }
}

}  // namespace xgrad::quant
