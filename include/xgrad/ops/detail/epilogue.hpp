#pragma once
// Pieces shared by the dense ops (matmul, linear, conv2d): the bias + activation epilogue
// applied to finished blocks of a GEMM's output, its backward, and gradient reduction to a
// broadcast operand's shape.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "../../backend/cpu/engine.hpp"
#include "../../backend/cpu/thread_pool.hpp"
#include "../../core/config.hpp"
#include "../../core/shape.hpp"
#include "../../core/tensor.hpp"
#include "../../detail/vmath.hpp"
#include "../../expr/node.hpp"
#include "../activation.hpp"

namespace xgrad::detail {

/// Where the bias element for output (row r, column j) lives when the output is viewed as
/// rows x cols (cols = product of its last `col_dims` extents): bias[rowoff[r] + j * col_step],
/// col_step 0 (one bias value per row, e.g. conv channels) or 1 (a bias row, e.g. linear).
struct bias_layout {
    std::vector<std::ptrdiff_t> rowoff;
    std::ptrdiff_t col_step = 0;
};

/// Builds the layout of a contiguous bias of shape `bias` broadcast to `out` (which it must not
/// enlarge). `op` names the caller in errors.
XGRAD_OUTLINE bias_layout make_bias_layout(const shape_t& bias, const shape_t& out, std::size_t col_dims, const char* op) {
    if (broadcast_shapes(out, bias, op) != out)
        throw shape_error(std::string(op) + ": bias of shape " + to_string(bias) + " would enlarge the output shape " +
                          to_string(out));
    const strides_t st = broadcast_strides(bias, contiguous_strides(bias), out);
    const std::size_t r = out.size(), row_dims = r - std::min(col_dims, r);
    bias_layout L;
    // within a row the bias is either constant or a contiguous run of the row's length
    bool zero = true, contiguous = true;
    std::ptrdiff_t expect = 1;
    for (std::size_t d = r; d-- > row_dims;) {
        if (out[d] == 1) continue;
        zero = zero && st[d] == 0;
        contiguous = contiguous && st[d] == expect;
        expect *= static_cast<std::ptrdiff_t>(out[d]);
    }
    if (!zero && !contiguous)
        throw shape_error(std::string(op) + ": bias of shape " + to_string(bias) +
                          " must be constant or contiguous along each output row of shape " + to_string(out));
    L.col_step = zero ? 0 : 1;
    const shape_t rows(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(row_dims));
    const strides_t rst(st.begin(), st.begin() + static_cast<std::ptrdiff_t>(row_dims));
    L.rowoff.reserve(numel(rows));
    for_each_offset(rows, rst, [&](std::ptrdiff_t o) { L.rowoff.push_back(o); });
    return L;
}
XGRAD_INSTANCE(bias_layout make_bias_layout(const shape_t& bias, const shape_t& out, std::size_t col_dims, const char* op))

/// y = act(y + bias) over a block of a row-major output (the GEMM's C); with gelu, the
/// pre-activation z is also written to `pre` (same layout as y).
template <class T, class Act>
struct bias_act_epilogue {
    T* y = nullptr;
    std::size_t ld = 0;
    const T* bias = nullptr;              // null: no bias
    const std::ptrdiff_t* rowoff = nullptr;
    std::ptrdiff_t col_step = 0;
    T* pre = nullptr;                     // gelu only

    void operator()(std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) const {
        using B = simd_t<T>;
        constexpr std::size_t W = B::size;
        for (std::size_t i = i0; i < i1; ++i) {
            T* row = y + i * ld;
            T* prow = pre ? pre + i * ld : nullptr;
            const T* brow = bias ? bias + rowoff[i] : nullptr;
            const B bconst(brow && col_step == 0 ? brow[0] : T(0));
            std::size_t j = j0;
            for (; j + W <= j1; j += W) {
                B z = B::load_unaligned(row + j);
                if (brow) z += col_step ? B::load_unaligned(brow + j) : bconst;
                if constexpr (Act::needs_pre) z.store_unaligned(prow + j);
                Act::f(z).store_unaligned(row + j);
            }
            for (; j < j1; ++j) {
                T z = row[j];
                if (brow) z += brow[col_step * static_cast<std::ptrdiff_t>(j)];
                if constexpr (Act::needs_pre) prow[j] = z;
                row[j] = Act::f(z);
            }
        }
    }
};

/// True when the epilogue does nothing (no bias, identity activation).
template <class Act>
inline constexpr bool trivial_activation = std::is_same_v<Act, activation::identity_t>;

/// Splits [0, n) into chunks over the pool when n is large enough to pay for it.
template <class F>
void parallel_chunks(std::size_t n, std::size_t grain, F&& f) {
    std::size_t nt = std::min(num_threads(), n / std::max<std::size_t>(grain, 1));
    if (nt <= 1) {
        if (n) f(std::size_t{0}, n);
        return;
    }
    const std::size_t per = (n + nt - 1) / nt;
    parallel_run(nt, [&](std::size_t t) {
        const std::size_t lo = std::min(n, t * per), hi = std::min(n, (t + 1) * per);
        if (lo < hi) f(lo, hi);
    });
}

/// dz = g * act'(z, y), elementwise over n contiguous values (z = pre, read by gelu only).
template <class T, class Act>
void activation_backward(const T* g, const T* y, const T* pre, T* dz, std::size_t n) {
    using B = simd_t<T>;
    constexpr std::size_t W = B::size;
    parallel_chunks(n, std::size_t{1} << 16, [&](std::size_t lo, std::size_t hi) {
        std::size_t i = lo;
        for (; i + W <= hi; i += W) {
            const B yv = B::load_unaligned(y + i);
            const B zv = Act::needs_pre ? B::load_unaligned(pre + i) : yv;
            (B::load_unaligned(g + i) * Act::df(zv, yv)).store_unaligned(dz + i);
        }
        for (; i < hi; ++i) dz[i] = g[i] * Act::df(Act::needs_pre ? pre[i] : y[i], y[i]);
    });
}

/// Backward of the epilogue over a rows x cols output in one pass: dz = g * act'(z, y) (not
/// written for the identity, where dz = g) and db = the bias gradient (sum of dz over the
/// outputs each bias element fed, laid out by L; skipped when db is null).
template <class T, class Act>
void epilogue_backward(const T* g, const T* y, const T* pre, T* dz, std::size_t rows, std::size_t cols,
                       const bias_layout& L, T* db, std::size_t nbias) {
    using B = simd_t<T>;
    constexpr std::size_t W = B::size;
    // split from 2^14 outputs (~8 us on one thread: act', the bias sums and a dz row each)
    const std::size_t nt = std::max<std::size_t>(1, std::min(num_threads(), rows * cols / (std::size_t{1} << 14)));
    std::vector<std::vector<T>> part(db ? nt : 0, std::vector<T>(nbias, T(0)));  // per-thread bias sums
    const std::size_t per = (rows + nt - 1) / nt;
    auto work = [&](std::size_t t) {
        const std::size_t r0 = std::min(rows, t * per), r1 = std::min(rows, (t + 1) * per);
        T* acc = db ? part[t].data() : nullptr;
        for (std::size_t r = r0; r < r1; ++r) {
            const T* gr = g + r * cols;
            const T* yr = y + r * cols;
            const T* zr = pre ? pre + r * cols : yr;
            T* dr = trivial_activation<Act> ? const_cast<T*>(gr) : dz + r * cols;
            T* brow = acc ? acc + L.rowoff[r] : nullptr;
            B rowsum(T(0));
            T tail = 0;
            std::size_t j = 0;
            for (; j + W <= cols; j += W) {
                B d = B::load_unaligned(gr + j);
                if constexpr (!trivial_activation<Act>) {
                    d *= Act::df(B::load_unaligned(zr + j), B::load_unaligned(yr + j));
                    d.store_unaligned(dr + j);
                }
                if (brow) {
                    if (L.col_step)
                        (B::load_unaligned(brow + j) + d).store_unaligned(brow + j);
                    else
                        rowsum += d;
                }
            }
            for (; j < cols; ++j) {
                T d = gr[j];
                if constexpr (!trivial_activation<Act>) {
                    d *= Act::df(zr[j], yr[j]);
                    dr[j] = d;
                }
                if (brow) {
                    if (L.col_step)
                        brow[j] += d;
                    else
                        tail += d;
                }
            }
            if (brow && !L.col_step) {
                alignas(alignment) T lanes[W];
                rowsum.store_aligned(lanes);
                for (std::size_t l = 0; l < W; ++l) tail += lanes[l];
                brow[0] += tail;
            }
        }
    };
    if (nt == 1)
        work(0);
    else
        parallel_run(nt, work);
    if (db) {
        std::fill(db, db + nbias, T(0));
        for (const auto& p : part)
            for (std::size_t i = 0; i < nbias; ++i) db[i] += p[i];
    }
}

/// Sums g over the dimensions where `target` broadcasts to g's shape: the gradient of a
/// broadcast operand of shape `target`.
template <class T>
tensor<T> sum_to_shape(const tensor<T>& g, const shape_t& target) {
    if (g.shape() == target) return g;
    shape_t keep(g.dim(), 1);
    const std::size_t off = g.dim() - target.size();
    for (std::size_t i = 0; i < target.size(); ++i) keep[off + i] = target[i];
    return cpu_reduce<plus_combine>(tensor_node<T>(g), keep).reshape(target);
}

/// The pre-activation buffer a gelu epilogue keeps for backward (shared by copies of an op).
/// On a device other than the CPU the op keeps it in that device's memory (on_device): an op
/// runs on one device, so the slot always holds a tensor<T, D> of the same D.
template <class T, class Act>
struct pre_store {
    std::shared_ptr<tensor<T>> z = Act::needs_pre ? std::make_shared<tensor<T>>() : nullptr;
    std::shared_ptr<std::shared_ptr<void>> zd = Act::needs_pre ? std::make_shared<std::shared_ptr<void>>() : nullptr;
    T* prepare(const shape_t& s) const {
        if constexpr (!Act::needs_pre) {
            return nullptr;
        } else {
            if (z->shape() != s) *z = tensor<T>::uninitialized(s);
            return z->data();
        }
    }
    const T* data() const { return z ? z->data() : nullptr; }

    /// The buffer on device D (gelu only, else null), shaped s when s is given.
    template <class D>
    tensor<T, D>* on_device(const shape_t* s = nullptr) const {
        if constexpr (!Act::needs_pre) {
            return nullptr;
        } else {
            if (!*zd) *zd = std::make_shared<tensor<T, D>>();
            auto* t = static_cast<tensor<T, D>*>(zd->get());
            if (s && t->shape() != *s) *t = tensor<T, D>::uninitialized(*s);
            return t;
        }
    }
};

}  // namespace xgrad::detail
