#pragma once
// matmul, linear and conv2d (ops/matmul.hpp, ops/conv.hpp) on the Thrust devices: the same ops,
// shapes, errors and gradients as on the CPU, with the products done by the device GEMM
// (blas.hpp) and everything around them by Thrust kernels.
//
//   matmul / linear  batched GEMMs over the broadcast batch (one GEMM over all rows when b is
//                    shared by every batch); the bias and activation as one elementwise kernel
//                    over the output, which also broadcasts a bias that enlarges it.
//   conv2d           im2col for a chunk of samples at once, laid out {C KH KW, samples, OH OW},
//                    so that each group is one GEMM with every sample's output positions as
//                    its columns (one strided-batched call over the groups); one kernel then
//                    reorders the result to NCHW with the bias and activation. Backward:
//                    dW_g += G_g cols_g^T and dcols_g = W_g^T G_g per chunk (batched over the
//                    groups), and col2im as a gather (each input element sums the column
//                    entries that read it: no atomics).
// Activations are the epilogue tags of ops/activation.hpp, whose f and df are shared with the
// CPU kernels.
#include <algorithm>
#include <array>
#include <cstddef>

#include "../../ops/conv.hpp"
#include "../../ops/detail/device_kernels.hpp"
#include "../../ops/matmul.hpp"
#include "blas.hpp"
#include "engine.hpp"
#include "tensor.hpp"

namespace xgrad::detail {

namespace thrust_backend {

/// y[i] = act(z[iz(i)] + bias[ib(i)]) (no bias when null); with gelu pre[i] keeps the sum.
template <class T, class Act>
struct bias_act_kernel {
    const T* z;
    strided_index iz;
    const T* bias;
    strided_index ib;
    T* y;
    T* pre;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        T v = z[iz(i)];
        if (bias) v += bias[ib(i)];
        if constexpr (Act::needs_pre) pre[i] = v;
        y[i] = Act::f(v);
    }
};

/// dz[i] = g[i] act'(z, y): z from pre (gelu), y the op's output.
template <class T, class Act>
struct act_backward_kernel {
    const T* g;
    const T* y;
    const T* pre;
    T* dz;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const T yi = y[i];
        dz[i] = g[i] * Act::df(Act::needs_pre ? pre[i] : yi, yi);
    }
};

/// Sum of g over the axes where keep (of g's rank) is 1 and g's shape is not.
template <class T, class D>
tensor<T, D> reduce_sum(const tensor<T, D>& g, const shape_t& keep) {
    const std::size_t n = numel(keep);
    return device_engine<D>::template reduce<reductions::sum>(tensor_node<T, D>(g), keep, n ? g.size() / n : 0);
}

/// g summed to `target`, a shape that broadcasts to g's: the gradient of a broadcast operand.
template <class T, class D>
tensor<T, D> sum_to(const tensor<T, D>& g, const shape_t& target) {
    if (g.shape() == target) return g;
    if (target.size() > g.dim() || numel(target) == g.size()) return g.reshape(target);  // only 1s added or removed
    shape_t keep(g.dim(), 1);
    const std::size_t off = g.dim() - target.size();
    for (std::size_t i = 0; i < target.size(); ++i) keep[off + i] = target[i];
    return reduce_sum(g, keep).reshape(target);
}

/// The matrices of one operand of a strided-batched GEMM over the broadcast batch `batch`: its
/// own storage with stride 0 (one matrix for every batch) or one matrix per batch, else a copy
/// broadcast to every batch.
template <class T, class D>
struct batched_operand {
    tensor<T, D> hold;
    const T* ptr = nullptr;
    std::ptrdiff_t stride = 0;
};
template <class T, class D>
batched_operand<T, D> batch_view(const tensor<T, D>& t, const shape_t& own_batch, const shape_t& batch,
                                 std::size_t rows, std::size_t cols) {
    const auto mat = static_cast<std::ptrdiff_t>(rows * cols);
    if (numel(own_batch) == 1) return {t, t.data(), 0};
    if (numel(own_batch) == numel(batch)) return {t, t.data(), mat};
    shape_t own = own_batch, full = batch;
    own.insert(own.end(), {rows, cols});
    full.insert(full.end(), {rows, cols});
    auto e = tensor<T, D>::uninitialized(full);
    e.assign(t.reshape(own));
    return {e, e.data(), mat};
}

/// What the conv kernels need of conv_geometry, as integers a device functor carries; nc is
/// the number of samples in the chunk being processed.
struct conv_dims {
    std::ptrdiff_t C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, nc;
};
inline conv_dims conv_dims_of(const conv_geometry& g, std::size_t nc) {
    auto i = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
    return {i(g.C),  i(g.H),  i(g.W),  i(g.KH), i(g.KW), i(g.OH), i(g.OW),
            i(g.sh), i(g.sw), i(g.ph), i(g.pw), i(g.dh), i(g.dw), i(nc)};
}

/// cols[(c KH + p) KW + q, n, i, j] = x[n, c, i sh - ph + p dh, j sw - pw + q dw] (0 in the padding),
/// for the chunk's samples n < nc (x points at the first).
template <class T>
struct im2col_kernel {
    const T* x;
    T* cols;
    conv_dims d;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        std::ptrdiff_t t = i;
        const std::ptrdiff_t j = t % d.OW;
        t /= d.OW;
        const std::ptrdiff_t r = t % d.OH;
        t /= d.OH;
        const std::ptrdiff_t n = t % d.nc;
        t /= d.nc;
        const std::ptrdiff_t q = t % d.KW;
        t /= d.KW;
        const std::ptrdiff_t p = t % d.KH, c = t / d.KH;
        const std::ptrdiff_t h = r * d.sh - d.ph + p * d.dh, w = j * d.sw - d.pw + q * d.dw;
        cols[i] = h >= 0 && h < d.H && w >= 0 && w < d.W ? x[((n * d.C + c) * d.H + h) * d.W + w] : T(0);
    }
};

/// The adjoint of im2col as a gather: dx[n, c, h, w] = the sum of the column entries that read
/// x[n, c, h, w], i.e. those with i sh = h + ph - p dh and j sw = w + pw - q dw in range.
template <class T>
struct col2im_kernel {
    const T* dcols;
    T* dx;
    conv_dims d;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        std::ptrdiff_t t = i;
        const std::ptrdiff_t w = t % d.W;
        t /= d.W;
        const std::ptrdiff_t h = t % d.H;
        t /= d.H;
        const std::ptrdiff_t c = t % d.C, n = t / d.C;
        T acc = T(0);
        for (std::ptrdiff_t p = 0; p < d.KH; ++p) {
            const std::ptrdiff_t hs = h + d.ph - p * d.dh;
            if (hs < 0 || hs % d.sh != 0 || hs / d.sh >= d.OH) continue;
            const std::ptrdiff_t r = hs / d.sh;
            for (std::ptrdiff_t q = 0; q < d.KW; ++q) {
                const std::ptrdiff_t ws = w + d.pw - q * d.dw;
                if (ws < 0 || ws % d.sw != 0 || ws / d.sw >= d.OW) continue;
                acc += dcols[((((c * d.KH + p) * d.KW + q) * d.nc + n) * d.OH + r) * d.OW + ws / d.sw];
            }
        }
        dx[i] = acc;
    }
};

/// Elements of unrolled columns conv2d builds at once on a device: samples are processed in
/// chunks whose columns fit (at least one sample per chunk). Tests lower it to force chunks.
inline std::size_t& conv_cols_budget() {
    static std::size_t elements = std::size_t{1} << 25;
    return elements;
}

}  // namespace thrust_backend

// --- matmul, linear ---------------------------------------------------------------------------

template <class T, class Act, bool Bias, bool TransB, thrust_device D>
struct device_kernels<dense_op<T, Act, Bias, TransB>, D> {
    static constexpr bool available = true;
    using op_t = dense_op<T, Act, Bias, TransB>;
    using tensor_t = tensor<T, D>;
    static constexpr std::size_t arity = op_t::arity;

    /// The geometry, and the operands as matrices: a {batch_a..., M, K}, b {batch_b..., K, N}
    /// (a 1-D operand a row or a column).
    struct layout {
        matmul_geometry g;
        shape_t a2, b2, ba, bb;
        layout(const shape_t& sa, const shape_t& sb) : g(sa, sb, TransB, op_t::name) {
            a2 = sa.size() == 1 ? shape_t{1, sa[0]} : sa;
            b2 = sb.size() == 1 ? shape_t{sb[0], 1} : sb;
            ba.assign(a2.begin(), a2.end() - 2);
            bb.assign(b2.begin(), b2.end() - 2);
        }
    };

    /// z = a op(b), of the product's shape.
    static tensor_t product(const layout& L, const tensor_t& a, const tensor_t& b) {
        using namespace thrust_backend;
        const matmul_geometry& g = L.g;
        auto z = tensor_t::uninitialized(g.out);
        const std::size_t M = g.M, N = g.N, K = g.K, nb = g.batches();
        if (nb == 0) return z;
        if (!g.b_batched) {  // every batch shares b: one GEMM over all rows of a
            device_gemm<D, T>(op_t::name, false, TransB, nb * M, N, K, T(1), a.data(), K, b.data(), TransB ? K : N, T(0),
                              z.data(), N);
        } else {
            const auto A = batch_view(a, L.ba, g.batch, M, K);
            const auto B = batch_view(b, L.bb, g.batch, K, N);
            gemm_strided_batched<D, T>(op_t::name, false, false, M, N, K, T(1), A.ptr, K, A.stride, B.ptr, N, B.stride,
                                       T(0), z.data(), N, static_cast<std::ptrdiff_t>(M * N), nb);
        }
        return z;
    }

    template <class... Rest>
    static tensor_t forward(const op_t& op, const tensor_t& a, const tensor_t& b, const Rest&... rest) {
        using namespace thrust_backend;
        const layout L(a.shape(), b.shape());
        tensor_t z = product(L, a, b);
        if constexpr (!Bias && trivial_activation<Act>) {
            return z;
        } else {
            shape_t full = L.g.out;
            const T* bias = nullptr;
            strided_index ib{};
            if constexpr (Bias) {
                const tensor_t& bt = (rest, ...);
                full = broadcast_shapes(L.g.out, bt.shape(), op_t::name);
                bias = bt.data();
                ib = make_index(full, broadcast_strides(bt.shape(), contiguous_strides(bt.shape()), full));
            }
            // in place unless the bias enlarges the output
            tensor_t y = full == L.g.out ? z : tensor_t::uninitialized(full);
            tensor_t* pre = op.pre.template on_device<D>(&full);
            const auto iz = make_index(full, broadcast_strides(L.g.out, contiguous_strides(L.g.out), full));
            for_each_index<D>(y.size(), bias_act_kernel<T, Act>{z.data(), iz, bias, ib, y.data(), pre ? pre->data() : nullptr});
            return y;
        }
    }

    static void backward(const op_t& op, const tensor_t& grad, const tensor_t& out, const std::array<tensor_t, arity>& in,
                         std::array<tensor_t*, arity> gi) {
        using namespace thrust_backend;
        const tensor_t& a = in[0];
        const tensor_t& b = in[1];
        const layout L(a.shape(), b.shape());
        const matmul_geometry& g = L.g;
        tensor_t dz = grad;  // gradient w.r.t. a op(b) + bias
        if constexpr (!trivial_activation<Act>) {
            dz = tensor_t::uninitialized(grad.shape());
            const tensor_t* pre = op.pre.template on_device<D>();
            for_each_index<D>(dz.size(),
                              act_backward_kernel<T, Act>{grad.data(), out.data(), pre ? pre->data() : nullptr, dz.data()});
        }
        if constexpr (Bias) {
            if (gi[2]) *gi[2] = sum_to(dz, in[2].shape());
        }
        dz = sum_to(dz, g.out);  // the bias may have enlarged the output
        const std::size_t M = g.M, N = g.N, K = g.K, nb = g.batches();
        if (g.empty_batch_backward(gi)) return;
        const T* G = dz.data();
        const auto mn = static_cast<std::ptrdiff_t>(M * N);
        if (!g.b_batched) {  // b shared by every row of a: one GEMM each
            if (gi[0])       // dA = G op(b)^T
                device_gemm<D, T>(op_t::name, false, !TransB, nb * M, K, N, T(1), G, N, b.data(), TransB ? K : N, T(0),
                                  gi[0]->data(), K);
            if (gi[1]) {
                if constexpr (TransB)  // dW = G^T a
                    device_gemm<D, T>(op_t::name, true, false, N, K, nb * M, T(1), G, N, a.data(), K, T(0), gi[1]->data(), K);
                else  // dB = a^T G
                    device_gemm<D, T>(op_t::name, true, false, K, N, nb * M, T(1), a.data(), K, G, N, T(0), gi[1]->data(), N);
            }
            return;
        }
        // b differs between batches (so it is not a linear weight): batched GEMMs; an operand
        // broadcast along the batch gets one gradient per batch first, then their sum
        if (gi[0]) {
            const auto B = batch_view(b, L.bb, g.batch, K, N);
            const bool own = numel(L.ba) == nb;
            shape_t s = g.batch;
            s.insert(s.end(), {M, K});
            tensor_t da = own ? *gi[0] : tensor_t::uninitialized(s);
            gemm_strided_batched<D, T>(op_t::name, false, true, M, K, N, T(1), G, N, mn, B.ptr, N, B.stride, T(0),
                                       da.data(), K, static_cast<std::ptrdiff_t>(M * K), nb);
            if (!own) *gi[0] = sum_to(da, L.a2).reshape(a.shape());
        }
        if (gi[1]) {
            const auto A = batch_view(a, L.ba, g.batch, M, K);
            const bool own = numel(L.bb) == nb;
            shape_t s = g.batch;
            s.insert(s.end(), {K, N});
            tensor_t db = own ? *gi[1] : tensor_t::uninitialized(s);
            gemm_strided_batched<D, T>(op_t::name, true, false, K, N, M, T(1), A.ptr, K, A.stride, G, N, mn, T(0),
                                       db.data(), N, static_cast<std::ptrdiff_t>(K * N), nb);
            if (!own) *gi[1] = sum_to(db, L.b2).reshape(b.shape());
        }
    }
};

// --- conv2d -----------------------------------------------------------------------------------

template <class T, class Act, bool Bias, thrust_device D>
struct device_kernels<conv2d_op<T, Act, Bias>, D> {
    static constexpr bool available = true;
    using op_t = conv2d_op<T, Act, Bias>;
    using tensor_t = tensor<T, D>;
    static constexpr std::size_t arity = op_t::arity;

    /// Samples per chunk.
    static std::size_t chunk(const conv_geometry& g) {
        const std::size_t per_sample = std::max<std::size_t>(1, g.C * g.KH * g.KW * g.ohw());
        return std::max<std::size_t>(1, std::min(g.N, thrust_backend::conv_cols_budget() / per_sample));
    }

    /// The columns {C KH KW, nc, OH OW} of samples [n0, n0 + nc): x itself for a pointwise
    /// convolution of one sample, else unrolled into buf.
    static const T* columns(const conv_geometry& g, const tensor_t& x, std::size_t n0, std::size_t nc, tensor_t& buf) {
        using namespace thrust_backend;
        const T* xs = x.data() + n0 * g.C * g.H * g.W;
        if (g.pointwise() && nc == 1) return xs;
        const std::size_t n = g.C * g.KH * g.KW * nc * g.ohw();
        if (buf.size() < n) buf = tensor_t::uninitialized({n});
        for_each_index<D>(n, im2col_kernel<T>{xs, buf.data(), conv_dims_of(g, nc)});
        return buf.data();
    }

    template <class... Rest>
    static tensor_t forward(const op_t& op, const tensor_t& x, const tensor_t& w, const Rest&... rest) {
        using namespace thrust_backend;
        const conv_geometry g(x.shape(), w.shape(), op.opt, op_t::name);
        const shape_t ys = g.out_shape();
        auto y = tensor_t::uninitialized(ys);
        const T* bias = nullptr;
        if constexpr (Bias) bias = (rest, ...).data();
        tensor_t* pre = op.pre.template on_device<D>(&ys);
        const std::size_t ckk = g.ckk(), ohw = g.ohw(), per = chunk(g);
        const auto sdi = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
        tensor_t cols, zbuf;
        for (std::size_t n0 = 0; n0 < g.N; n0 += per) {
            const std::size_t nc = std::min(per, g.N - n0), cn = nc * ohw;  // cn: GEMM columns
            const T* B = columns(g, x, n0, nc, cols);
            const std::size_t yoff = n0 * g.OC * ohw;
            T* Z = y.data() + yoff;  // one sample: the product is NCHW already
            if (nc > 1) {
                if (zbuf.size() < g.OC * cn) zbuf = tensor_t::uninitialized({g.OC * cn});
                Z = zbuf.data();
            }
            // per group: Z_g {OCg, nc OH OW} = W_g {OCg, Cg KH KW} cols_g {Cg KH KW, nc OH OW}
            gemm_strided_batched<D, T>(op_t::name, false, false, g.OCg, cn, ckk, T(1), w.data(), ckk, sdi(g.OCg * ckk), B,
                                       cn, sdi(ckk * cn), T(0), Z, cn, sdi(g.OCg * cn), g.G);
            if (nc > 1 || Bias || !trivial_activation<Act>) {
                // Z {OC, nc, OH OW} -> y {nc, OC, OH OW}, adding the bias, applying the activation
                const shape_t s{nc, g.OC, ohw};
                const auto iz = make_index(s, strides_t{sdi(ohw), sdi(cn), 1});
                const auto ib = make_index(s, strides_t{0, 1, 0});
                for_each_index<D>(nc * g.OC * ohw, bias_act_kernel<T, Act>{Z, iz, bias, ib, y.data() + yoff,
                                                                           pre ? pre->data() + yoff : nullptr});
            }
        }
        return y;
    }

    static void backward(const op_t& op, const tensor_t& grad, const tensor_t& out, const std::array<tensor_t, arity>& in,
                         std::array<tensor_t*, arity> gi) {
        using namespace thrust_backend;
        const tensor_t& x = in[0];
        const tensor_t& w = in[1];
        const conv_geometry g(x.shape(), w.shape(), op.opt, op_t::name);
        const std::size_t ckk = g.ckk(), ohw = g.ohw(), per = chunk(g);
        const auto sdi = [](std::size_t v) { return static_cast<std::ptrdiff_t>(v); };
        tensor_t dz = grad;  // gradient w.r.t. conv(x, w) + b
        if constexpr (!trivial_activation<Act>) {
            dz = tensor_t::uninitialized(grad.shape());
            const tensor_t* pre = op.pre.template on_device<D>();
            for_each_index<D>(dz.size(),
                              act_backward_kernel<T, Act>{grad.data(), out.data(), pre ? pre->data() : nullptr, dz.data()});
        }
        if constexpr (Bias) {  // db[o] = sum of dz over samples and positions
            if (gi[2]) *gi[2] = reduce_sum(dz.reshape(shape_t{g.N, g.OC, ohw}), shape_t{1, g.OC, 1}).reshape(shape_t{g.OC});
        }
        if (!gi[0] && !gi[1]) return;
        if (gi[1] && g.N == 0) gi[1]->fill(T(0));
        tensor_t cols, dcols, gbuf;
        for (std::size_t n0 = 0; n0 < g.N; n0 += per) {
            const std::size_t nc = std::min(per, g.N - n0), cn = nc * ohw;
            // the chunk's gradient as {OC, nc, OH OW}, the layout of the forward GEMM's output
            const T* Gc = dz.data() + n0 * g.OC * ohw;
            if (nc > 1) {
                gbuf = dz.slice(0, sdi(n0), sdi(n0 + nc)).reshape(shape_t{nc, g.OC, ohw}).permute({1, 0, 2}).contiguous();
                Gc = gbuf.data();
            }
            if (gi[1]) {  // dW_g (+)= G_g cols_g^T
                const T* B = columns(g, x, n0, nc, cols);
                gemm_strided_batched<D, T>(op_t::name, false, true, g.OCg, ckk, cn, T(1), Gc, cn, sdi(g.OCg * cn), B, cn,
                                           sdi(ckk * cn), n0 == 0 ? T(0) : T(1), gi[1]->data(), ckk, sdi(g.OCg * ckk), g.G);
            }
            if (gi[0]) {  // dcols_g = W_g^T G_g, then col2im (a pointwise sample's dcols is its dx)
                T* dx = gi[0]->data() + n0 * g.C * g.H * g.W;
                const bool direct = g.pointwise() && nc == 1;
                T* dc = dx;
                if (!direct) {
                    const std::size_t n = g.C * g.KH * g.KW * cn;
                    if (dcols.size() < n) dcols = tensor_t::uninitialized({n});
                    dc = dcols.data();
                }
                gemm_strided_batched<D, T>(op_t::name, true, false, ckk, cn, g.OCg, T(1), w.data(), ckk, sdi(g.OCg * ckk), Gc,
                                           cn, sdi(g.OCg * cn), T(0), dc, cn, sdi(ckk * cn), g.G);
                if (!direct) for_each_index<D>(nc * g.C * g.H * g.W, col2im_kernel<T>{dc, dx, conv_dims_of(g, nc)});
            }
        }
    }
};

}  // namespace xgrad::detail
