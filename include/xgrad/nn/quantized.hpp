#pragma once
// int8 quantization for inference, as torch.ao.quantization:
//
//   auto q = quant::quantize_dynamic(model);   // linear -> quantized_linear, lstm -> quantized_lstm
//   auto s = quant::prepare_static(model);     // also conv2d -> quantized_conv2d, observing
//   for (a few batches) s(batch);              // calibration: min/max of each conv's input
//   quant::convert(s);                         // fixes the conv input scales
//   quant::save(s, "model_int8.safetensors");  quant::load(s2, "model_int8.safetensors");
//
// Weights: per output channel, symmetric int8: w_q = clamp(round(w / s_w), -127, 127) with
// s_w = max |w| / 127 over the channel (1 for an all-zero channel). -128 is left unused so that
// the int32 sums of backend/cpu/gemm_int8.hpp keep their bound and negation stays exact.
// Activations: per tensor, asymmetric uint8 over the full range [0, 255] (no reduce_range: the
// VNNI kernel does not saturate, see gemm_int8.hpp): with lo = min(min x, 0), hi = max(max x, 0),
// s_x = (hi - lo) / 255 and z = clamp(round(-lo / s_x), 0, 255), x_q = clamp(round(x / s_x) + z).
// quantized_linear computes s_x, z from each input (dynamic); quantized_conv2d from the min/max
// its observer saw during calibration (static; inputs outside are clamped). Both return float:
// y = s_x s_w[n] (sum_k x_q w_q - z sum_k w_q) + b. Rounding is to nearest, halves to even.
// Quantized layers are inference-only (no gradients). Unquantized layers of the model (relu,
// pools, flatten ...) are copied; their parameters stay shared with the float model.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <xsimd/xsimd.hpp>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../autodiff/backward.hpp"
#include "../backend/cpu/gemm_int8.hpp"
#include "../core/error.hpp"
#include "../io/safetensors.hpp"
#include "../ops/detail/layout.hpp"
#include "conv.hpp"
#include "linear.hpp"
#include "module.hpp"
#include "rnn.hpp"
#include "sequential.hpp"

namespace xgrad::quant {

/// Scale and zero point of per-tensor asymmetric uint8 quantization of the range [lo, hi].
struct uint8_params {
    float scale = 1;
    std::int32_t zero_point = 0;
};
inline uint8_params choose_uint8_params(float lo, float hi) {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
    uint8_params p;
    p.scale = (hi - lo) / 255.0f;
    if (!(p.scale > 0) || !std::isfinite(p.scale)) p.scale = 1;
    p.zero_point = static_cast<std::int32_t>(std::clamp(std::nearbyint(-lo / p.scale), 0.0f, 255.0f));
    return p;
}

inline std::uint8_t quantize_uint8(float x, const uint8_params& p) {
    const float q = std::nearbyint(x / p.scale) + static_cast<float>(p.zero_point);
    return static_cast<std::uint8_t>(std::clamp(q, 0.0f, 255.0f));
}

namespace detail {

/// Per-row symmetric int8 of w {rows, cols}: q and the row scales.
inline void quantize_rows(const float* w, std::size_t rows, std::size_t cols, std::int8_t* q, float* scale) {
    for (std::size_t r = 0; r < rows; ++r) {
        float amax = 0;
        for (std::size_t c = 0; c < cols; ++c) amax = std::max(amax, std::abs(w[r * cols + c]));
        scale[r] = amax > 0 ? amax / 127.0f : 1.0f;
        for (std::size_t c = 0; c < cols; ++c)
            q[r * cols + c] = static_cast<std::int8_t>(std::clamp(std::nearbyint(w[r * cols + c] / scale[r]), -127.0f, 127.0f));
    }
}

/// Row x[0, K) -> a[0, kp) uint8 (zero-padded), SIMD: q = clamp(nearbyint(x / scale) + z, 0, 255)
/// exactly as quantize_uint8 computes it (nearbyint rounds halves to even in both).
inline void quantize_row_uint8(const float* x, std::size_t K, std::size_t kp, float inv, float z, std::uint8_t* a) {
    std::size_t k = 0;
#if defined(__AVX512F__)
    // 16 at a time, narrowed to bytes in the register (vpmovdb) and stored at once
    const __m512 vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z), lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.0f);
    auto q16 = [&](__m512 v) {
        v = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, vz), lo), hi)));
    };
    for (; k + 16 <= K; k += 16) _mm_storeu_si128(reinterpret_cast<__m128i*>(a + k), q16(_mm512_loadu_ps(x + k)));
    if (k < K) {
        const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
        _mm_mask_storeu_epi8(a + k, m, q16(_mm512_maskz_loadu_ps(m, x + k)));
        k = K;
    }
#else
    using B = xsimd::batch<float>;
    constexpr std::size_t W = B::size;
    alignas(64) std::int32_t q[W];
    const B vinv(inv), vz(z), lo(0.0f), hi(255.0f);
    for (; k + W <= K; k += W) {
        const B v = xsimd::min(xsimd::max(xsimd::nearbyint(B::load_unaligned(x + k) * vinv) + vz, lo), hi);
        xsimd::batch_cast<std::int32_t>(v).store_aligned(q);
        for (std::size_t j = 0; j < W; ++j) a[k + j] = static_cast<std::uint8_t>(q[j]);
    }
#endif
    for (; k < K; ++k) a[k] = static_cast<std::uint8_t>(std::clamp(std::nearbyint(x[k] * inv) + z, 0.0f, 255.0f));
    std::fill(a + K, a + kp, std::uint8_t{0});
}

/// x {M, K} float -> a {M, kp} uint8 (zero-padded rows), rows split over the pool when large.
inline void quantize_rows_uint8(const float* x, std::size_t M, std::size_t K, std::size_t kp, const uint8_params& p,
                                std::vector<std::uint8_t>& a) {
    a.resize(M * kp);
    const float inv = 1.0f / p.scale, z = static_cast<float>(p.zero_point);
    xgrad::detail::parallel_rows(M, K, [&](std::size_t m0, std::size_t m1) {
        for (std::size_t m = m0; m < m1; ++m) quantize_row_uint8(x + m * K, K, kp, inv, z, a.data() + m * kp);
    });
}

/// Smallest and largest of x[0, n) (SIMD).
inline std::pair<float, float> min_max(const float* x, std::size_t n) {
    using B = xsimd::batch<float>;
    constexpr std::size_t W = B::size;
    float lo = std::numeric_limits<float>::infinity(), hi = -lo;
    std::size_t i = 0;
    if (n >= W) {
        // four independent min/max chains: one chain waits on the latency of each min
        B vlo[4], vhi[4];
        for (auto& v : vlo) v = B::load_unaligned(x);
        for (auto& v : vhi) v = vlo[0];
        for (i = W; i + 4 * W <= n; i += 4 * W)
            for (std::size_t u = 0; u < 4; ++u) {
                const B v = B::load_unaligned(x + i + u * W);
                vlo[u] = xsimd::min(vlo[u], v);
                vhi[u] = xsimd::max(vhi[u], v);
            }
        for (; i + W <= n; i += W) {
            const B v = B::load_unaligned(x + i);
            vlo[0] = xsimd::min(vlo[0], v);
            vhi[0] = xsimd::max(vhi[0], v);
        }
        alignas(64) float l[W], h[W];
        xsimd::min(xsimd::min(vlo[0], vlo[1]), xsimd::min(vlo[2], vlo[3])).store_aligned(l);
        xsimd::max(xsimd::max(vhi[0], vhi[1]), xsimd::max(vhi[2], vhi[3])).store_aligned(h);
        for (std::size_t j = 0; j < W; ++j) {
            lo = std::min(lo, l[j]);
            hi = std::max(hi, h[j]);
        }
    }
    for (; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    return {lo, hi};
}

/// min_max of a large x split over the pool (each thread's part, then the two combined).
inline std::pair<float, float> min_max_parallel(const float* x, std::size_t n) {
    constexpr std::size_t chunk = 4096;
    std::pair<float, float> r{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    std::mutex m;
    xgrad::detail::parallel_rows((n + chunk - 1) / chunk, chunk, [&](std::size_t c0, std::size_t c1) {
        const auto [lo, hi] = min_max(x + c0 * chunk, std::min(n, c1 * chunk) - c0 * chunk);
        std::lock_guard lock(m);
        r = {std::min(r.first, lo), std::max(r.second, hi)};
    });
    return r;
}

/// relu(t) of a float host tensor: what nn::relu hands the next layer of a sequential.
template <class X>
inline constexpr bool is_relu_of_tensor = false;
template <>
inline constexpr bool is_relu_of_tensor<unary_node<ops::relu, tensor_node<float, device::cpu>>> = true;

template <class X>
tensor<float> host_input(X&& x) {
    if constexpr (std::is_same_v<std::remove_cvref_t<X>, tensor<float>>)
        return x.contiguous();  // no copy when it already is
    auto t = xgrad::eval(std::forward<X>(x));
    static_assert(std::is_same_v<decltype(t), tensor<float>>, "xgrad::quant: quantized layers take float host inputs");
    return t.contiguous();
}

}  // namespace detail

/// A linear layer with int8 weights and dynamically quantized uint8 inputs (torch's
/// nn.quantized.dynamic.Linear). Members (saved by quant::save): weight {out, in} int8,
/// scale {out} float, bias {out} float.
class quantized_linear : public nn::module<quantized_linear> {
public:
    static constexpr const char* kind = "quantized_linear";
    tensor<std::int8_t> weight;
    tensor<float> scale, bias;

    explicit quantized_linear(const nn::linear<float>& l)
        : weight(tensor<std::int8_t>::uninitialized(l.weight.shape())),
          scale(tensor<float>::uninitialized({l.out_features()})),
          bias(l.bias.value().clone()) {
        const auto w = l.weight.value().contiguous();
        detail::quantize_rows(w.data(), l.out_features(), l.in_features(), weight.data(), scale.data());
        this->set_path(l.path());
        repack();
    }

    std::size_t in_features() const { return weight.shape()[1]; }
    std::size_t out_features() const { return weight.shape()[0]; }

    /// Rebuilds the kernel's packed copy of `weight` (after loading new values into it).
    void repack() { packed_ = packed_int8_weights(weight.data(), weight.shape()[0], weight.shape()[1]); }

    /// relu(t) (a quantized_linear after nn::relu) is not evaluated: relu(x) has the range
    /// [0, max(x, 0)], so its zero point is 0 and the clamp of the quantization to [0, 255]
    /// maps every x < 0 to 0, the code of relu(x) = 0. The same bytes, one pass less.
    template <operand X>
    tensor<float> forward(X&& x) {
        if constexpr (detail::is_relu_of_tensor<std::remove_cvref_t<X>>)
            return run(x.e.t.contiguous(), true);
        else
            return run(detail::host_input(std::forward<X>(x)), false);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
        f("scale", scale);
        f("bias", bias);
    }

private:
    tensor<float> run(const tensor<float>& in, bool relu_input) {
        const shape_t& s = in.shape();
        const std::size_t K = in_features(), N = out_features();
        if (s.empty() || s.back() != K)
            throw shape_error("expected input of shape {..., " + std::to_string(K) + "}, got " + to_string(s));
        const std::size_t M = in.size() / K;
        const auto [lo, hi] = detail::min_max_parallel(in.data(), in.size());
        const auto p = choose_uint8_params(relu_input ? 0.0f : lo, hi);
        detail::quantize_rows_uint8(in.data(), M, K, packed_.kp, p, a_);
        shape_t os = s;
        os.back() = N;
        auto out = tensor<float>::uninitialized(os);
        int8_gemm(a_.data(), M, packed_,
                  {.c = out.data(), .a_scale = p.scale, .a_zero_point = p.zero_point, .w_scale = scale.data(),
                   .bias = bias.data()});
        return out;
    }

    packed_int8_weights packed_;
    std::vector<std::uint8_t> a_;
};

/// An LSTM with int8 weights and dynamically quantized uint8 activations (torch's
/// nn.quantized.dynamic.LSTM), from an nn::lstm<float>: per layer and direction, weight_ih and
/// weight_hh per-row int8 with their row scales, and bias = bias_ih + bias_hh in float. Each
/// call quantizes a layer's whole input sequence with one scale (one int8 GEMM for the input
/// projection of all steps) and each step's h_{t-1} with its own (one int8 GEMM per step); the
/// gate math (sigmoid, tanh, c and h) is float. Zero initial states, inference only. Returns
/// lstm_output<tensor<float>>: output {T, B, D*H} ({B, T, D*H} batch_first), h_n and c_n
/// {num_layers * D, B, H}. Members: weight_ih_l0, weight_ih_scale_l0, weight_hh_l0,
/// weight_hh_scale_l0, bias_l0 ("_reverse" for the backward direction).
class quantized_lstm : public nn::module<quantized_lstm> {
public:
    static constexpr const char* kind = "quantized_lstm";

    explicit quantized_lstm(const nn::lstm<float>& l_)
        : H_(l_.hidden_size()), in_(l_.input_size()), L_(l_.num_layers()), D_(l_.bidirectional() ? 2 : 1),
          batch_first_(l_.batch_first()) {
        auto& l = const_cast<nn::lstm<float>&>(l_);  // the accessors read only
        const std::size_t G = 4 * H_;
        for (std::size_t k = 0; k < L_; ++k)
            for (std::size_t d = 0; d < D_; ++d) {
                const std::size_t in = k == 0 ? in_ : D_ * H_;
                dir_weights w;
                const std::string sfx = "_l" + std::to_string(k) + (d ? "_reverse" : "");
                w.sfx = sfx;
                w.w_ih = tensor<std::int8_t>::uninitialized({G, in});
                w.s_ih = tensor<float>::uninitialized({G});
                w.w_hh = tensor<std::int8_t>::uninitialized({G, H_});
                w.s_hh = tensor<float>::uninitialized({G});
                const auto wih = l.weight_ih(k, d == 1).value().contiguous();
                const auto whh = l.weight_hh(k, d == 1).value().contiguous();
                detail::quantize_rows(wih.data(), G, in, w.w_ih.data(), w.s_ih.data());
                detail::quantize_rows(whh.data(), G, H_, w.w_hh.data(), w.s_hh.data());
                w.bias = tensor<float>::uninitialized({G});
                const auto bi = l.bias_ih(k, d == 1).value().contiguous(), bh = l.bias_hh(k, d == 1).value().contiguous();
                for (std::size_t j = 0; j < G; ++j) w.bias.data()[j] = bi.data()[j] + bh.data()[j];
                dirs_.push_back(std::move(w));
            }
        this->set_path(l_.path());
        repack();
    }

    std::size_t input_size() const { return in_; }
    std::size_t hidden_size() const { return H_; }
    std::size_t num_layers() const { return L_; }
    bool bidirectional() const { return D_ == 2; }
    bool batch_first() const { return batch_first_; }

    /// Rebuilds the kernel's packed copies of the int8 weights (after loading new values).
    void repack() {
        for (auto& w : dirs_) {
            w.p_ih = packed_int8_weights(w.w_ih.data(), w.w_ih.shape()[0], w.w_ih.shape()[1]);
            w.p_hh = packed_int8_weights(w.w_hh.data(), w.w_hh.shape()[0], w.w_hh.shape()[1]);
        }
    }

    template <operand X>
    lstm_output<tensor<float>> forward(X&& x) {
        auto in = detail::host_input(std::forward<X>(x));
        const shape_t& s = in.shape();
        if (s.size() != 3 || s[2] != in_ || s[0] == 0 || s[1] == 0)
            throw shape_error("expected input of shape {" + std::string(batch_first_ ? "B, T" : "T, B") + ", " +
                              std::to_string(in_) + "}, got " + to_string(s));
        const std::size_t T = batch_first_ ? s[1] : s[0], B = batch_first_ ? s[0] : s[1], G = 4 * H_;
        // time-major layer input {T, B, I}
        tensor<float> seq = batch_first_ ? transpose01(in) : in;
        lstm_output<tensor<float>> r{tensor<float>(), tensor<float>::uninitialized({L_ * D_, B, H_}),
                                     tensor<float>::uninitialized({L_ * D_, B, H_})};
        std::vector<std::uint8_t> a;
        auto gx = tensor<float>::uninitialized({T * B, G});
        std::vector<float> gh(B * G), c(B * H_), h(B * H_);
        for (std::size_t k = 0; k < L_; ++k) {
            const std::size_t I = seq.shape()[2];
            auto y = tensor<float>::uninitialized({T, B, D_ * H_});
            const auto [lo, hi] = detail::min_max(seq.data(), seq.size());
            const auto px = choose_uint8_params(lo, hi);
            for (std::size_t d = 0; d < D_; ++d) {
                const dir_weights& w = dirs_[k * D_ + d];
                detail::quantize_rows_uint8(seq.data(), T * B, I, w.p_ih.kp, px, a);
                int8_gemm(a.data(), T * B, w.p_ih,
                          {.c = gx.data(), .a_scale = px.scale, .a_zero_point = px.zero_point, .w_scale = w.s_ih.data(),
                           .bias = w.bias.data()});
                std::fill(c.begin(), c.end(), 0.0f);
                std::fill(h.begin(), h.end(), 0.0f);
                for (std::size_t step = 0; step < T; ++step) {
                    const std::size_t t = d ? T - 1 - step : step;
                    const auto [hlo, hhi] = detail::min_max(h.data(), h.size());
                    const auto ph = choose_uint8_params(hlo, hhi);
                    detail::quantize_rows_uint8(h.data(), B, H_, w.p_hh.kp, ph, a);
                    int8_gemm(a.data(), B, w.p_hh,
                              {.c = gh.data(), .a_scale = ph.scale, .a_zero_point = ph.zero_point, .w_scale = w.s_hh.data()});
                    for (std::size_t b = 0; b < B; ++b) {
                        const float* xg = gx.data() + (t * B + b) * G;
                        const float* hg = gh.data() + b * G;
                        for (std::size_t j = 0; j < H_; ++j) {
                            const float i = sigmoid(xg[j] + hg[j]), f = sigmoid(xg[H_ + j] + hg[H_ + j]);
                            const float g = std::tanh(xg[2 * H_ + j] + hg[2 * H_ + j]);
                            const float o = sigmoid(xg[3 * H_ + j] + hg[3 * H_ + j]);
                            float& cc = c[b * H_ + j];
                            cc = f * cc + i * g;
                            h[b * H_ + j] = o * std::tanh(cc);
                        }
                        std::copy_n(h.data() + b * H_, H_, y.data() + (t * B + b) * D_ * H_ + d * H_);
                    }
                }
                std::copy(h.begin(), h.end(), r.h_n.data() + (k * D_ + d) * B * H_);
                std::copy(c.begin(), c.end(), r.c_n.data() + (k * D_ + d) * B * H_);
            }
            seq = std::move(y);
        }
        r.output = batch_first_ ? transpose01(seq) : std::move(seq);
        return r;
    }

    template <class F>
    void for_each_member(F&& f) {
        for (auto& w : dirs_) {
            w.names[0] = "weight_ih" + w.sfx;
            w.names[1] = "weight_ih_scale" + w.sfx;
            w.names[2] = "weight_hh" + w.sfx;
            w.names[3] = "weight_hh_scale" + w.sfx;
            w.names[4] = "bias" + w.sfx;
            f(w.names[0].c_str(), w.w_ih);
            f(w.names[1].c_str(), w.s_ih);
            f(w.names[2].c_str(), w.w_hh);
            f(w.names[3].c_str(), w.s_hh);
            f(w.names[4].c_str(), w.bias);
        }
    }

private:
    struct dir_weights {
        std::string sfx;
        std::string names[5];
        tensor<std::int8_t> w_ih, w_hh;
        tensor<float> s_ih, s_hh, bias;
        packed_int8_weights p_ih, p_hh;
    };

    static float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }
    /// {A, B, C} -> {B, A, C}, contiguous.
    static tensor<float> transpose01(const tensor<float>& t) {
        const std::size_t A = t.shape()[0], Bn = t.shape()[1], C = t.shape()[2];
        auto o = tensor<float>::uninitialized({Bn, A, C});
        for (std::size_t i = 0; i < A; ++i)
            for (std::size_t j = 0; j < Bn; ++j) std::copy_n(t.data() + (i * Bn + j) * C, C, o.data() + (j * A + i) * C);
        return o;
    }

    std::size_t H_, in_, L_, D_;
    bool batch_first_;
    std::vector<dir_weights> dirs_;
};

/// A conv2d with int8 weights and statically quantized uint8 inputs (groups = 1). Until
/// quant::convert, forward observes the input range (a min/max observer) and quantizes each
/// input with its own range; afterwards it uses the observed range. Members: weight
/// {out, in, kh, kw} int8, scale {out}, bias {out}, input_range {2} (observed min, max).
class quantized_conv2d : public nn::module<quantized_conv2d> {
public:
    static constexpr const char* kind = "quantized_conv2d";
    tensor<std::int8_t> weight;
    tensor<float> scale, bias, input_range;

    explicit quantized_conv2d(const nn::conv2d<float>& c) : opt_(c.options()) {
        const std::string label = nn::detail::layer_label(c);
        if (opt_.groups != 1)
            throw value_error("quant: " + label + ": quantized conv2d supports groups = 1 only, got groups = " +
                              std::to_string(opt_.groups));
        const shape_t& ws = c.weight.shape();
        weight = tensor<std::int8_t>::uninitialized(ws);
        scale = tensor<float>::uninitialized({ws[0]});
        bias = c.bias.value().clone();
        input_range = full<float>({2}, std::numeric_limits<float>::quiet_NaN());
        const auto w = c.weight.value().contiguous();
        detail::quantize_rows(w.data(), ws[0], ws[1] * ws[2] * ws[3], weight.data(), scale.data());
        this->set_path(c.path());
        repack();
    }

    /// True once convert() fixed the input range.
    bool calibrated() const { return calibrated_; }

    /// Ends calibration: the input scale and zero point come from the observed range from now on.
    void freeze() {
        if (std::isnan(input_range.data()[0]))
            throw value_error("quant::convert: " + nn::detail::layer_label(*this) +
                              " has observed no input: run calibration batches through the model first");
        calibrated_ = true;
    }
    void repack() {
        const shape_t& ws = weight.shape();
        packed_ = packed_int8_weights(weight.data(), ws[0], ws[1] * ws[2] * ws[3]);
        calibrated_ = !std::isnan(input_range.data()[0]) && calibrated_;
    }
    /// After loading a converted model: fixed input range if the file had one.
    void set_calibrated(bool on) { calibrated_ = on && !std::isnan(input_range.data()[0]); }

    template <operand X>
    tensor<float> forward(X&& x) {
        auto in = detail::host_input(std::forward<X>(x));
        const shape_t& s = in.shape();
        const shape_t& ws = weight.shape();
        if (s.size() != 4 || s[1] != ws[1])
            throw shape_error("expected input of shape {N, " + std::to_string(ws[1]) + ", H, W}, got " + to_string(s));
        uint8_params p;
        if (calibrated_) {
            p = choose_uint8_params(input_range.data()[0], input_range.data()[1]);
        } else {
            auto [lo, hi] = detail::min_max(in.data(), in.size());
            p = choose_uint8_params(lo, hi);
            float* r = input_range.data();
            r[0] = std::isnan(r[0]) ? lo : std::min(r[0], lo);
            r[1] = std::isnan(r[1]) ? hi : std::max(r[1], hi);
        }
        const auto N = static_cast<std::ptrdiff_t>(s[0]), C = static_cast<std::ptrdiff_t>(s[1]),
                   H = static_cast<std::ptrdiff_t>(s[2]), W = static_cast<std::ptrdiff_t>(s[3]);
        const auto OC = static_cast<std::ptrdiff_t>(ws[0]), KH = static_cast<std::ptrdiff_t>(ws[2]),
                   KW = static_cast<std::ptrdiff_t>(ws[3]);
        const std::ptrdiff_t OH = (H + 2 * opt_.padding.h - opt_.dilation.h * (KH - 1) - 1) / opt_.stride.h + 1;
        const std::ptrdiff_t OW = (W + 2 * opt_.padding.w - opt_.dilation.w * (KW - 1) - 1) / opt_.stride.w + 1;
        if (OH < 1 || OW < 1)
            throw shape_error("input " + to_string(s) + " is smaller than the kernel " + to_string(ws));
        // quantize the input once, then im2col in uint8 (padding is real 0, i.e. the zero point)
        std::vector<std::uint8_t> xq(in.size());
        for (std::size_t i = 0; i < in.size(); ++i) xq[i] = quantize_uint8(in.data()[i], p);
        const std::size_t M = static_cast<std::size_t>(OH * OW), kp = packed_.kp;
        auto out = tensor<float>::uninitialized({s[0], ws[0], static_cast<std::size_t>(OH), static_cast<std::size_t>(OW)});
        // one GEMM over the whole batch: rows (n, oh, ow), so threads split a large M
        const std::size_t rows = static_cast<std::size_t>(N) * M;
        a_.assign(rows * kp, 0);
        for (std::ptrdiff_t n = 0; n < N; ++n) {
            const std::uint8_t* xs = xq.data() + n * C * H * W;
            for (std::ptrdiff_t oh = 0; oh < OH; ++oh)
                for (std::ptrdiff_t ow = 0; ow < OW; ++ow) {
                    std::uint8_t* row = a_.data() + (static_cast<std::size_t>(n) * M + static_cast<std::size_t>(oh * OW + ow)) * kp;
                    for (std::ptrdiff_t c = 0; c < C; ++c)
                        for (std::ptrdiff_t kh = 0; kh < KH; ++kh)
                            for (std::ptrdiff_t kw = 0; kw < KW; ++kw) {
                                const std::ptrdiff_t ih = oh * opt_.stride.h - opt_.padding.h + kh * opt_.dilation.h;
                                const std::ptrdiff_t iw = ow * opt_.stride.w - opt_.padding.w + kw * opt_.dilation.w;
                                const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
                                *row++ = inside ? xs[(c * H + ih) * W + iw] : static_cast<std::uint8_t>(p.zero_point);
                            }
                }
        }
        std::vector<float> tile(rows * static_cast<std::size_t>(OC));
        int8_gemm(a_.data(), rows, packed_,
                  {.c = tile.data(), .a_scale = p.scale, .a_zero_point = p.zero_point, .w_scale = scale.data(),
                   .bias = bias.data()});
        for (std::ptrdiff_t n = 0; n < N; ++n) {  // {n, m, oc} -> {n, oc, m}
            float* o = out.data() + static_cast<std::size_t>(n * OC) * M;
            const float* t = tile.data() + static_cast<std::size_t>(n) * M * static_cast<std::size_t>(OC);
            for (std::size_t m = 0; m < M; ++m)
                for (std::ptrdiff_t oc = 0; oc < OC; ++oc) o[static_cast<std::size_t>(oc) * M + m] = t[m * OC + oc];
        }
        return out;
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
        f("scale", scale);
        f("bias", bias);
        f("input_range", input_range);
    }

private:
    xgrad::conv2d_options opt_;
    packed_int8_weights packed_;
    std::vector<std::uint8_t> a_;
    bool calibrated_ = false;
};

namespace detail {

// The quantized model's type: each layer mapped, sequentials recursively.
template <class L, bool Static>
struct quantized_type {
    using type = L;
};
template <bool Static>
struct quantized_type<nn::linear<float>, Static> {
    using type = quantized_linear;
};
template <bool Static>
struct quantized_type<nn::lstm<float>, Static> {
    using type = quantized_lstm;
};
template <>
struct quantized_type<nn::conv2d<float>, true> {
    using type = quantized_conv2d;
};
template <class... L, bool Static>
struct quantized_type<nn::sequential<L...>, Static> {
    using type = nn::sequential<typename quantized_type<L, Static>::type...>;
};

template <class L, bool Static>
auto quantize(const L& m, const char* fn) {
    using Q = typename quantized_type<L, Static>::type;
    if constexpr (std::is_same_v<Q, L>)
        throw value_error(std::string("quant::") + fn + ": " + nn::detail::layer_label(m) + " has no layer to quantize");
    else
        return Q(m);
}

struct freezer {
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string&, L& l) {
        if constexpr (std::is_same_v<L, quantized_conv2d>) l.freeze();
    }
};

/// Every tensor of a model by dotted name (parameters' values and buffers of any type).
struct tensor_collector {
    std::vector<io::named_tensor> out;
    template <class P>
    void on_parameter(const std::string& path, const P& p) {
        out.push_back({path, p.value(), ""});
    }
    template <class B>
    void on_buffer(const std::string& path, const B& t) {
        if constexpr (io::safetensors_element<typename B::value_type>) out.push_back({path, t, ""});
    }
    template <class L>
    void on_layer(const std::string&, L&) {}
};

struct repacker {
    bool calibrated;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string&, L& l) {
        if constexpr (std::is_same_v<L, quantized_linear> || std::is_same_v<L, quantized_lstm>) l.repack();
        if constexpr (std::is_same_v<L, quantized_conv2d>) {
            l.repack();
            l.set_calibrated(calibrated);
        }
    }
};

}  // namespace detail

/// The model with every nn::linear<float> replaced by a quantized_linear and every
/// nn::lstm<float> by a quantized_lstm (dynamic quantization). value_error naming the model when
/// it holds neither.
template <nn::layer M>
auto quantize_dynamic(const M& model) {
    return detail::quantize<M, false>(model, "quantize_dynamic");
}

/// The model with linear -> quantized_linear and conv2d -> quantized_conv2d (observing): run a
/// few calibration batches through it, then call convert(). value_error naming the layer for a
/// conv2d it cannot quantize (groups > 1).
template <nn::layer M>
auto prepare_static(const M& model) {
    return detail::quantize<M, true>(model, "prepare_static");
}

/// Ends calibration: every quantized_conv2d uses the input range it observed. value_error
/// naming a layer that observed nothing.
template <nn::layer M>
M& convert(M& model) {
    detail::freezer v;
    nn::detail::walk(model, std::string{}, v);
    return model;
}

/// Saves a (quantized) model: every parameter and buffer under its dotted name in its own
/// dtype (int8 weights as I8, scales as F32), atomically.
template <nn::layer M>
void save(M& model, const std::filesystem::path& path) {
    detail::tensor_collector v;
    nn::detail::walk(model, std::string{}, v);
    io::save_safetensors(path, v.out, {{"format", "pt"}, {"quantization", "xgrad-int8"}});
}

/// Loads what save() wrote into a model of the same structure (e.g. prepare_static(float_model)
/// or quantize_dynamic(float_model)); the loaded model is converted. value_error listing every
/// missing, mismatched (shape or dtype) or unexpected tensor, before anything is changed.
template <nn::layer M>
void load(M& model, const std::filesystem::path& path) {
    const auto file = io::load_safetensors(path);
    detail::tensor_collector v;
    nn::detail::walk(model, std::string{}, v);
    std::string problems;
    auto add = [&](const std::string& s) { problems += (problems.empty() ? "" : "; ") + s; };
    for (auto& dst : v.out) {
        const auto* src = file.find(dst.name);
        if (!src) {
            add("missing " + dst.name);
            continue;
        }
        const bool same = std::visit(
            [](const auto& a, const auto& b) {
                return std::is_same_v<std::remove_cvref_t<decltype(a)>, std::remove_cvref_t<decltype(b)>> &&
                       a.shape() == b.shape();
            },
            src->value, dst.value);
        if (!same) add(dst.name + ": dtype or shape differs from the model's");
    }
    for (auto& t : file.tensors) {
        bool known = false;
        for (auto& dst : v.out) known = known || dst.name == t.name;
        if (!known) add("unexpected " + t.name);
    }
    if (!problems.empty()) throw value_error(path.string() + ": the file does not match the model: " + problems);
    for (auto& dst : v.out)
        std::visit(
            [&](const auto& d) {
                using D = std::remove_cvref_t<decltype(d)>;
                d.assign(std::get<D>(file.find(dst.name)->value));
            },
            dst.value);
    detail::repacker r{true};
    nn::detail::walk(model, std::string{}, r);
}

}  // namespace xgrad::quant
