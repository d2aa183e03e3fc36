#pragma once
// The lines a barrier op's per-line formula runs over (softmax's line, a class-loss sample,
// a layer_norm row). A formula is written once, as an XGRAD_HD template over a line type L
// that walks the line's n elements:
//
//   L::at(i)     offset of element i from the line's start
//   L::max(f)    max over the line of f.operator()<V>(i)   (f sees V-wide groups of elements)
//   L::sum(f)    sum of f.operator()<V>(i);  L::sum2(f): two sums of a std::pair<V, V>
//   L::each(f)   calls f.operator()<V>(i) for every element
//
// and the backends supply only the lines: the CPU runs a contiguous line on SIMD batches
// along it (horizontal reductions, then scalars for the tail), and strided lines V-wide across
// neighbouring lines; a device thread runs one line with V = T. Reductions return the line's
// scalar T (contiguous) or one value per lane (strided), so a formula writes V(m) either way.
#include <cstddef>
#include <limits>
#include <utility>

#include "layout.hpp"

namespace xgrad::detail {

/// The element type of V (V itself for a scalar).
template <class V>
struct lane_type {
    using type = V;
};
template <class T, class A>
struct lane_type<xsimd::batch<T, A>> {
    using type = T;
};
template <class V>
using lane_t = typename lane_type<V>::type;

/// n contiguous values, reduced with SIMD batches along the line (the CPU's driver).
template <class T>
struct contiguous_line {
    std::size_t n;
    XGRAD_INLINE std::size_t at(std::size_t i) const { return i; }
    template <class F>
    XGRAD_INLINE T max(F&& f) const {
        return simd_max<T>(n, f);
    }
    template <class F>
    XGRAD_INLINE T sum(F&& f) const {
        return simd_sum<T>(n, f);
    }
    template <class F>
    XGRAD_INLINE std::pair<T, T> sum2(F&& f) const {
        return simd_sum2<T>(n, f);
    }
    template <class F>
    XGRAD_INLINE void each(F&& f) const {
        simd_for<T>(n, f);
    }
};

/// n < W contiguous values read as one SIMD batch of W lanes (the CPU's short lines: 10
/// classes on 16 lanes), instead of n scalar steps. The line must sit in a buffer of at least
/// W values (each() writes all W lanes); lanes past n are left out of max and sums.
template <class T>
struct short_line {
    using B = simd_t<T>;
    static constexpr std::size_t W = B::size;
    std::size_t n;
    XGRAD_INLINE std::size_t at(std::size_t i) const { return i; }
    XGRAD_INLINE auto valid() const {
        alignas(alignment) T lane[W];
        for (std::size_t l = 0; l < W; ++l) lane[l] = T(l);
        return B::load_aligned(lane) < B(T(n));
    }
    template <class F>
    XGRAD_INLINE T max(F&& f) const {
        return vm::hmax(vm::select(valid(), B(f.template operator()<B>(0)), B(-std::numeric_limits<T>::infinity())));
    }
    template <class F>
    XGRAD_INLINE T sum(F&& f) const {
        return vm::hsum(vm::select(valid(), B(f.template operator()<B>(0)), B(T(0))));
    }
    template <class F>
    XGRAD_INLINE std::pair<T, T> sum2(F&& f) const {
        const auto [x, y] = f.template operator()<B>(0);
        const auto m = valid();
        return {vm::hsum(vm::select(m, B(x), B(T(0)))), vm::hsum(vm::select(m, B(y), B(T(0))))};
    }
    template <class F>
    XGRAD_INLINE void each(F&& f) const {
        f.template operator()<B>(0);
    }
};

/// n values with stride s, read V-wide: V = T is one line (a device thread), a SIMD batch is
/// V::size neighbouring lines at once (the CPU's lines along a non-last axis). Each lane sums
/// its line in order.
template <class V>
struct strided_lines {
    std::size_t n, s;
    XGRAD_HD XGRAD_INLINE std::size_t at(std::size_t i) const { return i * s; }
    template <class F>
    XGRAD_HD XGRAD_INLINE V max(F&& f) const {
        if (n == 0) return V(-std::numeric_limits<lane_t<V>>::infinity());
        V m = f.template operator()<V>(0);
        for (std::size_t i = 1; i < n; ++i) m = vm::max(m, f.template operator()<V>(i));
        return m;
    }
    template <class F>
    XGRAD_HD XGRAD_INLINE V sum(F&& f) const {
        V acc(0);
        for (std::size_t i = 0; i < n; ++i) acc += f.template operator()<V>(i);
        return acc;
    }
    template <class F>
    XGRAD_HD XGRAD_INLINE std::pair<V, V> sum2(F&& f) const {
        V a(0), b(0);
        for (std::size_t i = 0; i < n; ++i) {
            const auto [x, y] = f.template operator()<V>(i);
            a += x;
            b += y;
        }
        return {a, b};
    }
    template <class F>
    XGRAD_HD XGRAD_INLINE void each(F&& f) const {
        for (std::size_t i = 0; i < n; ++i) f.template operator()<V>(i);
    }
};

}  // namespace xgrad::detail
