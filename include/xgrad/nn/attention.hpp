#pragma once
// Attention layers with PyTorch's names and layouts:
//   multihead_attention                 torch.nn.MultiheadAttention (in_proj_weight {3E, E},
//                                       in_proj_bias {3E}, out_proj.weight, out_proj.bias)
//   transformer_encoder_layer<T, Act>   torch.nn.TransformerEncoderLayer (self_attn.*, linear1,
//                                       linear2, norm1, norm2; norm_first both ways)
//   sinusoidal_positional_encoding      pe[p, 2i] = sin(p / 10000^(2i/E)), pe[p, 2i+1] = cos(...)
//   learned_positional_embedding        a trained {max_len, E} table added by position
// CPU only for now.
#include <cmath>
#include <cstdint>
#include <string>

#include "../ops/attention.hpp"
#include "../ops/dropout.hpp"
#include "../ops/embedding.hpp"
#include "../ops/fork.hpp"
#include "../ops/norm.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "normalization.hpp"

namespace xgrad::nn {

struct multihead_attention_options {
    double dropout = 0;       // on the attention weights, in training
    bool bias = true;         // in_proj_bias and out_proj.bias
    bool batch_first = true;  // {B, S, E}; false: {S, B, E} (PyTorch's default)
};

/// Multi-head attention, as torch.nn.MultiheadAttention; forward(x, mask) is self-attention
/// (one GEMM for the packed q, k, v projection), forward(q, k, v, mask) the general form.
/// Initialisation as PyTorch: in_proj_weight xavier_uniform, biases zero, out_proj.weight as
/// a linear layer.
template <class T = float>
class multihead_attention : public module<multihead_attention<T>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::multihead_attention<T>: T must be float or double");

public:
    using value_type = T;
    static constexpr const char* kind = "multihead_attention";

    parameter<T> in_proj_weight, in_proj_bias;
    linear<T> out_proj;

    multihead_attention(std::size_t embed_dim, std::size_t num_heads, const multihead_attention_options& o = {},
                        rng& gen = default_generator())
        : in_proj_weight(xgrad::param(tensor<T>::uninitialized({3 * embed_dim, embed_dim}))),
          in_proj_bias(xgrad::param(zeros<T>({3 * embed_dim}))),
          out_proj(checked_embed(embed_dim, num_heads), embed_dim, {.bias = o.bias}, gen),
          E_(embed_dim),
          H_(num_heads),
          o_(o),
          gen_(gen.split()) {
        if (!(o.dropout >= 0 && o.dropout < 1))
            throw value_error("multihead_attention: dropout must be in [0, 1), got " + std::to_string(o.dropout));
        init::xavier_uniform(in_proj_weight, gen);
        if (o.bias) init::constant(out_proj.bias, 0.0);
        else in_proj_bias.requires_grad(false);
    }

    std::size_t embed_dim() const { return E_; }
    std::size_t num_heads() const { return H_; }
    bool batch_first() const { return o_.batch_first; }

    /// Self-attention of x {B, S, E} ({S, B, E} unless batch_first).
    template <operand X>
    auto forward(X&& x, const attention_mask& mask = {}) {
        auto e = as_expr(std::forward<X>(x));
        check_input(e.shape(), "input");
        auto qkv = xgrad::linear(std::move(e), in_proj_weight, in_proj_bias);
        return out_proj.forward(xgrad::multihead_attention(std::move(qkv), H_, options(mask)));
    }

    /// Attention of queries q {B, Sq, E} over keys k and values v {B, Sk, E}.
    template <operand Q, operand K, operand V>
    auto forward(Q&& q, K&& k, V&& v, const attention_mask& mask = {}) {
        auto qe = as_expr(std::forward<Q>(q));
        auto ke = as_expr(std::forward<K>(k));
        auto ve = as_expr(std::forward<V>(v));
        check_input(qe.shape(), "query");
        check_input(ke.shape(), "key");
        check_input(ve.shape(), "value");
        auto part = [&](auto&& in, std::size_t i) {
            return xgrad::linear(std::forward<decltype(in)>(in), narrow(in_proj_weight, 0, i * E_, E_),
                                 narrow(in_proj_bias, 0, i * E_, E_));
        };
        return out_proj.forward(
            xgrad::multihead_attention(part(std::move(qe), 0), part(std::move(ke), 1), part(std::move(ve), 2), H_, options(mask)));
    }

    template <class F>
    void for_each_member(F&& f) {
        f("in_proj_weight", in_proj_weight);
        if (o_.bias) f("in_proj_bias", in_proj_bias);
        f("out_proj", out_proj);
    }

private:
    static std::size_t checked_embed(std::size_t E, std::size_t H) {
        if (E == 0 || H == 0 || E % H != 0)
            throw value_error("multihead_attention: embed_dim (" + std::to_string(E) + ") must be a positive multiple of num_heads (" +
                              std::to_string(H) + ")");
        return E;
    }
    void check_input(const shape_t& s, const char* what) const {
        if (s.size() != 3 || s[2] != E_)
            throw shape_error(std::string("multihead_attention: ") + what + " must have shape " +
                              (o_.batch_first ? "{batch, seq, " : "{seq, batch, ") + std::to_string(E_) + "}, got " + to_string(s));
    }
    attention_options options(const attention_mask& mask) {
        const bool drop = this->is_training() && o_.dropout > 0;
        return {mask, o_.batch_first, o_.dropout, this->is_training(), drop ? gen_() : 0};
    }

    std::size_t E_, H_;
    multihead_attention_options o_;
    rng gen_;
};

namespace detail {

/// layer_norm when `on`, else the identity (y = x, dx = g, no gamma/beta gradient). Lets one
/// expression type serve both placements of the norms (norm_first true or false).
template <class T>
struct switchable_layer_norm_impl {
    static constexpr const char* name = "layer_norm";
    xgrad::detail::layer_norm_impl<T> ln;
    bool on;

    shape_t output_shape(const shape_t& xs, const shape_t& gs, const shape_t& bs) const {
        return ln.output_shape(xs, gs, bs);
    }
    tensor<T> forward(const tensor<T>& x, const tensor<T>& gamma, const tensor<T>& beta) const {
        return on ? ln.forward(x, gamma, beta) : x;
    }
    void backward(const tensor<T>& g, const tensor<T>& y, const std::array<tensor<T>, 3>& in,
                  std::array<tensor<T>*, 3> grad) const {
        if (on) return ln.backward(g, y, in, grad);
        if (grad[0]) std::copy_n(g.data(), g.size(), grad[0]->data());
        if (grad[1]) grad[1]->fill(T(0));
        if (grad[2]) grad[2]->fill(T(0));
    }
};

/// Dropout as a barrier, for an operand that is materialized anyway (the input of a linear
/// layer): y = x * mask with the mask drawn like xgrad::dropout's, or, without a mask (p = 0 or
/// evaluation), y = x itself: no pass over the data and no copy either way round (backward hands
/// the upstream gradient through). The elementwise form x * 1 would cost a pass each way.
template <class T>
struct barrier_dropout_impl {
    static constexpr const char* name = "dropout";
    tensor<T> mask;  // 0 or 1/(1-p) per element; empty: the identity

    shape_t output_shape(const shape_t& s) const { return s; }
    tensor<T> forward(const tensor<T>& x) const {
        if (mask.size() == 0) return x;
        auto y = tensor<T>::uninitialized(x.shape());
        multiply(x.data(), mask.data(), y.data(), y.size());
        return y;
    }
    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>&,
                  std::array<tensor<T>*, 1> dx) const {
        if (!dx[0]) return;
        if (mask.size() == 0) {
            *dx[0] = g;  // shares g's storage: dx = g
            return;
        }
        multiply(g.data(), mask.data(), dx[0]->data(), g.size());
    }
    static void multiply(const T* a, const T* b, T* out, std::size_t n) {
        namespace xd = xgrad::detail;
        xd::parallel_chunks(n, std::size_t{1} << 15, [&](std::size_t lo, std::size_t hi) {
            xd::simd_for<T>(hi - lo, [&]<class V>(std::size_t i) {
                xd::store(V(xd::load<V>(a + lo + i) * xd::load<V>(b + lo + i)), out + lo + i);
            });
        });
    }
};

}  // namespace detail

struct transformer_encoder_layer_options {
    std::size_t dim_feedforward = 2048;
    double dropout = 0.1;
    double layer_norm_eps = 1e-5;
    bool batch_first = true;
    bool norm_first = false;  // pre-norm: x + sa(norm1(x)); post-norm (PyTorch's default): norm1(x + sa(x))
    bool bias = true;
};

/// One transformer encoder block, as torch.nn.TransformerEncoderLayer; Act is
/// activation::relu_t (PyTorch's default) or activation::gelu_t, fused into linear1's GEMM.
///   post-norm: y = norm1(x + drop1(sa(x)));   out = norm2(y + drop2(ff(y)))
///   pre-norm:  y = x + drop1(sa(norm1(x)));   out = y + drop2(ff(norm2(y)))
///   ff(y) = linear2(drop(act(linear1(y))))
template <class T = float, class Act = activation::relu_t>
class transformer_encoder_layer : public module<transformer_encoder_layer<T, Act>> {
public:
    using value_type = T;
    static constexpr const char* kind = "transformer_encoder_layer";

    multihead_attention<T> self_attn;
    linear<T> linear1, linear2;
    layer_norm<T> norm1, norm2;

    transformer_encoder_layer(std::size_t d_model, std::size_t nhead, const transformer_encoder_layer_options& o = {},
                              rng& gen = default_generator())
        : self_attn(d_model, nhead, {.dropout = o.dropout, .bias = o.bias, .batch_first = o.batch_first}, gen),
          linear1(d_model, o.dim_feedforward, {.bias = o.bias}, gen),
          linear2(o.dim_feedforward, d_model, {.bias = o.bias}, gen),
          norm1(d_model, {.eps = o.layer_norm_eps}),
          norm2(d_model, {.eps = o.layer_norm_eps}),
          o_(o),
          gen_(gen.split()) {
        if (!(o.dropout >= 0 && o.dropout < 1))
            throw value_error("transformer_encoder_layer: dropout must be in [0, 1), got " + std::to_string(o.dropout));
    }

    bool norm_first() const { return o_.norm_first; }

    template <operand X>
    auto forward(X&& x, const attention_mask& mask = {}) {
        self_attn.set_training(this->is_training());
        const bool pre = o_.norm_first;
        auto [x1, x2] = fork<2>(std::forward<X>(x));
        auto sa = drop(self_attn.forward(norm(std::move(x1), norm1, pre), mask));
        auto [y1, y2] = fork<2>(norm(std::move(x2) + std::move(sa), norm1, !pre));
        auto h = drop_barrier(xgrad::linear(norm(std::move(y1), norm2, pre), linear1.weight, linear1.bias, Act{}));
        auto ff = drop(linear2.forward(std::move(h)));
        return norm(std::move(y2) + std::move(ff), norm2, !pre);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("self_attn", self_attn);
        f("linear1", linear1);
        f("linear2", linear2);
        f("norm1", norm1);
        f("norm2", norm2);
    }

private:
    template <class X>
    auto norm(X&& x, layer_norm<T>& n, bool on) {
        const T eps = static_cast<T>(o_.layer_norm_eps);
        return make_op(detail::switchable_layer_norm_impl<T>{{n.normalized_shape(), eps}, on}, std::forward<X>(x),
                       n.weight, n.bias);
    }
    template <class X>
    auto drop(X&& x) {
        return xgrad::dropout(std::forward<X>(x), o_.dropout, this->is_training(), gen_);
    }

    /// Dropout on linear2's input, which linear2 materializes anyway (see barrier_dropout_impl);
    /// draws the same mask from gen_ as drop() would.
    template <class X>
    auto drop_barrier(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        detail::barrier_dropout_impl<T> op;
        const double p = o_.dropout;
        if (this->is_training() && p > 0) {
            op.mask = tensor<T>::uninitialized(e.shape());
            const T keep = static_cast<T>(1.0 / (1.0 - p));
            T* m = op.mask.data();
            for (std::size_t i = 0; i < op.mask.size(); ++i) m[i] = gen_.uniform() < p ? T(0) : keep;
        }
        return make_op(std::move(op), std::move(e));
    }

    transformer_encoder_layer_options o_;
    rng gen_;
};

/// Adds pe[p, :] to position p of x {B, S, E} (batch_first) with the fixed sinusoids of
/// Vaswani et al. (2017): pe[p, 2i] = sin(p w_i), pe[p, 2i+1] = cos(p w_i), w_i = 10000^(-2i/E).
template <class T = float>
class sinusoidal_positional_encoding : public module<sinusoidal_positional_encoding<T>> {
public:
    using value_type = T;
    static constexpr const char* kind = "sinusoidal_positional_encoding";

    sinusoidal_positional_encoding(std::size_t max_len, std::size_t embed_dim)
        : pe_(tensor<T>::uninitialized({max_len, embed_dim})) {
        if (max_len == 0 || embed_dim == 0)
            throw value_error("sinusoidal_positional_encoding: max_len and embed_dim must be > 0");
        for (std::size_t p = 0; p < max_len; ++p)
            for (std::size_t c = 0; c < embed_dim; ++c) {
                const double w = std::pow(10000.0, -static_cast<double>(c - c % 2) / static_cast<double>(embed_dim));
                pe_.data()[p * embed_dim + c] = static_cast<T>(c % 2 ? std::cos(p * w) : std::sin(p * w));
            }
    }

    /// The table {max_len, E}.
    const tensor<T>& table() const { return pe_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        if (s.size() != 3 || s[2] != pe_.shape()[1] || s[1] > pe_.shape()[0])
            throw shape_error("sinusoidal_positional_encoding: expected input {batch, seq <= " + std::to_string(pe_.shape()[0]) +
                              ", " + std::to_string(pe_.shape()[1]) + "}, got " + to_string(s));
        auto rows = tensor<T>::uninitialized({s[1], s[2]});
        std::copy_n(pe_.data(), rows.size(), rows.data());
        return std::move(e) + std::move(rows);
    }

private:
    tensor<T> pe_;
};

/// Adds a trained row weight[p, :] to position p of x {B, S, E} (like GPT/BERT's position
/// embeddings); weight {max_len, E} ~ N(0, 1) as torch.nn.Embedding.
template <class T = float>
class learned_positional_embedding : public module<learned_positional_embedding<T>> {
public:
    using value_type = T;
    static constexpr const char* kind = "learned_positional_embedding";

    parameter<T> weight;

    learned_positional_embedding(std::size_t max_len, std::size_t embed_dim, rng& gen = default_generator())
        : weight(xgrad::param(tensor<T>::uninitialized({max_len, embed_dim}))) {
        if (max_len == 0 || embed_dim == 0)
            throw value_error("learned_positional_embedding: max_len and embed_dim must be > 0");
        init::normal(weight, gen);
    }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        const shape_t& w = weight.shape();
        if (s.size() != 3 || s[2] != w[1] || s[1] > w[0])
            throw shape_error("learned_positional_embedding: expected input {batch, seq <= " + std::to_string(w[0]) + ", " +
                              std::to_string(w[1]) + "}, got " + to_string(s));
        auto pos = tensor<std::int64_t>::uninitialized({s[1]});
        for (std::size_t p = 0; p < s[1]; ++p) pos.data()[p] = static_cast<std::int64_t>(p);
        return std::move(e) + xgrad::embedding(pos, weight);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
    }
};

}  // namespace xgrad::nn
