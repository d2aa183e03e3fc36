#pragma once
// Helpers shared by the functional ops (softmax, losses, norms, shape ops): the
// [outer, extent, inner] view of a tensor around one axis, SIMD row loops, and splitting
// independent rows across the thread pool.
#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "../../backend/cpu/loop.hpp"
#include "../../backend/cpu/thread_pool.hpp"
#include "../../core/config.hpp"
#include "../../core/shape.hpp"
#include "../../core/tensor.hpp"
#include "../../detail/vmath.hpp"

namespace xgrad::detail {

/// A contiguous tensor seen as [outer, extent, inner] around one axis: element (o, i, k) sits
/// at (o * extent + i) * inner + k.
struct axis_layout {
    std::size_t outer = 1, extent = 1, inner = 1;
};

inline axis_layout layout_along(const shape_t& s, std::size_t axis) {
    axis_layout l;
    for (std::size_t d = 0; d < axis; ++d) l.outer *= s[d];
    l.extent = s[axis];
    for (std::size_t d = axis + 1; d < s.size(); ++d) l.inner *= s[d];
    return l;
}

/// Copies the elements of a (possibly strided) view, in row-major order, to dst.
template <class T>
void copy_to(const tensor<T>& view, T* dst) {
    const T* p = view.data();
    if (view.is_contiguous()) {
        std::copy(p, p + view.size(), dst);
        return;
    }
    for_each_offset(view.shape(), view.strides(), [&](std::ptrdiff_t o) { *dst++ = p[o]; });
}

/// "3" for a 1-D position, "(1, 2)" for a multi-dimensional one.
XGRAD_OUTLINE std::string position_string(std::size_t flat, const shape_t& s) {
    if (s.size() == 1) return std::to_string(flat);
    std::vector<std::size_t> idx(s.size());
    for (std::size_t d = s.size(); d-- > 0;) {
        idx[d] = s[d] ? flat % s[d] : 0;
        flat = s[d] ? flat / s[d] : 0;
    }
    std::string r = "(";
    for (std::size_t d = 0; d < idx.size(); ++d) r += (d ? ", " : "") + std::to_string(idx[d]);
    return r + ")";
}
XGRAD_INSTANCE(std::string position_string(std::size_t flat, const shape_t& s))

// --- SIMD helpers: V is T or simd_t<T> ------------------------------------------------
template <class V, class T>
XGRAD_HD XGRAD_INLINE V load(const T* p) {
    if constexpr (is_batch_v<V>)
        return V::load_unaligned(p);
    else
        return *p;
}
template <class V, class T>
XGRAD_HD XGRAD_INLINE void store(V v, T* p) {
    if constexpr (is_batch_v<V>)
        v.store_unaligned(p);
    else
        *p = v;
}

/// Calls f.operator()<V>(j) for j in [0, n): full SIMD batches, then scalars.
template <class T, class F>
XGRAD_INLINE void simd_for(std::size_t n, F&& f) {
    using B = simd_t<T>;
    std::size_t j = 0;
    for (; j + B::size <= n; j += B::size) f.template operator()<B>(j);
    for (; j < n; ++j) f.template operator()<T>(j);
}
/// Sum over j in [0, n) of f.operator()<V>(j).
template <class T, class F>
XGRAD_INLINE T simd_sum(std::size_t n, F&& f) {
    using B = simd_t<T>;
    std::size_t j = 0;
    B acc(T(0));
    for (; j + B::size <= n; j += B::size) acc += f.template operator()<B>(j);
    T s = vm::hsum(acc);
    for (; j < n; ++j) s += f.template operator()<T>(j);
    return s;
}
/// Two sums in one pass: f.operator()<V>(j) returns a std::pair<V, V>.
template <class T, class F>
XGRAD_INLINE std::pair<T, T> simd_sum2(std::size_t n, F&& f) {
    using B = simd_t<T>;
    std::size_t j = 0;
    B a(T(0)), b(T(0));
    for (; j + B::size <= n; j += B::size) {
        const auto [x, y] = f.template operator()<B>(j);
        a += x;
        b += y;
    }
    std::pair<T, T> s{vm::hsum(a), vm::hsum(b)};
    for (; j < n; ++j) {
        const auto [x, y] = f.template operator()<T>(j);
        s.first += x;
        s.second += y;
    }
    return s;
}
/// Maximum over j in [0, n) of f.operator()<V>(j) (-inf when n == 0).
template <class T, class F>
XGRAD_INLINE T simd_max(std::size_t n, F&& f) {
    using B = simd_t<T>;
    std::size_t j = 0;
    B acc(-std::numeric_limits<T>::infinity());
    for (; j + B::size <= n; j += B::size) acc = vm::max(acc, f.template operator()<B>(j));
    T m = vm::hmax(acc);
    for (; j < n; ++j) m = vm::max(m, f.template operator()<T>(j));
    return m;
}

/// Runs f(begin, end) over [0, rows), split across the thread pool when the whole job
/// (rows * work_per_row elements) is large enough to pay for waking the workers.
template <class F>
void parallel_rows(std::size_t rows, std::size_t work_per_row, F&& f) {
    const std::size_t nt = std::min(num_threads(), rows);
    if (nt <= 1 || rows * work_per_row < parallel_grain) {
        f(std::size_t{0}, rows);
        return;
    }
    parallel_run(nt, [&](std::size_t tid) {
        const std::size_t chunk = (rows + nt - 1) / nt;
        const std::size_t b = std::min(rows, tid * chunk), e = std::min(rows, b + chunk);
        if (b < e) f(b, e);
    });
}

}  // namespace xgrad::detail
