#pragma once
// One math vocabulary for scalars and SIMD batches, so each op's rule is written once
// and instantiated for float, double, xsimd::batch<float>, xsimd::batch<double>.
#include <cmath>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "../core/config.hpp"

namespace xgrad::detail {

template <class V>
struct is_batch : std::false_type {};
template <class T, class A>
struct is_batch<xsimd::batch<T, A>> : std::true_type {};
template <class V>
inline constexpr bool is_batch_v = is_batch<V>::value;

/// The SIMD batch xgrad's CPU loops use for element type T (best arch of the compile flags).
template <class T>
using simd_t = xsimd::batch<T>;

namespace vm {

// --- scalars -----------------------------------------------------------------
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T exp(T x) { return std::exp(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T log(T x) { return std::log(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T sqrt(T x) { return std::sqrt(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T tanh(T x) { return std::tanh(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T erf(T x) { return std::erf(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T abs(T x) { return std::fabs(x); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T pow(T x, T p) { return std::pow(x, p); }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T max(T a, T b) { return a > b ? a : b; }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T min(T a, T b) { return a < b ? a : b; }
template <class T>
    requires std::is_floating_point_v<T>
XGRAD_HD XGRAD_INLINE T select(bool c, T a, T b) { return c ? a : b; }

// --- SIMD batches ------------------------------------------------------------
/// f applied to each lane.
template <class T, class A, class F>
XGRAD_INLINE xsimd::batch<T, A> lanewise(const xsimd::batch<T, A>& x, F f) {
    alignas(alignment) T buf[xsimd::batch<T, A>::size];
    x.store_aligned(buf);
    for (auto& v : buf) v = f(v);
    return xsimd::batch<T, A>::load_aligned(buf);
}

// xsimd 8.1's log and pow do not compile without optimization on AVX-512BW targets (an int64
// select goes through 8-bit blend intrinsics), so unoptimized builds compute them per lane.
#if defined(__OPTIMIZE__)
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> log(const xsimd::batch<T, A>& x) { return xsimd::log(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> pow(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& p) { return xsimd::pow(x, p); }
#else
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> log(const xsimd::batch<T, A>& x) {
    return lanewise(x, [](T v) { return std::log(v); });
}
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> pow(const xsimd::batch<T, A>& x, const xsimd::batch<T, A>& p) {
    alignas(alignment) T pb[xsimd::batch<T, A>::size];
    p.store_aligned(pb);
    std::size_t i = 0;
    return lanewise(x, [&](T v) { return std::pow(v, pb[i++]); });
}
#endif

template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> exp(const xsimd::batch<T, A>& x) { return xsimd::exp(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> sqrt(const xsimd::batch<T, A>& x) { return xsimd::sqrt(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> tanh(const xsimd::batch<T, A>& x) { return xsimd::tanh(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> erf(const xsimd::batch<T, A>& x) { return xsimd::erf(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> abs(const xsimd::batch<T, A>& x) { return xsimd::abs(x); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> max(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) { return xsimd::max(a, b); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> min(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) { return xsimd::min(a, b); }
template <class T, class A>
XGRAD_INLINE xsimd::batch<T, A> select(const xsimd::batch_bool<T, A>& c, const xsimd::batch<T, A>& a,
                                      const xsimd::batch<T, A>& b) {
    return xsimd::select(c, a, b);
}

/// Sum of a batch's lanes (xsimd 8 calls it hadd, xsimd 9+ reduce_add).
template <class T, class A>
XGRAD_INLINE T hsum(const xsimd::batch<T, A>& x) { return xsimd::hadd(x); }
/// Largest lane of a batch: a tree of maxima in registers on AVX and AVX-512 (a class-loss
/// sample reduces one batch per sample; going through memory and 16 scalar steps took a
/// quarter of cross_entropy's forward), lane by lane elsewhere.
template <class T, class A>
XGRAD_INLINE T hmax(const xsimd::batch<T, A>& x) {
    constexpr std::size_t N = xsimd::batch<T, A>::size;
    constexpr bool f32 = std::is_same_v<T, float>, f64 = std::is_same_v<T, double>;
#if defined(__AVX512F__)
    if constexpr (f32 && N == 16) return _mm512_reduce_max_ps(x);
    if constexpr (f64 && N == 8) return _mm512_reduce_max_pd(x);
#endif
#if defined(__AVX__)
    if constexpr (f32 && N == 8) {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    }
    if constexpr (f64 && N == 4) {
        const __m128d m = _mm_max_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
        return _mm_cvtsd_f64(_mm_max_sd(m, _mm_unpackhi_pd(m, m)));
    }
#endif
    alignas(alignment) T buf[N];
    x.store_aligned(buf);
    T m = buf[0];
    for (std::size_t i = 1; i < N; ++i) m = buf[i] > m ? buf[i] : m;
    return m;
}

}  // namespace vm
}  // namespace xgrad::detail
