#pragma once
// Attention layers with PyTorch's names and layouts:
//   multihead_attention                 torch.nn.MultiheadAttention (in_proj_weight {3E, E},
//                                       in_proj_bias {3E}, out_proj.weight, out_proj.bias)
//   transformer_encoder_layer<T, Act>   torch.nn.TransformerEncoderLayer (self_attn.*, linear1,
//                                       linear2, norm1, norm2; norm_first both ways)
//   sinusoidal_positional_encoding      pe[p, 2i] = sin(p / 10000^(2i/E)), pe[p, 2i+1] = cos(...)
//   learned_positional_embedding        a trained {max_len, E} table added by position
// Each takes its device as its last template argument (the CPU by default): on a Thrust device
// (<xgrad/device.hpp>) the parameters live there, initial values are drawn on the host from the
// same generator and copied (a layer built on a device with the CPU layer's seed has its
// weights), and xgrad::to<Device>(layer) moves a layer with its parameters.
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../ops/attention.hpp"
#include "../ops/dropout.hpp"
#include "../ops/embedding.hpp"
#include "../ops/fork.hpp"
#include "../ops/norm.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "normalization.hpp"
#include "transfer.hpp"

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
template <class T = float, class Device = device::cpu>
class multihead_attention : public module<multihead_attention<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::multihead_attention<T>: T must be float or double");
    template <class, class>
    friend class multihead_attention;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "multihead_attention";

    parameter<T, Device> in_proj_weight, in_proj_bias;
    linear<T, Device> out_proj;

    multihead_attention(std::size_t embed_dim, std::size_t num_heads, const multihead_attention_options& o = {},
                        rng& gen = default_generator())
        : out_proj(checked_embed(embed_dim, num_heads), embed_dim, {.bias = o.bias}, gen),
          E_(embed_dim),
          H_(num_heads),
          o_(o),
          gen_(gen.split()) {
        if (!(o.dropout >= 0 && o.dropout < 1))
            throw value_error("multihead_attention: dropout must be in [0, 1), got " + std::to_string(o.dropout));
        auto w = xgrad::param(tensor<T>::uninitialized({3 * embed_dim, embed_dim}));
        auto b = xgrad::param(zeros<T>({3 * embed_dim}));
        init::xavier_uniform(w, gen);
        if (o.bias) out_proj.bias.value().fill(T(0));
        else b.requires_grad(false);
        in_proj_weight = xgrad::to<Device>(w);
        in_proj_bias = xgrad::to<Device>(b);
    }

    /// The same layer on Device: parameters copied, same generator state and training mode
    /// (xgrad::to<Device>(model) uses this).
    template <class From>
    explicit multihead_attention(const multihead_attention<T, From>& o)
        : in_proj_weight(xgrad::to<Device>(o.in_proj_weight)),
          in_proj_bias(xgrad::to<Device>(o.in_proj_bias)),
          out_proj(o.out_proj),
          E_(o.E_),
          H_(o.H_),
          o_(o.o_),
          gen_(o.gen_) {
        this->set_training(o.is_training());
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
template <class T = float, class Act = activation::relu_t, class Device = device::cpu>
class transformer_encoder_layer : public module<transformer_encoder_layer<T, Act, Device>> {
    template <class, class, class>
    friend class transformer_encoder_layer;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "transformer_encoder_layer";

    multihead_attention<T, Device> self_attn;
    linear<T, Device> linear1, linear2;
    layer_norm<T, Device> norm1, norm2;

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

    /// The same layer on Device: parameters copied, same generator state and training mode
    /// (xgrad::to<Device>(model) uses this).
    template <class From>
    explicit transformer_encoder_layer(const transformer_encoder_layer<T, Act, From>& o)
        : self_attn(o.self_attn),
          linear1(o.linear1),
          linear2(o.linear2),
          norm1(o.norm1),
          norm2(o.norm2),
          o_(o.o_),
          gen_(o.gen_) {
        this->set_training(o.is_training());
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
    auto norm(X&& x, layer_norm<T, Device>& n, bool on) {
        const T eps = static_cast<T>(o_.layer_norm_eps);
        return make_op(xgrad::detail::switchable_layer_norm_impl<T, Device>{{n.normalized_shape(), eps}, on},
                       std::forward<X>(x), n.weight, n.bias);
    }
    template <class X>
    auto drop(X&& x) {
        return xgrad::dropout(std::forward<X>(x), o_.dropout, this->is_training(), gen_);
    }

    /// Dropout on linear2's input, which linear2 materializes anyway (ops/dropout.hpp's
    /// barrier_dropout_impl); draws the same mask from gen_ as drop() would.
    template <class X>
    auto drop_barrier(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        xgrad::detail::barrier_dropout_impl<T, Device> op;
        const double p = o_.dropout;
        if (this->is_training() && p > 0) op.mask = xgrad::detail::dropout_keep_mask<T, Device>(e.shape(), p, gen_);
        return make_op(std::move(op), std::move(e));
    }

    transformer_encoder_layer_options o_;
    rng gen_;
};

/// Adds pe[p, :] to position p of x {B, S, E} (batch_first) with the fixed sinusoids of
/// Vaswani et al. (2017): pe[p, 2i] = sin(p w_i), pe[p, 2i+1] = cos(p w_i), w_i = 10000^(-2i/E).
template <class T = float, class Device = device::cpu>
class sinusoidal_positional_encoding : public module<sinusoidal_positional_encoding<T, Device>> {
    template <class, class>
    friend class sinusoidal_positional_encoding;

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "sinusoidal_positional_encoding";

    sinusoidal_positional_encoding(std::size_t max_len, std::size_t embed_dim) {
        if (max_len == 0 || embed_dim == 0)
            throw value_error("sinusoidal_positional_encoding: max_len and embed_dim must be > 0");
        auto pe = tensor<T>::uninitialized({max_len, embed_dim});
        for (std::size_t p = 0; p < max_len; ++p)
            for (std::size_t c = 0; c < embed_dim; ++c) {
                const double w = std::pow(10000.0, -static_cast<double>(c - c % 2) / static_cast<double>(embed_dim));
                pe.data()[p * embed_dim + c] = static_cast<T>(c % 2 ? std::cos(p * w) : std::sin(p * w));
            }
        pe_ = xgrad::to<Device>(pe);
    }

    /// The same layer on Device (the table copied).
    template <class From>
    explicit sinusoidal_positional_encoding(const sinusoidal_positional_encoding<T, From>& o)
        : pe_(xgrad::to<Device>(o.pe_)) {
        this->set_training(o.is_training());
    }

    /// The table {max_len, E}.
    const tensor<T, Device>& table() const { return pe_; }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        if (s.size() != 3 || s[2] != pe_.shape()[1] || s[1] > pe_.shape()[0])
            throw shape_error("sinusoidal_positional_encoding: expected input {batch, seq <= " + std::to_string(pe_.shape()[0]) +
                              ", " + std::to_string(pe_.shape()[1]) + "}, got " + to_string(s));
        // rows [0, S) of the table: a view (the table is never written)
        return std::move(e) + pe_.slice(0, 0, static_cast<std::ptrdiff_t>(s[1]));
    }

private:
    tensor<T, Device> pe_;
};

/// Adds a trained row weight[p, :] to position p of x {B, S, E} (like GPT/BERT's position
/// embeddings); weight {max_len, E} ~ N(0, 1) as torch.nn.Embedding.
template <class T = float, class Device = device::cpu>
class learned_positional_embedding : public module<learned_positional_embedding<T, Device>> {
public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "learned_positional_embedding";

    parameter<T, Device> weight;

    learned_positional_embedding(std::size_t max_len, std::size_t embed_dim, rng& gen = default_generator()) {
        if (max_len == 0 || embed_dim == 0)
            throw value_error("learned_positional_embedding: max_len and embed_dim must be > 0");
        auto w = xgrad::param(tensor<T>::uninitialized({max_len, embed_dim}));
        init::normal(w, gen);
        weight = xgrad::to<Device>(w);
        positions_ = positions(max_len);
    }

    /// The same layer on Device (the weight copied).
    template <class From>
    explicit learned_positional_embedding(const learned_positional_embedding<T, From>& o)
        : weight(xgrad::to<Device>(o.weight)), positions_(positions(o.weight.shape()[0])) {
        this->set_training(o.is_training());
    }

    template <operand X>
    auto forward(X&& x) {
        auto e = as_expr(std::forward<X>(x));
        const shape_t& s = e.shape();
        const shape_t& w = weight.shape();
        if (s.size() != 3 || s[2] != w[1] || s[1] > w[0])
            throw shape_error("learned_positional_embedding: expected input {batch, seq <= " + std::to_string(w[0]) + ", " +
                              std::to_string(w[1]) + "}, got " + to_string(s));
        return std::move(e) + xgrad::embedding(positions_.slice(0, 0, static_cast<std::ptrdiff_t>(s[1])), weight);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
    }

private:
    /// 0, 1, ..., n - 1 on Device.
    static tensor<std::int64_t, Device> positions(std::size_t n) {
        auto pos = tensor<std::int64_t>::uninitialized({n});
        for (std::size_t p = 0; p < n; ++p) pos.data()[p] = static_cast<std::int64_t>(p);
        return xgrad::to<Device>(pos);
    }

    tensor<std::int64_t, Device> positions_;  // the indices of the gather, made once
};

/// to<Device>(layer) for the transformer encoder layer (the other layers here are
/// layer<T, Device> templates, which on_device handles as it is).
template <class T, class Act, class D, class To>
struct on_device<transformer_encoder_layer<T, Act, D>, To> {
    using type = transformer_encoder_layer<T, Act, To>;
};

}  // namespace xgrad::nn
