#pragma once
// Recurrent layers, as torch.nn.LSTM and torch.nn.GRU: multi-layer, bidirectional,
// batch_first, initial states, dropout between layers, variable-length batches. Parameters
// carry PyTorch's names and layouts (weight_ih_l0 {G*H, in}, weight_hh_l0 {G*H, H},
// bias_ih_l0, bias_hh_l0 {G*H}, "_reverse" for the backward direction; G = 4 for the LSTM's
// gates i, f, g, o and 3 for the GRU's r, z, n), so a PyTorch state_dict loads as it is.
// Initialisation as PyTorch: every parameter ~ U(-k, k), k = 1 / sqrt(hidden_size).
// The whole stack runs as one node (ops/rnn.hpp): one GEMM per step and direction for the
// recurrence and one fused pass for all gate math, forward and backward. On a device
// (nn::lstm<float, Device>, or xgrad::to<Device>(model)) the parameters live there and the
// node runs the device's kernels (backend/thrust/ops_rnn.hpp); lengths stay on the host.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../ops/rnn.hpp"
#include "init.hpp"
#include "module.hpp"
#include "transfer.hpp"

namespace xgrad {

/// What nn::lstm returns: the sequence output {T, B, D*H} ({B, T, D*H} batch_first) and the
/// final states {num_layers * D, B, H} (layer-major, forward direction first, as PyTorch).
template <class N>
struct lstm_output {
    N output, h_n, c_n;
};
/// What nn::gru returns.
template <class N>
struct gru_output {
    N output, h_n;
};

namespace nn {

struct rnn_options {
    std::size_t num_layers = 1;
    bool bidirectional = false;
    bool batch_first = false;
    double dropout = 0;  // on the outputs of every layer but the last, in training
};

template <class T, rnn_kind Kind, class Device = device::cpu>
class recurrent : public module<recurrent<T, Kind, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::lstm/gru<T>: T must be float or double");

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = Kind == rnn_kind::lstm ? "lstm" : "gru";

    recurrent(std::size_t input_size, std::size_t hidden_size, const rnn_options& o = {},
              rng& gen = default_generator())
        : gen_(gen.split()) {
        if (input_size == 0 || hidden_size == 0 || o.num_layers == 0)
            throw value_error(std::string(kind) + ": input_size, hidden_size and num_layers must be > 0, got " +
                              std::to_string(input_size) + ", " + std::to_string(hidden_size) + ", " +
                              std::to_string(o.num_layers));
        if (!(o.dropout >= 0 && o.dropout < 1))
            throw value_error(std::string(kind) + ": dropout must be in [0, 1), got " + std::to_string(o.dropout));
        spec_.kind = Kind;
        spec_.input_size = input_size;
        spec_.hidden_size = hidden_size;
        spec_.num_layers = o.num_layers;
        spec_.bidirectional = o.bidirectional;
        spec_.batch_first = o.batch_first;
        dropout_ = o.dropout;
        const std::size_t G = spec_.gates() * hidden_size, D = spec_.dirs();
        const double k = 1.0 / std::sqrt(static_cast<double>(hidden_size));
        for (std::size_t l = 0; l < o.num_layers; ++l)
            for (std::size_t d = 0; d < D; ++d) {
                const std::size_t in = l == 0 ? input_size : D * hidden_size;
                const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
                const shape_t shapes[4] = {{G, in}, {G, hidden_size}, {G}, {G}};
                const char* base[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
                for (int i = 0; i < 4; ++i) {
                    auto p = xgrad::param(tensor<T>::uninitialized(shapes[i]));
                    init::uniform(p, gen, -k, k);  // drawn on the host, as on the CPU
                    params_.push_back(xgrad::to<Device>(p));
                    names_.push_back(base[i] + sfx);
                }
            }
    }

    /// The same layer on another device (parameters copied, same training mode).
    template <class From>
    explicit recurrent(const recurrent<T, Kind, From>& o)
        : spec_(o.spec_), dropout_(o.dropout_), gen_(o.gen_), names_(o.names_) {
        for (const auto& p : o.params_) params_.push_back(xgrad::to<Device>(p));
        this->set_training(o.is_training());
    }

    std::size_t input_size() const { return spec_.input_size; }
    std::size_t hidden_size() const { return spec_.hidden_size; }
    std::size_t num_layers() const { return spec_.num_layers; }
    bool bidirectional() const { return spec_.bidirectional; }
    bool batch_first() const { return spec_.batch_first; }
    double dropout() const { return dropout_; }

    /// weight_ih_l{layer}[_reverse] and its siblings.
    parameter<T, Device>& weight_ih(std::size_t layer, bool reverse = false) { return at(layer, reverse, 0); }
    parameter<T, Device>& weight_hh(std::size_t layer, bool reverse = false) { return at(layer, reverse, 1); }
    parameter<T, Device>& bias_ih(std::size_t layer, bool reverse = false) { return at(layer, reverse, 2); }
    parameter<T, Device>& bias_hh(std::size_t layer, bool reverse = false) { return at(layer, reverse, 3); }

    /// Zero initial states.
    template <operand X>
    auto forward(X&& x) {
        auto h0 = zero_state(x), c0 = zero_state(x);
        return run(as_expr(std::forward<X>(x)), std::move(h0), std::move(c0), std::nullopt);
    }
    /// Zero initial states; lengths {B} (int64, each in [1, T]) for a padded batch.
    template <operand X>
    auto forward(X&& x, const tensor<std::int64_t>& lengths) {
        auto h0 = zero_state(x), c0 = zero_state(x);
        return run(as_expr(std::forward<X>(x)), std::move(h0), std::move(c0), lengths);
    }
    /// GRU with initial state h0 {num_layers * D, B, H}.
    template <operand X, operand H0>
        requires(Kind == rnn_kind::gru && std::is_same_v<typename expr_t<H0>::value_type, T>)
    auto forward(X&& x, H0&& h0, std::optional<tensor<std::int64_t>> lengths = std::nullopt) {
        auto z = zero_state(x);
        return run(as_expr(std::forward<X>(x)), as_expr(std::forward<H0>(h0)), std::move(z), std::move(lengths));
    }
    /// LSTM with initial states h0, c0 {num_layers * D, B, H}.
    template <operand X, operand H0, operand C0>
        requires(Kind == rnn_kind::lstm && std::is_same_v<typename expr_t<H0>::value_type, T>)
    auto forward(X&& x, H0&& h0, C0&& c0, std::optional<tensor<std::int64_t>> lengths = std::nullopt) {
        return run(as_expr(std::forward<X>(x)), as_expr(std::forward<H0>(h0)), as_expr(std::forward<C0>(c0)),
                   std::move(lengths));
    }

    template <class F>
    void for_each_member(F&& f) {
        for (std::size_t i = 0; i < params_.size(); ++i) f(names_[i].c_str(), params_[i]);
    }

private:
    template <class, rnn_kind, class>
    friend class recurrent;

    parameter<T, Device>& at(std::size_t layer, bool reverse, int which) {
        if (layer >= spec_.num_layers || (reverse && !spec_.bidirectional))
            throw value_error(std::string(kind) + ": no layer " + std::to_string(layer) + (reverse ? " (reverse)" : ""));
        return params_[4 * (layer * spec_.dirs() + (reverse ? 1 : 0)) + static_cast<std::size_t>(which)];
    }

    /// Zeros of the state shape for input x (the batch extent read from x's shape).
    template <class X>
    tensor_node<T, Device> zero_state(const X& x) const {
        const shape_t s = as_expr(x).shape();
        const std::size_t B = s.size() == 3 ? (spec_.batch_first ? s[0] : s[1]) : 0;
        return tensor_node<T, Device>(zeros<T, Device>({spec_.num_layers * spec_.dirs(), B, spec_.hidden_size}));
    }

    template <class X, class H0, class C0>
    auto run(X x, H0 h0, C0 c0, std::optional<tensor<std::int64_t>> lengths) {
        auto o = xgrad::detail::make_rnn<T>(spec_, std::move(x), std::move(h0), std::move(c0), params_, std::move(lengths),
                                     dropout_, this->is_training(), &gen_);
        using N = typename decltype(o)::value_type;
        if constexpr (Kind == rnn_kind::lstm)
            return lstm_output<N>{o[0], o[1], o[2]};
        else
            return gru_output<N>{o[0], o[1]};
    }

    rnn_spec spec_;
    double dropout_ = 0;
    rng gen_;
    std::vector<parameter<T, Device>> params_;
    std::vector<std::string> names_;
};

/// torch.nn.LSTM: gates i, f, g, o; c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
template <class T = float, class Device = device::cpu>
using lstm = recurrent<T, rnn_kind::lstm, Device>;
/// torch.nn.GRU: gates r, z, n; n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h_t = (1 - z) n + z h_{t-1}.
template <class T = float, class Device = device::cpu>
using gru = recurrent<T, rnn_kind::gru, Device>;

/// to<Device>(model) for the recurrent layers.
template <class T, rnn_kind Kind, class D, class To>
struct on_device<recurrent<T, Kind, D>, To> {
    using type = recurrent<T, Kind, To>;
};

}  // namespace nn
}  // namespace xgrad
