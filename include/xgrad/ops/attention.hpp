#pragma once
// Attention: a fused masked softmax, scaled dot-product attention, and the multi-head attention
// kernel behind nn::multihead_attention (Vaswani et al., 2017).
//
// masked_softmax(x, mask, scale), x of shape {B, ..., Sq, Sk}: per row (b, ..., i)
//   y_j = exp(scale x_j - m) / sum_{k visible} exp(scale x_k - m)   for visible j, else 0,
// m the row's largest visible scale x_k. Key j is hidden from query i when the key padding mask
// {B, Sk} is set at (b, j) or, with a causal mask, when j > i. A row with no visible key is all
// zeros (not NaN; PyTorch's math path gives NaN there): such a query attends to nothing, and its
// gradient is zero. Backward (g upstream, rows): dx = scale * y * (g - sum_j g_j y_j); hidden
// entries have y = 0 and get no gradient.
//
// attention(Q, K, V) = P V with P = masked_softmax(Q K^T, mask, scale), scale = 1/sqrt(d_head).
// Backward, G = dOut:  dV = P^T G,  dP = G V^T,  dS = scale * P * (dP - rowsum(dP * P)),
//                      dQ = dS K,  dK = dS^T Q.
// With attention dropout (training), P V becomes (P * M) V for a mask M of 0 and 1/(1-p), and
// dP = (G V^T) * M.
//
// The multi-head kernel reads the heads straight out of the projections ({B, S, E} rows, head h
// in columns [h d, (h+1) d)) with strided GEMMs and writes the heads merged into {B, Sq, E}: no
// reshape or permute copies. It saves P {B, H, Sq, Sk} for the backward.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../backend/cpu/gemm.hpp"
#include "../core/rng.hpp"
#include "../core/transfer.hpp"
#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"
#include "detail/line.hpp"
#include "matmul.hpp"
#include "shape_ops.hpp"

namespace xgrad {

/// Which keys each query may attend to: a key padding mask {B, Sk} (nonzero = padding, hidden,
/// as PyTorch's boolean key_padding_mask) and/or a causal mask (query i sees keys j <= i).
class attention_mask {
public:
    attention_mask() = default;

    /// Only the causal mask.
    static attention_mask causal_mask() {
        attention_mask m;
        m.causal_ = true;
        return m;
    }

    /// A key padding mask {B, Sk}: element (b, j) nonzero hides key j of batch item b.
    template <class M, class D>
    static attention_mask key_padding(const tensor<M, D>& pad, bool causal = false) {
        static_assert(std::is_arithmetic_v<M>, "xgrad::attention_mask: the key padding mask must be bool or numbers");
        if (pad.dim() != 2)
            throw shape_error("attention_mask: key_padding_mask must have shape {batch, keys}, got " +
                              to_string(pad.shape()));
        attention_mask m;
        m.causal_ = causal;
        m.pad_shape_ = pad.shape();
        const auto host = xgrad::to<device::cpu>(pad).contiguous();
        m.pad_.resize(host.size());
        for (std::size_t i = 0; i < host.size(); ++i) m.pad_[i] = host.data()[i] != M(0) ? 1 : 0;
        return m;
    }

    bool causal() const { return causal_; }
    bool has_key_padding() const { return !pad_shape_.empty(); }
    const shape_t& key_padding_shape() const { return pad_shape_; }

    /// The padding flags of batch item b (nullptr without a key padding mask).
    const std::uint8_t* padding_row(std::size_t b) const {
        return has_key_padding() ? pad_.data() + b * pad_shape_[1] : nullptr;
    }

    /// Throws shape_error naming `op` unless the mask fits B batch items, Sq queries, Sk keys.
    void check(std::size_t B, std::size_t Sk, const char* op) const {
        if (has_key_padding() && (pad_shape_[0] != B || pad_shape_[1] != Sk))
            throw shape_error(std::string(op) + ": key_padding_mask of shape " + to_string(pad_shape_) +
                              " does not match {batch, keys} = {" + std::to_string(B) + ", " + std::to_string(Sk) + "}");
    }

private:
    bool causal_ = false;
    shape_t pad_shape_;
    std::vector<std::uint8_t> pad_;
};

namespace detail {

/// A masked softmax row of n keys, in place: the first `visible` keys (the line `vis` walks,
/// vis.n = visible, over the contiguous row) not flagged in pad (may be null) get
/// softmax(scale * row) over them, every other key 0; all zeros if none is visible. The CPU runs
/// it on SIMD batches along the row (contiguous_line), a device thread on one row.
template <class L, class T>
XGRAD_HD XGRAD_INLINE void masked_softmax_line(const L& vis, T* row, std::size_t n, const std::uint8_t* pad, T scale) {
    constexpr T ninf = -std::numeric_limits<T>::infinity();
    vis.each([&]<class V>(std::size_t j) {
        const std::size_t k = vis.at(j);
        store(V(load<V>(row + k) * V(scale)), row + k);
    });
    if (pad)
        for (std::size_t j = 0; j < vis.n; ++j)
            if (pad[j]) row[vis.at(j)] = ninf;
    const T m = vis.n ? T(vis.max([&]<class V>(std::size_t j) { return load<V>(row + vis.at(j)); })) : ninf;
    if (m == ninf) {  // nothing visible
        for (std::size_t j = 0; j < n; ++j) row[j] = T(0);
        return;
    }
    // exp(-inf - m) = 0 for the padded keys
    const T s = vis.sum([&]<class V>(std::size_t j) {
        const std::size_t k = vis.at(j);
        const V e = vm::exp(load<V>(row + k) - V(m));
        store(e, row + k);
        return e;
    });
    const T r = T(1) / s;
    vis.each([&]<class V>(std::size_t j) {
        const std::size_t k = vis.at(j);
        store(V(load<V>(row + k) * V(r)), row + k);
    });
    for (std::size_t j = vis.n; j < n; ++j) row[j] = T(0);
}

/// Its backward over one row (line): dx = scale * y * (g - sum_j g_j y_j); dx may alias g.
template <class L, class T>
XGRAD_HD XGRAD_INLINE void masked_softmax_line_backward(const L& line, const T* g, const T* y, T* dx, T scale) {
    const T dot = line.sum([&]<class V>(std::size_t j) {
        const std::size_t k = line.at(j);
        return V(load<V>(g + k) * load<V>(y + k));
    });
    line.each([&]<class V>(std::size_t j) {
        const std::size_t k = line.at(j);
        store(V(V(scale) * load<V>(y + k) * (load<V>(g + k) - V(dot))), dx + k);
    });
}

/// Keys query i of Sq sees of Sk (all, or the first i + 1 under a causal mask).
XGRAD_HD inline std::size_t visible_keys(bool causal, std::size_t i, std::size_t Sk) {
    return causal && i + 1 < Sk ? i + 1 : Sk;
}

/// Row i of a masked softmax over n keys on the CPU (see masked_softmax_line).
template <class T>
void masked_softmax_row(T* row, std::size_t n, std::size_t visible, const std::uint8_t* pad, T scale) {
    masked_softmax_line(contiguous_line<T>{visible}, row, n, pad, scale);
}

/// dx = scale * y * (g - sum_j g_j y_j) over one row of n; dx may alias g.
template <class T>
void masked_softmax_row_backward(const T* g, const T* y, T* dx, std::size_t n, T scale) {
    masked_softmax_line_backward(contiguous_line<T>{n}, g, y, dx, scale);
}

/// The op_node Impl of masked_softmax over x {B, ..., Sq, Sk}.
struct masked_softmax_impl {
    static constexpr const char* name = "masked_softmax";
    attention_mask mask;
    double scale;

    shape_t output_shape(const shape_t& s) const {
        if (s.size() < 2)
            throw shape_error("masked_softmax: scores must have shape {..., queries, keys}, got " + to_string(s));
        if (mask.has_key_padding() && s.size() < 3)
            throw shape_error("masked_softmax: with a key_padding_mask the scores must have shape {batch, ..., queries, keys}, got " +
                              to_string(s));
        if (mask.has_key_padding()) mask.check(s[0], s.back(), name);
        return s;
    }

    template <class T>
    tensor<T> forward(const tensor<T>& x) const {
        const shape_t& s = x.shape();
        const std::size_t Sk = s.back(), Sq = s[s.size() - 2], rows = Sk ? x.size() / Sk : 0;
        const std::size_t per_batch = s.size() >= 3 && s[0] ? rows / s[0] : rows;
        auto y = x.clone();
        T* py = y.data();
        parallel_rows(rows, Sk, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r) {
                const std::size_t i = r % Sq, visible = visible_keys(mask.causal(), i, Sk);
                masked_softmax_row(py + r * Sk, Sk, visible, mask.padding_row(r / per_batch), T(scale));
            }
        });
        return y;
    }

    template <class T>
    void backward(const tensor<T>& g, const tensor<T>& y, const std::array<tensor<T>, 1>&,
                  std::array<tensor<T>*, 1> dx) const {
        if (!dx[0]) return;
        const std::size_t Sk = y.shape().back(), rows = Sk ? y.size() / Sk : 0;
        parallel_rows(rows, Sk, [&](std::size_t r0, std::size_t r1) {
            for (std::size_t r = r0; r < r1; ++r)
                masked_softmax_row_backward(g.data() + r * Sk, y.data() + r * Sk, dx[0]->data() + r * Sk, Sk, T(scale));
        });
    }
};

/// Where one operand of the multi-head kernel lives: element (b, s, c) of a {B, S, *} operand is
/// at base + b * batch_stride + s * ld + col + c.
struct head_view {
    std::size_t col = 0, ld = 0, batch_stride = 0;
};

/// What the multi-head forward saves for its backward (on D, the operands' device).
template <class T, class D = device::cpu>
struct attention_saved {
    tensor<T, D> probs;            // P {B, H, Sq, Sk}
    std::vector<T> keep;           // dropout multipliers (0 or 1/(1-p)), same size, or empty
    tensor<T, D> keep_on_device;   // devices other than the CPU: keep, copied there
};

/// Multi-head attention over projections already computed. Packed (self-attention): one input
/// qkv {B, S, 3E} (PyTorch's in_proj layout: q, k, v side by side); otherwise three inputs
/// q {B, Sq, E}, k {B, Sk, E}, v {B, Sk, E}. batch_first = false reads {S, B, ...} instead.
/// Output {B, Sq, E} (or {Sq, B, E}), heads merged. D: the operands' device (the kernels of
/// devices other than the CPU are a backend's, backend/thrust/ops_attention.hpp).
template <class T, bool Packed, class D = device::cpu>
struct multihead_attention_impl {
    static constexpr const char* name = "multihead_attention";
    std::size_t heads = 1;
    attention_mask mask;
    bool batch_first = true;
    double dropout = 0;
    std::uint64_t seed = 0;  // the dropout mask's stream (training with dropout > 0)
    std::shared_ptr<attention_saved<T, D>> saved = std::make_shared<attention_saved<T, D>>();

    struct geometry {
        std::size_t B, Sq, Sk, E, d;
    };

    geometry geo(const shape_t& q, const shape_t& k) const {
        const std::size_t b_axis = batch_first ? 0 : 1, s_axis = batch_first ? 1 : 0;
        return {q[b_axis], q[s_axis], k[s_axis], Packed ? q[2] / 3 : q[2], (Packed ? q[2] / 3 : q[2]) / heads};
    }

    void check_rank(const shape_t& s, const char* what) const {
        if (s.size() != 3)
            throw shape_error(std::string("multihead_attention: ") + what + " must have shape " +
                              (batch_first ? "{batch, seq, embed}" : "{seq, batch, embed}") + ", got " + to_string(s));
    }

    shape_t check_common(const shape_t& q, const shape_t& k) const {
        const geometry g = geo(q, k);
        if (g.E == 0 || g.E % heads != 0)
            throw shape_error("multihead_attention: embed_dim " + std::to_string(g.E) + " is not divisible by " +
                              std::to_string(heads) + " heads");
        mask.check(g.B, g.Sk, name);
        return batch_first ? shape_t{g.B, g.Sq, g.E} : shape_t{g.Sq, g.B, g.E};
    }

    shape_t output_shape(const shape_t& qkv) const
        requires Packed
    {
        check_rank(qkv, "qkv");
        if (qkv[2] % 3 != 0)
            throw shape_error("multihead_attention: packed qkv's last dimension must be 3 * embed_dim, got " +
                              to_string(qkv));
        return check_common(qkv, qkv);
    }

    shape_t output_shape(const shape_t& q, const shape_t& k, const shape_t& v) const
        requires(!Packed)
    {
        check_rank(q, "query");
        check_rank(k, "key");
        check_rank(v, "value");
        const std::size_t b_axis = batch_first ? 0 : 1;
        if (k != v || k[b_axis] != q[b_axis] || k[2] != q[2])
            throw shape_error("multihead_attention: query " + to_string(q) + ", key " + to_string(k) + " and value " +
                              to_string(v) + " must share batch and embed sizes, key and value all sizes");
        return check_common(q, k);
    }

    /// Views of q, k, v (and of their gradients, laid out alike) and of the output.
    std::array<head_view, 4> views(const geometry& g) const {
        const std::size_t in_ld = Packed ? 3 * g.E : g.E;
        auto view = [&](std::size_t col, std::size_t ld, std::size_t S) {
            return batch_first ? head_view{col, ld, S * ld} : head_view{col, ld * g.B, ld};
        };
        return {view(0, in_ld, g.Sq), view(Packed ? g.E : 0, in_ld, g.Sk), view(Packed ? 2 * g.E : 0, in_ld, g.Sk),
                view(0, g.E, g.Sq)};
    }

    tensor<T> run_forward(const tensor<T>& q, const tensor<T>& k, const tensor<T>& v) const {
        const geometry g = geo(q.shape(), k.shape());
        const auto vw = views(g);
        const std::size_t BH = g.B * heads, SS = g.Sq * g.Sk;
        auto out = tensor<T>::uninitialized(batch_first ? shape_t{g.B, g.Sq, g.E} : shape_t{g.Sq, g.B, g.E});
        auto& sv = *saved;
        sv.probs = tensor<T>::uninitialized({g.B, heads, g.Sq, g.Sk});
        sv.keep.clear();
        if (dropout > 0) {  // drawn serially so that the mask depends only on the seed
            rng gen(seed);
            const T keep = static_cast<T>(1.0 / (1.0 - dropout));
            sv.keep.resize(BH * SS);
            for (auto& m : sv.keep) m = gen.uniform() < dropout ? T(0) : keep;
        }
        const T scale = T(1) / std::sqrt(T(g.d));
        T* P = sv.probs.data();
        parallel_rows(BH, SS * g.d, [&](std::size_t r0, std::size_t r1) {
            single_threaded_gemm one;
            std::vector<T> dropped(dropout > 0 ? SS : 0);
            for (std::size_t r = r0; r < r1; ++r) {
                const std::size_t b = r / heads, h = r % heads;
                const T* Q = q.data() + b * vw[0].batch_stride + vw[0].col + h * g.d;
                const T* K = k.data() + b * vw[1].batch_stride + vw[1].col + h * g.d;
                const T* Vv = v.data() + b * vw[2].batch_stride + vw[2].col + h * g.d;
                T* O = out.data() + b * vw[3].batch_stride + h * g.d;
                T* Pr = P + r * SS;
                gemm<T>(false, true, g.Sq, g.Sk, g.d, T(1), Q, vw[0].ld, K, vw[1].ld, T(0), Pr, g.Sk);
                for (std::size_t i = 0; i < g.Sq; ++i)
                    masked_softmax_row(Pr + i * g.Sk, g.Sk, visible_keys(mask.causal(), i, g.Sk),
                                       mask.padding_row(b), scale);
                const T* used = Pr;
                if (dropout > 0) {
                    const T* keep = sv.keep.data() + r * SS;
                    for (std::size_t j = 0; j < SS; ++j) dropped[j] = Pr[j] * keep[j];
                    used = dropped.data();
                }
                gemm<T>(false, false, g.Sq, g.d, g.Sk, T(1), used, g.Sk, Vv, vw[2].ld, T(0), O, vw[3].ld);
            }
        });
        return out;
    }

    /// Writes dq, dk, dv (any may be null) given the upstream gradient G of the output.
    void run_backward(const tensor<T>& G, const tensor<T>& q, const tensor<T>& k, const tensor<T>& v, T* dq, T* dk,
                      T* dv) const {
        const geometry g = geo(q.shape(), k.shape());
        const auto vw = views(g);
        const std::size_t BH = g.B * heads, SS = g.Sq * g.Sk;
        const auto& sv = *saved;
        const T scale = T(1) / std::sqrt(T(g.d));
        const T* P = sv.probs.data();
        parallel_rows(BH, 2 * SS * g.d, [&](std::size_t r0, std::size_t r1) {
            single_threaded_gemm one;
            std::vector<T> dS(SS), dropped(dropout > 0 ? SS : 0);
            for (std::size_t r = r0; r < r1; ++r) {
                const std::size_t b = r / heads, h = r % heads;
                const std::size_t oq = b * vw[0].batch_stride + vw[0].col + h * g.d;
                const std::size_t ok = b * vw[1].batch_stride + vw[1].col + h * g.d;
                const std::size_t ov = b * vw[2].batch_stride + vw[2].col + h * g.d;
                const T* Gr = G.data() + b * vw[3].batch_stride + h * g.d;
                const T* Pr = P + r * SS;
                const T* keep = dropout > 0 ? sv.keep.data() + r * SS : nullptr;
                const T* used = Pr;
                if (keep) {
                    for (std::size_t j = 0; j < SS; ++j) dropped[j] = Pr[j] * keep[j];
                    used = dropped.data();
                }
                if (dv) gemm<T>(true, false, g.Sk, g.d, g.Sq, T(1), used, g.Sk, Gr, vw[3].ld, T(0), dv + ov, vw[2].ld);
                if (!dq && !dk) continue;
                gemm<T>(false, true, g.Sq, g.Sk, g.d, T(1), Gr, vw[3].ld, v.data() + ov, vw[2].ld, T(0), dS.data(), g.Sk);
                if (keep)
                    for (std::size_t j = 0; j < SS; ++j) dS[j] *= keep[j];
                for (std::size_t i = 0; i < g.Sq; ++i)
                    masked_softmax_row_backward(dS.data() + i * g.Sk, Pr + i * g.Sk, dS.data() + i * g.Sk, g.Sk, scale);
                if (dq)
                    gemm<T>(false, false, g.Sq, g.d, g.Sk, T(1), dS.data(), g.Sk, k.data() + ok, vw[1].ld, T(0), dq + oq,
                            vw[0].ld);
                if (dk)
                    gemm<T>(true, false, g.Sk, g.d, g.Sq, T(1), dS.data(), g.Sk, q.data() + oq, vw[0].ld, T(0), dk + ok,
                            vw[1].ld);
            }
        });
    }

    tensor<T> forward(const tensor<T>& qkv) const
        requires Packed
    {
        return run_forward(qkv, qkv, qkv);
    }
    tensor<T> forward(const tensor<T>& q, const tensor<T>& k, const tensor<T>& v) const
        requires(!Packed)
    {
        return run_forward(q, k, v);
    }

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> grad) const
        requires Packed
    {
        if (!grad[0]) return;
        T* d = grad[0]->data();
        run_backward(g, in[0], in[0], in[0], d, d, d);  // q, k, v gradients fill disjoint columns
    }
    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 3>& in,
                  std::array<tensor<T>*, 3> grad) const
        requires(!Packed)
    {
        auto ptr = [](tensor<T>* t) { return t ? t->data() : nullptr; };
        run_backward(g, in[0], in[1], in[2], ptr(grad[0]), ptr(grad[1]), ptr(grad[2]));
    }
};

template <class X>
using attention_value_t = typename expr_t<X>::value_type;

}  // namespace detail

/// Options of the multi-head attention kernel.
struct attention_options {
    attention_mask mask;          // key padding and/or causal
    bool batch_first = true;      // {B, S, E}; false: {S, B, E}
    double dropout = 0;           // on the attention weights, when training
    bool training = false;
    std::uint64_t seed = 0;       // the dropout mask's stream
};

/// softmax(scale * x) along the last axis over the keys `mask` leaves visible, for scores
/// x {B, ..., Sq, Sk}; rows with no visible key are zeros. See the top of this file.
template <operand X>
auto masked_softmax(X&& x, const attention_mask& mask = {}, double scale = 1.0) {
    static_assert(std::is_floating_point_v<detail::attention_value_t<X>>,
                  "xgrad::masked_softmax: elements must be float or double");
    return make_op(detail::masked_softmax_impl{mask, scale}, std::forward<X>(x));
}

/// softmax(Q K^T / sqrt(d) + mask) V for q {..., Sq, d}, k {..., Sk, d}, v {..., Sk, dv}; with a
/// key padding mask the first dimension is the batch. Built from matmul and masked_softmax.
template <operand Q, operand K, operand V>
auto scaled_dot_product_attention(Q&& q, K&& k, V&& v, const attention_mask& mask = {}) {
    auto qe = as_expr(std::forward<Q>(q));
    if (qe.shape().empty()) throw shape_error("scaled_dot_product_attention: query must have shape {..., queries, dim}");
    const double scale = 1.0 / std::sqrt(static_cast<double>(qe.shape().back()));
    auto scores = matmul(std::move(qe), transpose(std::forward<K>(k), -2, -1));
    return matmul(masked_softmax(std::move(scores), mask, scale), std::forward<V>(v));
}

/// Multi-head self-attention over packed projections qkv {B, S, 3E} (q, k, v side by side, as
/// x in_proj_weight^T + in_proj_bias): the heads' attention outputs merged into {B, S, E}.
template <operand X>
auto multihead_attention(X&& qkv, std::size_t heads, const attention_options& o = {}) {
    using T = detail::attention_value_t<X>;
    static_assert(std::is_floating_point_v<T>, "xgrad::multihead_attention: elements must be float or double");
    if (heads == 0) throw value_error("multihead_attention: num_heads must be > 0");
    if (!(o.dropout >= 0 && o.dropout < 1))
        throw value_error("multihead_attention: dropout must be in [0, 1), got " + std::to_string(o.dropout));
    using D = detail::op_device_t<expr_t<X>>;
    return make_op(detail::multihead_attention_impl<T, true, D>{heads, o.mask, o.batch_first, o.training ? o.dropout : 0.0, o.seed},
                   std::forward<X>(qkv));
}

/// Multi-head attention over separate projections q {B, Sq, E}, k and v {B, Sk, E}.
template <operand Q, operand K, operand V>
auto multihead_attention(Q&& q, K&& k, V&& v, std::size_t heads, const attention_options& o = {}) {
    using T = detail::attention_value_t<Q>;
    static_assert(std::is_floating_point_v<T>, "xgrad::multihead_attention: elements must be float or double");
    if (heads == 0) throw value_error("multihead_attention: num_heads must be > 0");
    if (!(o.dropout >= 0 && o.dropout < 1))
        throw value_error("multihead_attention: dropout must be in [0, 1), got " + std::to_string(o.dropout));
    using D = detail::op_device_t<expr_t<Q>, expr_t<K>, expr_t<V>>;
    return make_op(detail::multihead_attention_impl<T, false, D>{heads, o.mask, o.batch_first, o.training ? o.dropout : 0.0, o.seed},
                   std::forward<Q>(q), std::forward<K>(k), std::forward<V>(v));
}

}  // namespace xgrad
