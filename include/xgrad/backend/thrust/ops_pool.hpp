#pragma once
// max_pool2d, avg_pool2d and adaptive_avg_pool2d on the Thrust devices (ops/pool.hpp has the
// semantics). Forward: one position per output element. Backward: one position per INPUT
// element, gathering the windows that contain it (found from the window formulas), so no two
// positions write one element: no atomics, and each gradient is summed in the CPU's order.
#include "../../ops/pool.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

/// pool_geometry without its shape: what a kernel needs, trivially copyable.
struct pool_dims {
    std::size_t H, W, OH, OW, kh, kw, sh, sw, ph, pw;
};
inline pool_dims dims_of(const pool_geometry& g) { return {g.H, g.W, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw}; }

/// Output indices [lo, hi) (of n) whose window of size k, stride s, padding pad covers input h.
XGRAD_HD inline void windows_covering(std::size_t h, std::size_t pad, std::size_t k, std::size_t s,
                                               std::size_t n, std::size_t& lo, std::size_t& hi) {
    lo = h + pad >= k ? (h + pad - k) / s + 1 : 0;
    hi = (h + pad) / s + 1;
    if (hi > n) hi = n;
}

/// Output element o -> plane, row, column.
XGRAD_HD inline void split_index(std::size_t o, std::size_t rows, std::size_t cols, std::size_t& p,
                                          std::size_t& i, std::size_t& j) {
    const std::size_t plane = rows * cols;
    p = o / plane;
    const std::size_t r = o - p * plane;
    i = r / cols;
    j = r - i * cols;
}

template <class T>
struct max_pool_forward {
    const T* x;
    T* y;
    pool_dims d;
    XGRAD_HD void operator()(std::ptrdiff_t o) const {
        std::size_t p, i, j, r0, r1, c0, c1;
        split_index(static_cast<std::size_t>(o), d.OH, d.OW, p, i, j);
        pool_geometry::clip(i * d.sh, d.ph, d.kh, d.H, r0, r1);
        pool_geometry::clip(j * d.sw, d.pw, d.kw, d.W, c0, c1);
        const T* xp = x + p * d.H * d.W;
        y[o] = xp[window_argmax(xp, d.W, r0, r1, c0, c1)];
    }
};

/// dx[h, w] = sum of g over the windows whose first maximum is (h, w).
template <class T>
struct max_pool_backward {
    const T* x;
    const T* g;
    T* dx;
    pool_dims d;
    XGRAD_HD void operator()(std::ptrdiff_t q) const {
        std::size_t p, h, w, i0, i1, j0, j1;
        split_index(static_cast<std::size_t>(q), d.H, d.W, p, h, w);
        windows_covering(h, d.ph, d.kh, d.sh, d.OH, i0, i1);
        windows_covering(w, d.pw, d.kw, d.sw, d.OW, j0, j1);
        const T* xp = x + p * d.H * d.W;
        const T* gp = g + p * d.OH * d.OW;
        const std::size_t self = h * d.W + w;
        T acc = 0;
        for (std::size_t i = i0; i < i1; ++i)
            for (std::size_t j = j0; j < j1; ++j) {
                std::size_t r0, r1, c0, c1;
                pool_geometry::clip(i * d.sh, d.ph, d.kh, d.H, r0, r1);
                pool_geometry::clip(j * d.sw, d.pw, d.kw, d.W, c0, c1);
                if (window_argmax(xp, d.W, r0, r1, c0, c1) == self) acc += gp[i * d.OW + j];
            }
        dx[q] = acc;
    }
};

/// 1 / the divisor of window (i, j) of avg_pool2d, and the window.
template <class T>
XGRAD_HD inline T avg_window(const pool_dims& d, bool include_pad, std::size_t i, std::size_t j,
                                      std::size_t& r0, std::size_t& r1, std::size_t& c0, std::size_t& c1) {
    pool_geometry::clip(i * d.sh, d.ph, d.kh, d.H, r0, r1);
    pool_geometry::clip(j * d.sw, d.pw, d.kw, d.W, c0, c1);
    const std::size_t n = include_pad ? d.kh * d.kw : (r1 - r0) * (c1 - c0);
    return T(1) / static_cast<T>(n);
}

template <class T>
struct avg_pool_forward {
    const T* x;
    T* y;
    pool_dims d;
    bool include_pad;
    XGRAD_HD void operator()(std::ptrdiff_t o) const {
        std::size_t p, i, j, r0, r1, c0, c1;
        split_index(static_cast<std::size_t>(o), d.OH, d.OW, p, i, j);
        const T inv = avg_window<T>(d, include_pad, i, j, r0, r1, c0, c1);
        const T* xp = x + p * d.H * d.W;
        T s = 0;
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t c = c0; c < c1; ++c) s += xp[r * d.W + c];
        y[o] = s * inv;
    }
};

template <class T>
struct avg_pool_backward {
    const T* g;
    T* dx;
    pool_dims d;
    bool include_pad;
    XGRAD_HD void operator()(std::ptrdiff_t q) const {
        std::size_t p, h, w, i0, i1, j0, j1;
        split_index(static_cast<std::size_t>(q), d.H, d.W, p, h, w);
        windows_covering(h, d.ph, d.kh, d.sh, d.OH, i0, i1);
        windows_covering(w, d.pw, d.kw, d.sw, d.OW, j0, j1);
        const T* gp = g + p * d.OH * d.OW;
        T acc = 0;
        for (std::size_t i = i0; i < i1; ++i)
            for (std::size_t j = j0; j < j1; ++j) {
                std::size_t r0, r1, c0, c1;
                acc += gp[i * d.OW + j] * avg_window<T>(d, include_pad, i, j, r0, r1, c0, c1);
            }
        dx[q] = acc;
    }
};

template <class T>
struct adaptive_pool_forward {
    const T* x;
    T* y;
    std::size_t H, W, OH, OW;
    XGRAD_HD void operator()(std::ptrdiff_t o) const {
        using A = adaptive_avg_pool2d_op<T>;
        std::size_t p, i, j;
        split_index(static_cast<std::size_t>(o), OH, OW, p, i, j);
        const std::size_t r0 = A::start(i, OH, H), r1 = A::end(i, OH, H);
        const std::size_t c0 = A::start(j, OW, W), c1 = A::end(j, OW, W);
        const T* xp = x + p * H * W;
        T s = 0;
        for (std::size_t r = r0; r < r1; ++r)
            for (std::size_t c = c0; c < c1; ++c) s += xp[r * W + c];
        y[o] = s * (T(1) / static_cast<T>((r1 - r0) * (c1 - c0)));
    }
};

/// Window i of n over an extent `in` is the first to cover h when i = floor(h n / in); the
/// following ones cover it while they start at or before h.
template <class T>
struct adaptive_pool_backward {
    const T* g;
    T* dx;
    std::size_t H, W, OH, OW;
    XGRAD_HD void operator()(std::ptrdiff_t q) const {
        using A = adaptive_avg_pool2d_op<T>;
        std::size_t p, h, w;
        split_index(static_cast<std::size_t>(q), H, W, p, h, w);
        const T* gp = g + p * OH * OW;
        T acc = 0;
        for (std::size_t i = h * OH / H; i < OH && A::start(i, OH, H) <= h; ++i)
            for (std::size_t j = w * OW / W; j < OW && A::start(j, OW, W) <= w; ++j) {
                const std::size_t r0 = A::start(i, OH, H), r1 = A::end(i, OH, H);
                const std::size_t c0 = A::start(j, OW, W), c1 = A::end(j, OW, W);
                acc += gp[i * OW + j] * (T(1) / static_cast<T>((r1 - r0) * (c1 - c0)));
            }
        dx[q] = acc;
    }
};

}  // namespace thrust_backend

template <class T, thrust_device D>
struct device_kernels<max_pool2d_op<T>, D> {
    static constexpr bool available = true;
    using op = max_pool2d_op<T>;
    static tensor<T, D> forward(const op& o, const tensor<T, D>& x) {
        const pool_geometry g(x.shape(), o.kernel, o.stride, o.padding, op::name);
        auto y = tensor<T, D>::uninitialized(g.out);
        thrust_backend::for_each_index<D>(y.size(), thrust_backend::max_pool_forward<T>{x.data(), y.data(), thrust_backend::dims_of(g)});
        return y;
    }
    static void backward(const op& o, const tensor<T, D>& grad, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                         std::array<tensor<T, D>*, 1> gi) {
        if (!gi[0]) return;
        const pool_geometry g(in[0].shape(), o.kernel, o.stride, o.padding, op::name);
        thrust_backend::for_each_index<D>(
            in[0].size(), thrust_backend::max_pool_backward<T>{in[0].data(), grad.data(), gi[0]->data(), thrust_backend::dims_of(g)});
    }
};

template <class T, thrust_device D>
struct device_kernels<avg_pool2d_op<T>, D> {
    static constexpr bool available = true;
    using op = avg_pool2d_op<T>;
    static tensor<T, D> forward(const op& o, const tensor<T, D>& x) {
        const pool_geometry g(x.shape(), o.kernel, o.stride, o.padding, op::name);
        auto y = tensor<T, D>::uninitialized(g.out);
        thrust_backend::for_each_index<D>(
            y.size(), thrust_backend::avg_pool_forward<T>{x.data(), y.data(), thrust_backend::dims_of(g), o.count_include_pad});
        return y;
    }
    static void backward(const op& o, const tensor<T, D>& grad, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                         std::array<tensor<T, D>*, 1> gi) {
        if (!gi[0]) return;
        const pool_geometry g(in[0].shape(), o.kernel, o.stride, o.padding, op::name);
        thrust_backend::for_each_index<D>(
            in[0].size(),
            thrust_backend::avg_pool_backward<T>{grad.data(), gi[0]->data(), thrust_backend::dims_of(g), o.count_include_pad});
    }
};

template <class T, thrust_device D>
struct device_kernels<adaptive_avg_pool2d_op<T>, D> {
    static constexpr bool available = true;
    using op = adaptive_avg_pool2d_op<T>;
    static tensor<T, D> forward(const op& o, const tensor<T, D>& x) {
        const shape_t s = o.output_shape(x.shape());
        auto y = tensor<T, D>::uninitialized(s);
        const std::size_t r = s.size();
        thrust_backend::for_each_index<D>(
            y.size(), thrust_backend::adaptive_pool_forward<T>{x.data(), y.data(), x.shape()[r - 2], x.shape()[r - 1], s[r - 2], s[r - 1]});
        return y;
    }
    static void backward(const op&, const tensor<T, D>& grad, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                         std::array<tensor<T, D>*, 1> gi) {
        if (!gi[0]) return;
        const shape_t& xs = in[0].shape();
        const std::size_t r = xs.size();
        thrust_backend::for_each_index<D>(
            in[0].size(), thrust_backend::adaptive_pool_backward<T>{grad.data(), gi[0]->data(), xs[r - 2], xs[r - 1],
                                                                    grad.shape()[r - 2], grad.shape()[r - 1]});
    }
};

}  // namespace xgrad::detail
