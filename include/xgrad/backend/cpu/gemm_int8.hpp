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

/// B {N, K} int8 repacked for the kernel: K padded to a multiple of 4, N to a multiple of 64,
/// stored as [N / 16][K / 4][16][4] (one 64-byte row per 4 k and 16 columns: what one vpdpbusd
/// reads), plus the row sums of B (for the zero-point correction).
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
        np = (N + 63) / 64 * 64;
        data.assign(np * kp, 0);
        row_sum.assign(N, 0);
        for (std::size_t j = 0; j < N; ++j)
            for (std::size_t q = 0; q < K; ++q) {
                const std::int8_t v = b[j * K + q];
                data[((j / 16) * (kp / 4) + q / 4) * 64 + (j % 16) * 4 + q % 4] = v;
                row_sum[j] += v;
            }
    }
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

/// Rows [m0, m0 + mr) of A (lda = w.kp, zero-padded) against column block [j0, j0 + 64).
/// The portable kernel: the same packed layout, plain int32 arithmetic.
inline void int8_kernel_portable(const std::uint8_t* a, std::size_t m0, std::size_t mr, std::size_t j0,
                                 const packed_int8_weights& w, const int8_epilogue& e) {
    std::int32_t acc[64];
    for (std::size_t i = 0; i < mr; ++i) {
        std::fill(acc, acc + 64, 0);
        const std::uint8_t* ar = a + (m0 + i) * w.kp;
        for (std::size_t blk = 0; blk < 4; ++blk) {
            const std::int8_t* bp = w.data.data() + ((j0 / 16 + blk) * (w.kp / 4)) * 64;
            std::int32_t* ac = acc + blk * 16;
            for (std::size_t q4 = 0; q4 < w.kp / 4; ++q4, bp += 64)
                for (std::size_t l = 0; l < 16; ++l) {
                    std::int32_t s = 0;
                    for (std::size_t t = 0; t < 4; ++t)
                        s += static_cast<std::int32_t>(ar[q4 * 4 + t]) * static_cast<std::int32_t>(bp[l * 4 + t]);
                    ac[l] += s;
                }
        }
        for (std::size_t l = 0; l < 64 && j0 + l < w.n; ++l) int8_store(e, w, m0 + i, j0 + l, acc[l]);
    }
}

#if XGRAD_INT8_VNNI
/// MR rows x 16 NB columns with vpdpbusd: MR * NB zmm accumulators; each k-step of 4 loads NB
/// 64-byte B rows and broadcasts 4 A bytes per row. (NB < 4 only for a last block whose
/// columns end early: no work on the padding.)
template <std::size_t MR, std::size_t NB>
void int8_kernel_vnni(const std::uint8_t* a, std::size_t m0, std::size_t j0, const packed_int8_weights& w,
                      const int8_epilogue& e) {
    __m512i acc[MR][NB];
    for (std::size_t i = 0; i < MR; ++i)
        for (std::size_t b = 0; b < NB; ++b) acc[i][b] = _mm512_setzero_si512();
    const std::size_t k4 = w.kp / 4;
    const std::int8_t* bp[NB];
    for (std::size_t b = 0; b < NB; ++b) bp[b] = w.data.data() + ((j0 / 16 + b) * k4) * 64;
    const std::uint8_t* ar = a + m0 * w.kp;
    for (std::size_t q = 0; q < k4; ++q) {
        __m512i bv[NB];
        for (std::size_t b = 0; b < NB; ++b) bv[b] = _mm512_loadu_si512(bp[b] + q * 64);
        for (std::size_t i = 0; i < MR; ++i) {
            std::int32_t a4;
            std::memcpy(&a4, ar + i * w.kp + q * 4, 4);
            const __m512i av = _mm512_set1_epi32(a4);
            for (std::size_t b = 0; b < NB; ++b) acc[i][b] = _mm512_dpbusd_epi32(acc[i][b], av, bv[b]);
        }
    }
    for (std::size_t b = 0; b < NB; ++b) {
        const std::size_t j = j0 + b * 16;
        if (j >= w.n) break;
        const __mmask16 mask = w.n - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (w.n - j)) - 1);
        if (e.c32) {
            for (std::size_t i = 0; i < MR; ++i) _mm512_mask_storeu_epi32(e.c32 + (m0 + i) * w.n + j, mask, acc[i][b]);
            continue;
        }
        const __m512i rs = _mm512_maskz_loadu_epi32(mask, w.row_sum.data() + j);
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(e.a_scale), _mm512_maskz_loadu_ps(mask, e.w_scale + j));
        const __m512i corr = _mm512_mullo_epi32(rs, _mm512_set1_epi32(e.a_zero_point));
        const __m512 bias = e.bias ? _mm512_maskz_loadu_ps(mask, e.bias + j) : _mm512_setzero_ps();
        for (std::size_t i = 0; i < MR; ++i) {
            __m512 y = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][b], corr)), bias);
            if (e.relu) y = _mm512_max_ps(y, _mm512_setzero_ps());
            _mm512_mask_storeu_ps(e.c + (m0 + i) * w.n + j, mask, y);
        }
    }
}

template <std::size_t MR, std::size_t NB>
void int8_rows_vnni(const std::uint8_t* a, std::size_t m, std::size_t r1, std::size_t j0, const packed_int8_weights& w,
                    const int8_epilogue& e) {
    for (; m + MR <= r1; m += MR) int8_kernel_vnni<MR, NB>(a, m, j0, w, e);
    for (; m < r1; ++m) int8_kernel_vnni<1, NB>(a, m, j0, w, e);
}
#endif

/// Rows [r0, r1) x column blocks [c0, c1) (blocks of 64 columns).
inline void int8_gemm_block(const std::uint8_t* a, std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1,
                            const packed_int8_weights& w, const int8_epilogue& e) {
#if XGRAD_INT8_VNNI
    constexpr std::size_t MR = 4;
#endif
    for (std::size_t cb = c0; cb < c1; ++cb) {
        const std::size_t j0 = cb * 64;
        std::size_t m = r0;
#if XGRAD_INT8_VNNI
        switch (std::min<std::size_t>(4, (w.n - j0 + 15) / 16)) {
            case 1: int8_rows_vnni<MR, 1>(a, m, r1, j0, w, e); break;
            case 2: int8_rows_vnni<MR, 2>(a, m, r1, j0, w, e); break;
            case 3: int8_rows_vnni<MR, 3>(a, m, r1, j0, w, e); break;
            default: int8_rows_vnni<MR, 4>(a, m, r1, j0, w, e); break;
        }
#else
        int8_kernel_portable(a, m, r1 - m, j0, w, e);
#endif
    }
}

}  // namespace detail

/// C = A B^T through `e` (see above): A {M, w.kp} uint8, rows zero-padded from w.k to w.kp.
/// Runs on xgrad::num_threads() threads, split over rows or column blocks.
inline void int8_gemm(const std::uint8_t* a, std::size_t M, const packed_int8_weights& w, const int8_epilogue& e,
                      std::size_t threads = num_threads()) {
    const std::size_t blocks = w.np / 64;
    const double work = 2.0 * static_cast<double>(M) * static_cast<double>(w.n) * static_cast<double>(w.k);
    if (work < 4e6) threads = 1;
    const bool by_rows = M / 4 >= blocks;
    const std::size_t units = by_rows ? (M + 3) / 4 : blocks;
    threads = std::max<std::size_t>(1, std::min(threads, units));
    if (threads == 1) {
        detail::int8_gemm_block(a, 0, M, 0, blocks, w, e);
        return;
    }
    const std::size_t per = (units + threads - 1) / threads;
    xgrad::detail::parallel_run(threads, [&](std::size_t t) {
        const std::size_t lo = std::min(units, t * per), hi = std::min(units, (t + 1) * per);
        if (by_rows)
            detail::int8_gemm_block(a, std::min(M, lo * 4), std::min(M, hi * 4), 0, blocks, w, e);
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
