#pragma once
// masked_softmax and multihead_attention (ops/attention.hpp) on the Thrust devices: only the
// drivers. The row formula is ops/attention.hpp's masked_softmax_line(_backward), run here one
// row per position (the CPU runs it on SIMD batches along the row).
//   masked_softmax: one launch forward, one backward.
//   multihead_attention: per batch item one strided-batched GEMM over the heads for S = Q K^T
//     (the heads read in place from the projections' columns, as on the CPU), one launch for
//     the masked softmax of every row of every head, one GEMM batch for P V written into the
//     merged heads. Backward: dV = P^T G, dP = G V^T, one launch for dS, dQ = dS K, dK = dS^T Q.
//     Dropout on the attention weights uses the CPU's mask (drawn on the host from the seed,
//     then copied), so a device matches the CPU with dropout too.
#include <cmath>
#include <cstdint>
#include <vector>

#include "../../core/rng.hpp"
#include "../../ops/attention.hpp"
#include "blas.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

/// Row r of the {rows, Sk} scores y, in place: query r % Sq of batch item r / per_batch.
template <class T>
struct masked_softmax_rows {
    T* y;
    std::size_t Sq, Sk, per_batch;
    const std::uint8_t* pad;  // {B, Sk} or null
    bool causal;
    T scale;
    XGRAD_HD void operator()(std::ptrdiff_t r) const {
        const std::size_t row = static_cast<std::size_t>(r), vis = visible_keys(causal, row % Sq, Sk);
        masked_softmax_line(strided_lines<T>{vis, 1}, y + row * Sk, Sk, pad ? pad + row / per_batch * Sk : nullptr, scale);
    }
};

template <class T>
struct masked_softmax_rows_backward {
    const T* g;
    const T* y;
    T* dx;  // may be g
    std::size_t Sk;
    T scale;
    XGRAD_HD void operator()(std::ptrdiff_t r) const {
        const std::size_t o = static_cast<std::size_t>(r) * Sk;
        masked_softmax_line_backward(strided_lines<T>{Sk, 1}, g + o, y + o, dx + o, scale);
    }
};

template <class T>
struct multiply_into {
    const T* a;
    const T* m;
    T* out;  // may be a
    XGRAD_HD void operator()(std::ptrdiff_t k) const { out[k] = a[k] * m[k]; }
};

/// The key padding flags {B, Sk} of mask on D (an empty tensor without them).
template <class D>
tensor<std::uint8_t, D> padding_on(const attention_mask& mask) {
    if (!mask.has_key_padding()) return {};
    auto h = tensor<std::uint8_t>::uninitialized(mask.key_padding_shape());
    const std::uint8_t* flags = mask.padding_row(0);
    for (std::size_t i = 0; i < h.size(); ++i) h.data()[i] = flags[i];
    return xgrad::to<D>(h);
}

}  // namespace thrust_backend

template <thrust_device D>
struct device_kernels<masked_softmax_impl, D> {
    static constexpr bool available = true;
    template <class T>
    static tensor<T, D> forward(const masked_softmax_impl& op, const tensor<T, D>& x) {
        const shape_t& s = x.shape();
        const std::size_t Sk = s.back(), Sq = s[s.size() - 2], rows = Sk ? x.size() / Sk : 0;
        const std::size_t per_batch = s.size() >= 3 && s[0] ? rows / s[0] : rows;
        auto y = x.clone();
        const auto pad = thrust_backend::padding_on<D>(op.mask);
        thrust_backend::for_each_index<D>(rows, thrust_backend::masked_softmax_rows<T>{
                                                    y.data(), Sq, Sk, per_batch, op.mask.has_key_padding() ? pad.data() : nullptr,
                                                    op.mask.causal(), T(op.scale)});
        return y;
    }
    template <class T>
    static void backward(const masked_softmax_impl& op, const tensor<T, D>& g, const tensor<T, D>& y,
                         const std::array<tensor<T, D>, 1>&, std::array<tensor<T, D>*, 1> dx) {
        if (!dx[0]) return;
        const std::size_t Sk = y.shape().back(), rows = Sk ? y.size() / Sk : 0;
        thrust_backend::for_each_index<D>(
            rows, thrust_backend::masked_softmax_rows_backward<T>{g.data(), y.data(), dx[0]->data(), Sk, T(op.scale)});
    }
};

template <class T, bool Packed, thrust_device D>
struct device_kernels<multihead_attention_impl<T, Packed, D>, D> {
    static constexpr bool available = true;
    using op = multihead_attention_impl<T, Packed, D>;
    using tensor_t = tensor<T, D>;

    /// Offset of head 0 of batch item b in an operand seen through v.
    static std::size_t at(const head_view& v, std::size_t b) { return b * v.batch_stride + v.col; }

    static tensor_t run_forward(const op& o, const tensor_t& q, const tensor_t& k, const tensor_t& v) {
        using namespace thrust_backend;
        const auto g = o.geo(q.shape(), k.shape());
        const auto vw = o.views(g);
        const std::size_t nh = o.heads, BH = g.B * nh, SS = g.Sq * g.Sk;
        const auto hd = static_cast<std::ptrdiff_t>(g.d), ss = static_cast<std::ptrdiff_t>(SS);
        auto out = tensor_t::uninitialized(o.batch_first ? shape_t{g.B, g.Sq, g.E} : shape_t{g.Sq, g.B, g.E});
        auto& sv = *o.saved;
        sv.probs = tensor_t::uninitialized({g.B, nh, g.Sq, g.Sk});
        sv.keep.clear();
        sv.keep_on_device = tensor_t();
        if (o.dropout > 0) {  // the CPU's mask: drawn serially from the seed
            rng gen(o.seed);
            const T keep = static_cast<T>(1.0 / (1.0 - o.dropout));
            auto h = tensor<T>::uninitialized({BH * SS});
            for (std::size_t i = 0; i < h.size(); ++i) h.data()[i] = gen.uniform() < o.dropout ? T(0) : keep;
            sv.keep_on_device = xgrad::to<D>(h);
        }
        const T scale = T(1) / std::sqrt(T(g.d));
        T* P = sv.probs.data();
        for (std::size_t b = 0; b < g.B; ++b)  // S = Q K^T for every head of item b
            gemm_strided_batched<D, T>(op::name, false, true, g.Sq, g.Sk, g.d, T(1), q.data() + at(vw[0], b), vw[0].ld, hd,
                                       k.data() + at(vw[1], b), vw[1].ld, hd, T(0), P + b * nh * SS, g.Sk, ss, nh);
        const auto pad = padding_on<D>(o.mask);
        for_each_index<D>(BH * g.Sq, masked_softmax_rows<T>{P, g.Sq, g.Sk, nh * g.Sq,
                                                            o.mask.has_key_padding() ? pad.data() : nullptr, o.mask.causal(),
                                                            scale});
        const T* used = P;
        tensor_t dropped;
        if (o.dropout > 0) {
            dropped = tensor_t::uninitialized({BH * SS});
            for_each_index<D>(BH * SS, multiply_into<T>{P, sv.keep_on_device.data(), dropped.data()});
            used = dropped.data();
        }
        for (std::size_t b = 0; b < g.B; ++b)  // O = P V, heads merged
            gemm_strided_batched<D, T>(op::name, false, false, g.Sq, g.d, g.Sk, T(1), used + b * nh * SS, g.Sk, ss,
                                       v.data() + at(vw[2], b), vw[2].ld, hd, T(0), out.data() + at(vw[3], b), vw[3].ld, hd,
                                       nh);
        return out;
    }

    /// Writes dq, dk, dv (any may be null) given the upstream gradient G of the output.
    static void run_backward(const op& o, const tensor_t& G, const tensor_t& q, const tensor_t& k, const tensor_t& v,
                             T* dq, T* dk, T* dv) {
        using namespace thrust_backend;
        const auto g = o.geo(q.shape(), k.shape());
        const auto vw = o.views(g);
        const std::size_t nh = o.heads, BH = g.B * nh, SS = g.Sq * g.Sk;
        const auto hd = static_cast<std::ptrdiff_t>(g.d), ss = static_cast<std::ptrdiff_t>(SS);
        const auto& sv = *o.saved;
        const T scale = T(1) / std::sqrt(T(g.d));
        const T* P = sv.probs.data();
        const T* keep = o.dropout > 0 ? sv.keep_on_device.data() : nullptr;
        const T* used = P;
        tensor_t dropped;
        if (keep) {
            dropped = tensor_t::uninitialized({BH * SS});
            for_each_index<D>(BH * SS, multiply_into<T>{P, keep, dropped.data()});
            used = dropped.data();
        }
        if (dv)  // dV = P^T G
            for (std::size_t b = 0; b < g.B; ++b)
                gemm_strided_batched<D, T>(op::name, true, false, g.Sk, g.d, g.Sq, T(1), used + b * nh * SS, g.Sk, ss,
                                           G.data() + at(vw[3], b), vw[3].ld, hd, T(0), dv + at(vw[2], b), vw[2].ld, hd, nh);
        if (!dq && !dk) return;
        auto dS = tensor_t::uninitialized({BH * SS});
        for (std::size_t b = 0; b < g.B; ++b)  // dP = G V^T
            gemm_strided_batched<D, T>(op::name, false, true, g.Sq, g.Sk, g.d, T(1), G.data() + at(vw[3], b), vw[3].ld, hd,
                                       v.data() + at(vw[2], b), vw[2].ld, hd, T(0), dS.data() + b * nh * SS, g.Sk, ss, nh);
        if (keep) for_each_index<D>(BH * SS, multiply_into<T>{dS.data(), keep, dS.data()});
        for_each_index<D>(BH * g.Sq, masked_softmax_rows_backward<T>{dS.data(), P, dS.data(), g.Sk, scale});
        for (std::size_t b = 0; b < g.B; ++b) {
            const T* dSb = dS.data() + b * nh * SS;
            if (dq)  // dQ = dS K
                gemm_strided_batched<D, T>(op::name, false, false, g.Sq, g.d, g.Sk, T(1), dSb, g.Sk, ss,
                                           k.data() + at(vw[1], b), vw[1].ld, hd, T(0), dq + at(vw[0], b), vw[0].ld, hd, nh);
            if (dk)  // dK = dS^T Q
                gemm_strided_batched<D, T>(op::name, true, false, g.Sk, g.d, g.Sq, T(1), dSb, g.Sk, ss,
                                           q.data() + at(vw[0], b), vw[0].ld, hd, T(0), dk + at(vw[1], b), vw[1].ld, hd, nh);
        }
    }

    static tensor_t forward(const op& o, const tensor_t& qkv)
        requires Packed
    {
        return run_forward(o, qkv, qkv, qkv);
    }
    static tensor_t forward(const op& o, const tensor_t& q, const tensor_t& k, const tensor_t& v)
        requires(!Packed)
    {
        return run_forward(o, q, k, v);
    }

    static void backward(const op& o, const tensor_t& g, const tensor_t&, const std::array<tensor_t, 1>& in,
                         std::array<tensor_t*, 1> grad)
        requires Packed
    {
        if (!grad[0]) return;
        T* d = grad[0]->data();
        run_backward(o, g, in[0], in[0], in[0], d, d, d);  // q, k, v gradients fill disjoint columns
    }
    static void backward(const op& o, const tensor_t& g, const tensor_t&, const std::array<tensor_t, 3>& in,
                         std::array<tensor_t*, 3> grad)
        requires(!Packed)
    {
        auto ptr = [](tensor_t* t) { return t ? t->data() : nullptr; };
        run_backward(o, g, in[0], in[1], in[2], ptr(grad[0]), ptr(grad[1]), ptr(grad[2]));
    }
};

}  // namespace xgrad::detail
