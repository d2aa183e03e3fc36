#pragma once
// LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014) over a whole sequence, in
// PyTorch's formulation and parameter layout, as one barrier node whose backward runs
// back-propagation through time itself.
//
// Per layer and direction, with G = 4H (LSTM: gates i, f, g, o) or 3H (GRU: r, z, n):
//   forward:  X W_ih^T + b_ih for all T steps at once (one GEMM), then per step one product
//             h_{t-1} W_hh^T and ONE fused elementwise pass for every gate, c_t, h_t and y_t;
//   backward: per step ONE fused elementwise pass (all gate derivatives, dc_{t-1}, the direct
//             part of dh_{t-1}, the bias gradients) and one product dG_t W_hh; then for all
//             steps at once dW_ih, dW_hh, dX (three GEMMs).
// The per-step products use W_hh packed once per call (detail/rnn_kernels.hpp) and run on a
// team of threads that each own a slice of the hidden units: one barrier per step.
// The pass stores the activated gates (LSTM also c_t) per step; tanh(c_t) is recomputed.
//
// Variable-length batches (lengths, like pack_padded_sequence): for a sequence of length L_b,
// steps t >= L_b leave the state unchanged and output zeros, so the final states are those of
// the last valid step and the reverse direction starts at step L_b - 1 from h0.
#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../autodiff/pass.hpp"
#include "../backend/cpu/gemm.hpp"
#include "../core/rng.hpp"
#include "../detail/vmath.hpp"
#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"
#include "detail/rnn_kernels.hpp"

namespace xgrad {

enum class rnn_kind { lstm, gru };

/// The shape of a recurrent stack (nn::lstm / nn::gru options plus the run's mode).
struct rnn_spec {
    rnn_kind kind = rnn_kind::lstm;
    std::size_t input_size = 0, hidden_size = 0, num_layers = 1;
    bool bidirectional = false, batch_first = false;
    bool cell = false;  // one step, x {B, in}, states {B, H} (lstm_cell / gru_cell)
    std::size_t dirs() const { return bidirectional ? 2 : 1; }
    std::size_t gates() const { return kind == rnn_kind::lstm ? 4 : 3; }
    const char* name() const {
        if (cell) return kind == rnn_kind::lstm ? "lstm_cell" : "gru_cell";
        return kind == rnn_kind::lstm ? "lstm" : "gru";
    }
};

namespace detail {

template <class T, class V>
XGRAD_HD XGRAD_INLINE V rnn_sigmoid(V x) {
    return V(T(1)) / (V(T(1)) + vm::exp(-x));
}
template <class T, class V>
XGRAD_HD XGRAD_INLINE V rnn_tanh(V x) {
    return vm::tanh(x);
}

// --- the gate formulas of one element (j of a row), called by the step structs below (run by the
// CPU's SIMD driver and the device kernel); V is T or a SIMD batch of T --------------------------

/// One LSTM element after a step: the activated gates, c_t and h_t.
template <class V>
struct lstm_gates {
    V i, f, g, o, c, h;
};

/// From the pre-activations a (both projections and both biases) and c_{t-1}:
/// i, f, o = sigma(a), g = tanh(a_g), c = f c' + i g, h = o tanh(c).
template <class T, class V>
XGRAD_HD XGRAD_INLINE lstm_gates<V> lstm_gate_forward(V ai, V af, V ag, V ao, V cp) {
    const V i = rnn_sigmoid<T>(ai), f = rnn_sigmoid<T>(af), g = rnn_tanh<T>(ag), o = rnn_sigmoid<T>(ao);
    const V c = f * cp + i * g;
    return {i, f, g, o, c, V(o * rnn_tanh<T>(c))};
}

/// The pre-activation gradients of one LSTM element and dc_{t-1}.
template <class V>
struct lstm_gate_grads {
    V di, df, dg, dout, dcp;
};

/// From the saved gates, c_t, c_{t-1}, d (the gradient reaching h_t) and dc (reaching c_t):
///   dc += d o (1 - tanh^2 c);  di = dc g i(1-i);  df = dc c' f(1-f);  dg = dc i (1-g^2);
///   do = d tanh(c) o(1-o);  dc' = dc f
template <class T, class V>
XGRAD_HD XGRAD_INLINE lstm_gate_grads<V> lstm_gate_backward(V i, V f, V g, V o, V c, V cp, V d, V dc) {
    const V one(T(1));
    const V tc = rnn_tanh<T>(c);
    const V dct = dc + d * o * (one - tc * tc);
    return {V(dct * g * i * (one - i)), V(dct * cp * f * (one - f)), V(dct * i * (one - g * g)),
            V(d * tc * o * (one - o)), V(dct * f)};
}

/// One GRU element after a step: r, z, n, m = W_hn h' + b_hn, and h_t.
template <class V>
struct gru_gates {
    V r, z, n, m, h;
};

/// From the summed pre-activations a_r, a_z (both projections, both biases), the input part of
/// n (xn = W_in x + b_in), m and h': r, z = sigma(a), n = tanh(xn + r m), h = (1 - z) n + z h'.
template <class T, class V>
XGRAD_HD XGRAD_INLINE gru_gates<V> gru_gate_forward(V ar, V az, V xn, V m, V hp) {
    const V r = rnn_sigmoid<T>(ar), z = rnn_sigmoid<T>(az);
    const V n = rnn_tanh<T>(V(xn + r * m));
    return {r, z, n, m, V((V(T(1)) - z) * n + z * hp)};
}

/// The gradients of one GRU element: of the input projection's pre-activations (dr, dz, dn),
/// the recurrent projection's n block (dn r) and the direct part of dh' (d z).
template <class V>
struct gru_gate_grads {
    V dr, dz, dn, dnr, dhp;
};

///   dn = d (1-z) (1-n^2);  dz = d (h' - n) z(1-z);  dr = dn m r(1-r)
template <class T, class V>
XGRAD_HD XGRAD_INLINE gru_gate_grads<V> gru_gate_backward(V r, V z, V n, V m, V hp, V d) {
    const V one(T(1));
    const V dn = d * (one - z) * (one - n * n);
    const V dz = d * (hp - n) * z * (one - z);
    const V dr = dn * m * r * (one - r);
    return {dr, dz, dn, V(dn * r), V(d * z)};
}

// --- one step of a cell: the element (b, j) of {B, H} -----------------------------------------
// A step struct (lstm_forward_step, ...) holds one step's pointers and supplies, V-wide at
// unit j of row b:
//   valid<V>(b, j)   the gate formula: activations or gradients, state, y;
//   padded<V>(b, j)  row b is padding at this step (t >= len[b]): forward the state passes
//                    through and y is 0; backward the gate gradients are 0 and dh passes on.
// Row strides are the full widths (4H or 3H for gate rows, 4H for act, H for states, ldy for y);
// a CPU thread's pointers start at its first unit, so j counts from there. The backends supply
// only the driver: rnn_step_rows below (the CPU: SIMD along a row's units) and the device
// kernel of backend/thrust/ops_rnn.hpp (one element per position).

/// Whether row b is padding at step t (len null: no row is).
struct rnn_step_at {
    const std::int64_t* len;
    std::size_t t;
    XGRAD_HD XGRAD_INLINE bool padded(std::size_t b) const { return len && static_cast<std::int64_t>(t) >= len[b]; }
};

/// Stores v_0, v_1, ... at p, p + H, p + 2H, ... (one unit of consecutive gate blocks).
template <class V, class T, class... Vs>
XGRAD_HD XGRAD_INLINE void store_blocks(T* p, std::size_t H, Vs... v) {
    std::size_t q = 0;
    ((store(V(v), p + H * q++)), ...);
}
/// Adds v_0, v_1, ... into p, p + H, ... (the bias gradients).
template <class V, class T, class... Vs>
XGRAD_HD XGRAD_INLINE void add_blocks(T* p, std::size_t H, Vs... v) {
    std::size_t q = 0;
    ((store(V(load<V>(p + H * q) + v), p + H * q), ++q), ...);
}
/// Zeroes N gate blocks of one unit.
template <class V, std::size_t N, class T>
XGRAD_HD XGRAD_INLINE void zero_blocks(T* p, std::size_t H) {
    for (std::size_t q = 0; q < N; ++q) store(V(T(0)), p + H * q);
}
/// A valid row's new state going forward: h_t = y_t = v.
template <class V, class T>
XGRAD_HD XGRAD_INLINE void rnn_put_state(V v, T* h, T* y) {
    store(v, h);
    store(v, y);
}
/// A padded row going forward: h_t = h_{t-1}, y_t = 0.
template <class V, class T>
XGRAD_HD XGRAD_INLINE void rnn_hold_state(const T* hp, T* h, T* y) {
    store(load<V>(hp), h);
    store(V(T(0)), y);
}
/// The gradient reaching h_t: from step t+1 plus y_t's (dy null: none).
template <class V, class T>
XGRAD_HD XGRAD_INLINE V rnn_upstream(const T* dh, const T* dy) {
    V d = load<V>(dh);
    if (dy) d += load<V>(dy);
    return d;
}

/// LSTM forward step: a = sigma/tanh(xg + hg) (xg holds both biases), c = f c' + i g,
/// h = o tanh(c). xg, hg {B, 4H}; hp, cp {B, H}. Writes act {B, 4H}, c, h {B, H}, y.
template <class T>
struct lstm_forward_step {
    using value_type = T;
    std::size_t H, ldy;
    const T *xg, *hg, *hp, *cp;
    T *act, *c, *h, *y;
    template <class V>
    XGRAD_HD XGRAD_INLINE void valid(std::size_t b, std::size_t j) const {
        const std::size_t G = 4 * H, k = b * H + j;
        const T *xr = xg + b * G + j, *hr = hg + b * G + j;
        const auto s = lstm_gate_forward<T>(V(load<V>(xr) + load<V>(hr)), V(load<V>(xr + H) + load<V>(hr + H)),
                                            V(load<V>(xr + 2 * H) + load<V>(hr + 2 * H)),
                                            V(load<V>(xr + 3 * H) + load<V>(hr + 3 * H)), load<V>(cp + k));
        store_blocks<V>(act + b * G + j, H, s.i, s.f, s.g, s.o);
        store(s.c, c + k);
        rnn_put_state<V>(s.h, h + k, y + b * ldy + j);
    }
    template <class V>
    XGRAD_HD XGRAD_INLINE void padded(std::size_t b, std::size_t j) const {
        const std::size_t k = b * H + j;
        rnn_hold_state<V>(hp + k, h + k, y + b * ldy + j);
        store(load<V>(cp + k), c + k);
    }
};

/// LSTM backward step. In: act, cp, c as saved; dh (the gradient reaching h_t from step t+1),
/// dy (row stride ldy, may be null), dc (reaching c_t; overwritten with dc_{t-1}). Out: dg
/// {B, 4H} (pre-activation gate gradients, also summed into db {4H} unless db is null),
/// carry {B, H} (the part of dh_{t-1} that bypasses W_hh: dh on padded rows, else 0).
template <class T>
struct lstm_backward_step {
    using value_type = T;
    std::size_t H, ldy;
    const T *act, *cp, *c, *dh, *dy;
    T *dc, *dg, *db, *carry;
    template <class V>
    XGRAD_HD XGRAD_INLINE void valid(std::size_t b, std::size_t j) const {
        const std::size_t G = 4 * H, k = b * H + j;
        const V d = rnn_upstream<V>(dh + k, dy ? dy + b * ldy + j : nullptr);
        const T* ar = act + b * G + j;
        const auto s = lstm_gate_backward<T>(load<V>(ar), load<V>(ar + H), load<V>(ar + 2 * H), load<V>(ar + 3 * H),
                                             load<V>(c + k), load<V>(cp + k), d, load<V>(dc + k));
        store_blocks<V>(dg + b * G + j, H, s.di, s.df, s.dg, s.dout);
        if (db) add_blocks<V>(db + j, H, s.di, s.df, s.dg, s.dout);
        store(s.dcp, dc + k);
        store(V(T(0)), carry + k);
    }
    template <class V>
    XGRAD_HD XGRAD_INLINE void padded(std::size_t b, std::size_t j) const {
        const std::size_t k = b * H + j;
        zero_blocks<V, 4>(dg + b * 4 * H + j, H);
        store(load<V>(dh + k), carry + k);
    }
};

/// GRU forward step (PyTorch): r = sigma(xr + hr + b_hr), z = sigma(xz + hz + b_hz),
/// m = hn + b_hn, n = tanh(xn + r m), h = (1 - z) n + z h'. xg (holding b_ih only), hg
/// {B, 3H}; bhh {3H}; hp {B, H}. Writes act {B, 4H} = (r, z, n, m), h, y.
template <class T>
struct gru_forward_step {
    using value_type = T;
    std::size_t H, ldy;
    const T *xg, *hg, *bhh, *hp;
    T *act, *h, *y;
    template <class V>
    XGRAD_HD XGRAD_INLINE void valid(std::size_t b, std::size_t j) const {
        const std::size_t G = 3 * H, k = b * H + j;
        const T *xr = xg + b * G + j, *hr = hg + b * G + j, *br = bhh + j;
        const auto s = gru_gate_forward<T>(V(load<V>(xr) + load<V>(hr) + load<V>(br)),
                                           V(load<V>(xr + H) + load<V>(hr + H) + load<V>(br + H)), load<V>(xr + 2 * H),
                                           V(load<V>(hr + 2 * H) + load<V>(br + 2 * H)), load<V>(hp + k));
        store_blocks<V>(act + b * 4 * H + j, H, s.r, s.z, s.n, s.m);
        rnn_put_state<V>(s.h, h + k, y + b * ldy + j);
    }
    template <class V>
    XGRAD_HD XGRAD_INLINE void padded(std::size_t b, std::size_t j) const {
        const std::size_t k = b * H + j;
        rnn_hold_state<V>(hp + k, h + k, y + b * ldy + j);
    }
};

/// GRU backward step. Out: dgx {B, 3H} (gradient of the input projection: dr, dz, dn
/// pre-activation, summed into dbx), dgh {B, 3H} (of the recurrent projection: dr, dz, dn r,
/// summed into dbh; dbx and dbh null: not summed), carry = dh z (dh on padded rows).
template <class T>
struct gru_backward_step {
    using value_type = T;
    std::size_t H, ldy;
    const T *act, *hp, *dh, *dy;
    T *dgx, *dgh, *dbx, *dbh, *carry;
    template <class V>
    XGRAD_HD XGRAD_INLINE void valid(std::size_t b, std::size_t j) const {
        const std::size_t G = 3 * H, k = b * H + j;
        const V d = rnn_upstream<V>(dh + k, dy ? dy + b * ldy + j : nullptr);
        const T* ar = act + b * 4 * H + j;
        const auto s = gru_gate_backward<T>(load<V>(ar), load<V>(ar + H), load<V>(ar + 2 * H), load<V>(ar + 3 * H),
                                            load<V>(hp + k), d);
        store_blocks<V>(dgx + b * G + j, H, s.dr, s.dz, s.dn);
        store_blocks<V>(dgh + b * G + j, H, s.dr, s.dz, s.dnr);
        if (dbx) {
            add_blocks<V>(dbx + j, H, s.dr, s.dz, s.dn);
            add_blocks<V>(dbh + j, H, s.dr, s.dz, s.dnr);
        }
        store(s.dhp, carry + k);
    }
    template <class V>
    XGRAD_HD XGRAD_INLINE void padded(std::size_t b, std::size_t j) const {
        const std::size_t G = 3 * H, k = b * H + j;
        zero_blocks<V, 3>(dgx + b * G + j, H);
        zero_blocks<V, 3>(dgh + b * G + j, H);
        store(load<V>(dh + k), carry + k);
    }
};

/// The CPU's driver of one step: rows [0, B), n units of each, SIMD batches along the units.
template <class Step>
void rnn_step_rows(const Step s, std::size_t B, std::size_t n, rnn_step_at at) {
    using T = typename Step::value_type;
    for (std::size_t b = 0; b < B; ++b) {
        if (at.padded(b))
            simd_for<T>(n, [&]<class V>(std::size_t j) { s.template padded<V>(b, j); });
        else
            simd_for<T>(n, [&]<class V>(std::size_t j) { s.template valid<V>(b, j); });
    }
}

// --- one layer, one direction -----------------------------------------------------------------

/// What the backward of one layer and direction needs from its forward.
template <class T>
struct rnn_dir_saved {
    tensor<T> act;  // {T, B, 4H}: LSTM i, f, g, o; GRU r, z, n, W_hn h + b_hn
    tensor<T> hp;   // {T, B, H}: the hidden state before step t
    tensor<T> cs;   // LSTM {T, B, H}: the cell state after step t
    tensor<T> c0;   // LSTM {B, H}
};

/// Forward of one layer and direction over inp {T, B, I} (contiguous, time-major). Writes y
/// (columns of a {T, B, ldy} output), h_n and c_n {B, H}.
///
/// The steps run on a team of threads, each owning a slice of the hidden units: per step it
/// computes its units' columns of h_{t-1} W_hh^T for every gate (W_hh packed once for all
/// steps) and their gate pass, then waits for the others (the next step reads all of h_t).
template <class T>
rnn_dir_saved<T> rnn_dir_forward(const rnn_spec& s, std::size_t Tn, std::size_t B, std::size_t I, const T* inp,
                                 const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const T* h0, const T* c0,
                                 const std::int64_t* len, bool reverse, T* y, std::size_t ldy, T* hn, T* cn) {
    const std::size_t H = s.hidden_size, ng = s.gates(), G = ng * H;
    const bool lstm = s.kind == rnn_kind::lstm;
    rnn_dir_saved<T> sv;
    sv.act = tensor<T>::uninitialized({Tn, B, 4 * H});
    sv.hp = tensor<T>::uninitialized({Tn, B, H});
    if (lstm) {
        sv.cs = tensor<T>::uninitialized({Tn, B, H});
        sv.c0 = tensor<T>::uninitialized({B, H});
        std::copy_n(c0, B * H, sv.c0.data());
    }
    // the input projection of every step: one GEMM onto the broadcast bias
    auto xg = tensor<T>::uninitialized({Tn * B, G});
    {
        aligned_vector<T> bias(G);
        for (std::size_t j = 0; j < G; ++j) bias[j] = lstm ? b_ih[j] + b_hh[j] : b_ih[j];
        for (std::size_t r = 0; r < Tn * B; ++r) std::copy_n(bias.data(), G, xg.data() + r * G);
    }
    gemm<T>(false, true, Tn * B, G, I, T(1), inp, I, w_ih, I, T(1), xg.data(), G);
    rnn_panels<T> wp;
    wp.pack(w_hh, true, H, H, ng);  // op = W_hh^T, one {H, H} block per gate
    auto hg = tensor<T>::uninitialized({B, G});
    const std::size_t BH = B * H;
    std::copy_n(h0, BH, sv.hp.data() + (reverse ? Tn - 1 : 0) * BH);
    rnn_team team;
    team.run(rnn_team_size<T>(H, 2.0 * static_cast<double>(B * G * H)), [&](std::size_t rank, std::size_t size) {
        const auto range = rnn_unit_range<T>(H, rank, size);
        const std::size_t u0 = range.first, n = range.second - range.first;
        for (std::size_t k = 0; k < Tn; ++k) {
            if (k > 0) team.barrier();  // h_{t-1} is complete
            if (n == 0) continue;
            const std::size_t t = reverse ? Tn - 1 - k : k;
            const bool last = k + 1 == Tn;
            const T* hp = sv.hp.data() + t * BH;
            T* hnext = last ? hn : sv.hp.data() + (reverse ? t - 1 : t + 1) * BH;
            for (std::size_t g = 0; g < ng; ++g)
                rnn_step_gemm<T>(B, hp, H, wp, g, u0, u0 + n, hg.data() + g * H, G, false);
            const T* xt = xg.data() + t * B * G + u0;
            T* act = sv.act.data() + t * B * 4 * H + u0;
            T* yt = y + t * B * ldy + u0;
            if (lstm) {
                const T* cp = k == 0 ? c0 : sv.cs.data() + (reverse ? t + 1 : t - 1) * BH;
                rnn_step_rows(lstm_forward_step<T>{H, ldy, xt, hg.data() + u0, hp + u0, cp + u0, act,
                                                   sv.cs.data() + t * BH + u0, hnext + u0, yt},
                              B, n, {len, t});
            } else {
                rnn_step_rows(gru_forward_step<T>{H, ldy, xt, hg.data() + u0, b_hh + u0, hp + u0, act, hnext + u0, yt},
                              B, n, {len, t});
            }
        }
    });
    if (lstm) std::copy_n(sv.cs.data() + (reverse ? 0 : Tn - 1) * BH, BH, cn);
    return sv;
}

/// Parameter gradients of one layer and direction (added into).
template <class T>
struct rnn_dir_grads {
    T *w_ih, *w_hh, *b_ih, *b_hh;
};

/// Back-propagation through time for one layer and direction. dy: columns of a {T, B, ldy}
/// gradient (null: none); dhn, dcn {B, H} (null: none). Adds into the parameter gradients and
/// into dinp {T, B, I}; writes dh0, dc0.
///
/// Per step each thread of the team runs the gate pass of its hidden units (writing their
/// columns of dG_t), waits for the others, then computes its units' columns of
/// dh_{t-1} = carry + dG_t W_hh (W_hh packed once). The weight gradients and dX are three
/// GEMMs over all steps afterwards; the bias gradients are summed inside the gate passes.
template <class T>
void rnn_dir_backward(const rnn_spec& s, std::size_t Tn, std::size_t B, std::size_t I, const T* inp, const T* w_ih,
                      const T* w_hh, const std::int64_t* len, bool reverse, const rnn_dir_saved<T>& sv,
                      const T* dy, std::size_t ldy, const T* dhn, const T* dcn, rnn_dir_grads<T> gw, T* dinp,
                      T* dh0, T* dc0) {
    const std::size_t H = s.hidden_size, G = s.gates() * H, BH = B * H;
    const bool lstm = s.kind == rnn_kind::lstm;
    auto dgx = tensor<T>::uninitialized({Tn * B, G});
    tensor<T> dgh = lstm ? dgx : tensor<T>::uninitialized({Tn * B, G});
    auto dh_a = zeros<T>({B, H}), dh_b = tensor<T>::uninitialized({B, H}), dc = zeros<T>({B, H});
    if (dhn) std::copy_n(dhn, BH, dh_a.data());
    if (dcn && lstm) std::copy_n(dcn, BH, dc.data());
    aligned_vector<T> dbx(G, T(0)), dbh(lstm ? 0 : G, T(0));
    rnn_panels<T> wp;
    wp.pack(w_hh, false, G, H, 1);  // op = W_hh {G, H}
    rnn_team team;
    team.run(rnn_team_size<T>(H, 2.0 * static_cast<double>(B * G * H)), [&](std::size_t rank, std::size_t size) {
        const auto range = rnn_unit_range<T>(H, rank, size);
        const std::size_t u0 = range.first, n = range.second - range.first;
        T *dh = dh_a.data(), *carry = dh_b.data();
        for (std::size_t k = 0; k < Tn; ++k) {
            const std::size_t t = reverse ? k : Tn - 1 - k;  // the forward order, backwards
            const bool first = k + 1 == Tn;                   // the forward's first step
            if (n > 0) {
                const T* dyt = dy ? dy + t * B * ldy + u0 : nullptr;
                const T* act = sv.act.data() + t * B * 4 * H + u0;
                if (lstm) {
                    const T* cp = first ? sv.c0.data() : sv.cs.data() + (reverse ? t + 1 : t - 1) * BH;
                    rnn_step_rows(lstm_backward_step<T>{H, ldy, act, cp + u0, sv.cs.data() + t * BH + u0, dh + u0, dyt,
                                                        dc.data() + u0, dgx.data() + t * B * G + u0, dbx.data() + u0,
                                                        carry + u0},
                                  B, n, {len, t});
                } else {
                    rnn_step_rows(gru_backward_step<T>{H, ldy, act, sv.hp.data() + t * BH + u0, dh + u0, dyt,
                                                       dgx.data() + t * B * G + u0, dgh.data() + t * B * G + u0,
                                                       dbx.data() + u0, dbh.data() + u0, carry + u0},
                                  B, n, {len, t});
                }
            }
            team.barrier();  // dG_t is complete
            // dh_{t-1} = carry + dG_t W_hh, this thread's columns
            if (n > 0) rnn_step_gemm<T>(B, dgh.data() + t * B * G, G, wp, 0, u0, u0 + n, carry, H, true);
            std::swap(dh, carry);
        }
        for (std::size_t b = 0; b < B; ++b) {
            std::copy_n(dh + b * H + u0, n, dh0 + b * H + u0);
            if (lstm) std::copy_n(dc.data() + b * H + u0, n, dc0 + b * H + u0);
        }
    });
    // all steps at once
    gemm<T>(true, false, G, I, Tn * B, T(1), dgx.data(), G, inp, I, T(1), gw.w_ih, I);
    gemm<T>(true, false, G, H, Tn * B, T(1), dgh.data(), G, sv.hp.data(), H, T(1), gw.w_hh, H);
    const T* dbr = lstm ? dbx.data() : dbh.data();
    for (std::size_t j = 0; j < G; ++j) {
        gw.b_ih[j] += dbx[j];
        gw.b_hh[j] += dbr[j];
    }
    gemm<T>(false, false, Tn * B, I, G, T(1), dgx.data(), G, w_ih, I, T(1), dinp, I);
}

/// {B, T, C} <-> {T, B, C} (the same function both ways with the first two extents swapped).
template <class T>
tensor<T> swap_leading(const T* src, std::size_t A, std::size_t Bn, std::size_t C) {
    auto out = tensor<T>::uninitialized({Bn, A, C});
    for (std::size_t a = 0; a < A; ++a)
        for (std::size_t b = 0; b < Bn; ++b) std::copy_n(src + (a * Bn + b) * C, C, out.data() + (b * A + a) * C);
    return out;
}

/// The whole stack over one input: the expression operands, the parameters (4 per layer and
/// direction, in PyTorch's order), lengths and dropout masks. Shared by the output nodes.
template <class T, class X, class H0, class C0>
struct rnn_core {
    using value_type = T;
    using device_type = device::cpu;
    rnn_spec spec;
    X x;
    H0 h0;
    C0 c0;
    std::vector<parameter<T>> w;
    std::optional<tensor<std::int64_t>> lengths;
    std::vector<tensor<T>> masks;  // between layers, {T, B, D*H} (empty: no dropout)
    std::size_t Tn = 0, B = 0;

    struct result {
        std::array<tensor<T>, 3> outs;         // y, h_n, c_n in the user's shapes
        std::vector<tensor<T>> inputs;         // per layer, time-major (after dropout)
        std::vector<rnn_dir_saved<T>> dirs;    // per layer and direction
    };
    pass_cache<result> cache;

    rnn_core(rnn_spec s, X xe, H0 h, C0 c, std::vector<parameter<T>> ws, std::optional<tensor<std::int64_t>> len,
             std::vector<tensor<T>> m)
        : spec(s), x(std::move(xe)), h0(std::move(h)), c0(std::move(c)), w(std::move(ws)), lengths(std::move(len)),
          masks(std::move(m)) {
        const shape_t& xs = x.shape();
        if (spec.cell) {
            Tn = 1;
            B = xs[0];
        } else {
            Tn = spec.batch_first ? xs[1] : xs[0];
            B = spec.batch_first ? xs[0] : xs[1];
        }
    }

    std::size_t H() const { return spec.hidden_size; }
    std::size_t layer_input(std::size_t l) const { return l == 0 ? spec.input_size : spec.dirs() * H(); }
    const std::int64_t* len() const { return lengths ? lengths->data() : nullptr; }

    shape_t out_shape(int which) const {
        const std::size_t H_ = H(), D = spec.dirs();
        if (spec.cell) return {B, H_};
        if (which == 0) return spec.batch_first ? shape_t{B, Tn, D * H_} : shape_t{Tn, B, D * H_};
        return {spec.num_layers * D, B, H_};
    }

    const result& run() const {
        return cache.get([&] {
            result r;
            const std::size_t H_ = H(), D = spec.dirs(), L = spec.num_layers, BH = B * H_;
            tensor<T> xv = materialize(x);
            tensor<T> inp = spec.batch_first && !spec.cell ? swap_leading(xv.data(), B, Tn, spec.input_size) : xv;
            tensor<T> h0v = materialize(h0), c0v = materialize(c0);
            auto hn = tensor<T>::uninitialized({L * D, B, H_}), cn = zeros<T>({L * D, B, H_});
            tensor<T> y;
            for (std::size_t l = 0; l < L; ++l) {
                if (l > 0) {
                    inp = y;
                    if (!masks.empty()) {
                        auto m = tensor<T>::uninitialized(y.shape());
                        const T *a = y.data(), *k = masks[l - 1].data();
                        for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = a[i] * k[i];
                        inp = m;
                    }
                }
                r.inputs.push_back(inp);
                y = tensor<T>::uninitialized({Tn, B, D * H_});
                for (std::size_t d = 0; d < D; ++d) {
                    const std::size_t k = l * D + d;
                    r.dirs.push_back(rnn_dir_forward<T>(
                        spec, Tn, B, layer_input(l), inp.data(), w[4 * k].value().data(), w[4 * k + 1].value().data(),
                        w[4 * k + 2].value().data(), w[4 * k + 3].value().data(), h0v.data() + k * BH,
                        c0v.data() + k * BH, len(), d == 1, y.data() + d * H_, D * H_, hn.data() + k * BH,
                        cn.data() + k * BH));
                }
            }
            if (spec.cell) {
                r.outs = {y.reshape(shape_t{B, H_}), hn.reshape(shape_t{B, H_}), cn.reshape(shape_t{B, H_})};
            } else {
                r.outs = {spec.batch_first ? swap_leading(y.data(), Tn, B, D * H_) : y, hn, cn};
            }
            return r;
        });
    }

    /// Backward from the gradient g of output `which` (0: y, 1: h_n, 2: c_n).
    void backward(int which, const tensor<T>& g) const {
        const result& r = run();
        const std::size_t H_ = H(), D = spec.dirs(), L = spec.num_layers, BH = B * H_;
        tensor<T> dy;
        if (which == 0) dy = spec.batch_first && !spec.cell ? swap_leading(g.data(), B, Tn, D * H_) : g;
        const T* dhn = which == 1 ? g.data() : nullptr;
        const T* dcn = which == 2 ? g.data() : nullptr;
        auto dh0 = tensor<T>::uninitialized({L * D, B, H_}), dc0 = zeros<T>({L * D, B, H_});
        std::vector<tensor<T>> gw;
        for (const auto& p : w) gw.push_back(zeros<T>(p.shape()));
        tensor<T> dinp;
        for (std::size_t l = L; l-- > 0;) {
            const std::size_t I = layer_input(l);
            dinp = zeros<T>({Tn, B, I});
            for (std::size_t d = 0; d < D; ++d) {
                const std::size_t k = l * D + d;
                rnn_dir_backward<T>(spec, Tn, B, I, r.inputs[l].data(), w[4 * k].value().data(),
                                    w[4 * k + 1].value().data(), len(), d == 1, r.dirs[k],
                                    dy.size() ? dy.data() + d * H_ : nullptr, D * H_, dhn ? dhn + k * BH : nullptr,
                                    dcn ? dcn + k * BH : nullptr,
                                    {gw[4 * k].data(), gw[4 * k + 1].data(), gw[4 * k + 2].data(), gw[4 * k + 3].data()},
                                    dinp.data(), dh0.data() + k * BH, dc0.data() + k * BH);
            }
            if (l > 0) {
                if (!masks.empty()) {
                    const T* m = masks[l - 1].data();
                    for (std::size_t i = 0; i < dinp.size(); ++i) dinp.data()[i] *= m[i];
                }
                dy = dinp;
            }
        }
        // the weights first: their gradients are complete before the walk descends into x
        for (std::size_t i = 0; i < w.size(); ++i) push_grad(param_node<T>(w[i]), gw[i]);
        if constexpr (X::has_grad) {
            tensor<T> dx = spec.batch_first && !spec.cell ? swap_leading(dinp.data(), Tn, B, spec.input_size) : dinp;
            push_grad(x, dx.reshape(x.shape()));
        }
        if constexpr (H0::has_grad) push_grad(h0, dh0.reshape(h0.shape()));
        if constexpr (C0::has_grad)
            if (spec.kind == rnn_kind::lstm) push_grad(c0, dc0.reshape(c0.shape()));
    }
};

/// What one backward (of any output) of a recurrent stack reaches: every weight, x, h0 and c0.
/// The CPU core and the Thrust devices' core hold them under the same names.
template <class Core>
void walk_rnn_grad_leaves(const Core& c, grad_leaf_walk& g) {
    for (const auto& p : c.w) g.leaves.push_back(&p.state());
    walk_grad_leaves(c.x, g);
    walk_grad_leaves(c.h0, g);
    if (c.spec.kind == rnn_kind::lstm) walk_grad_leaves(c.c0, g);
}

}  // namespace detail

/// One output of a recurrent stack (its sequence output y, or the final states h_n / c_n).
/// The outputs of one call share a node: the forward runs once per pass.
template <class Core>
struct rnn_output_node : expression_base {
    using value_type = typename Core::value_type;
    using T = value_type;
    using device_type = typename Core::device_type;
    static constexpr bool has_grad = true;
    static constexpr bool is_scalar = false;

    std::shared_ptr<const Core> core;
    int which = 0;
    shape_t shape_;

    rnn_output_node(std::shared_ptr<const Core> c, int w) : core(std::move(c)), which(w), shape_(core->out_shape(w)) {}
    const shape_t& shape() const { return shape_; }
    tensor<T, device_type> forward_value() const { return core->run().outs[static_cast<std::size_t>(which)]; }
    void backward_from(const tensor<T, device_type>& g) const { core->backward(which, g.contiguous()); }
    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.materialized(*this);
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const { detail::walk_rnn_grad_leaves(*core, w); }
};

namespace detail {

/// Checks lengths {B} with values in [1, T]; throws value_error / shape_error naming the entry.
inline void check_rnn_lengths(const char* who, const tensor<std::int64_t>& len, std::size_t B, std::size_t Tn) {
    if (len.shape() != shape_t{B})
        throw shape_error(std::string(who) + ": lengths must have shape {" + std::to_string(B) + "} (one per sequence), got " +
                          to_string(len.shape()));
    const auto lc = len.contiguous();
    for (std::size_t b = 0; b < B; ++b) {
        const std::int64_t v = lc.data()[b];
        if (v < 1 || static_cast<std::uint64_t>(v) > Tn)
            throw value_error(std::string(who) + ": lengths[" + std::to_string(b) + "] = " + std::to_string(v) +
                              " is outside [1, " + std::to_string(Tn) + "] (the sequence length)");
    }
}

/// The core of a stack whose operands are on D: rnn_core on the CPU; on another device the one a
/// backend supplies as device_kernels<rnn_spec, D>::core (backend/thrust/ops_rnn.hpp), which
/// takes the same constructor arguments (lengths and dropout masks on the host).
template <class T, class X, class H0, class C0, class D>
struct rnn_core_on {
    static_assert(has_device_kernels<rnn_spec, D>,
                  "xgrad: lstm/gru have no kernel on the operands' device yet; move the operands with "
                  "xgrad::to<xgrad::device::cpu>(x)");
    using type = typename device_kernels<rnn_spec, D>::template core<T, X, H0, C0>;
};
template <class T, class X, class H0, class C0>
struct rnn_core_on<T, X, H0, C0, device::cpu> {
    using type = rnn_core<T, X, H0, C0>;
};

/// Validates shapes and builds the shared core and its outputs.
template <class T, class X, class H0, class C0, class Dev = op_device_t<X, H0, C0>>
auto make_rnn(const rnn_spec& s, X x, H0 h0, C0 c0, std::vector<parameter<T, Dev>> w,
              std::optional<tensor<std::int64_t>> lengths, double dropout, bool training, rng* gen) {
    const std::string who = s.name();
    const shape_t& xs = x.shape();
    const std::size_t H = s.hidden_size, D = s.dirs(), L = s.num_layers;
    if (s.cell ? xs.size() != 2 : xs.size() != 3)
        throw shape_error(who + ": input must have shape " +
                          (s.cell ? std::string("{batch, ") : s.batch_first ? std::string("{batch, seq, ") : std::string("{seq, batch, ")) +
                          std::to_string(s.input_size) + "}, got " + to_string(xs));
    if (xs.back() != s.input_size)
        throw shape_error(who + ": input's last extent must be input_size " + std::to_string(s.input_size) + ", got " +
                          to_string(xs));
    const std::size_t Tn = s.cell ? 1 : (s.batch_first ? xs[1] : xs[0]);
    const std::size_t B = s.cell ? xs[0] : (s.batch_first ? xs[0] : xs[1]);
    if (Tn == 0 || B == 0) throw shape_error(who + ": empty input " + to_string(xs));
    const shape_t state = s.cell ? shape_t{B, H} : shape_t{L * D, B, H};
    if (h0.shape() != state) throw shape_error(who + ": h0 must have shape " + to_string(state) + ", got " + to_string(h0.shape()));
    if (c0.shape() != state) throw shape_error(who + ": c0 must have shape " + to_string(state) + ", got " + to_string(c0.shape()));
    if (w.size() != 4 * L * D) throw value_error(who + ": expected " + std::to_string(4 * L * D) + " weights");
    for (std::size_t k = 0; k < L * D; ++k) {
        const std::size_t I = k / D == 0 ? s.input_size : D * H, G = s.gates() * H;
        const shape_t want[4] = {{G, I}, {G, H}, {G}, {G}};
        static const char* names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
        for (std::size_t i = 0; i < 4; ++i)
            if (w[4 * k + i].shape() != want[i])
                throw shape_error(who + ": " + names[i] + (s.cell ? "" : "_l" + std::to_string(k / D)) + (k % D ? "_reverse" : "") +
                                  " must have shape " + to_string(want[i]) + ", got " + to_string(w[4 * k + i].shape()));
    }
    if (lengths) {
        check_rnn_lengths(who.c_str(), *lengths, B, Tn);
        lengths = lengths->contiguous();
    }
    std::vector<tensor<T>> masks;
    if (training && dropout > 0 && L > 1) {
        const T keep = static_cast<T>(1.0 / (1.0 - dropout));
        for (std::size_t l = 0; l + 1 < L; ++l) {
            auto m = tensor<T>::uninitialized({Tn, B, D * H});
            for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = gen->uniform() < dropout ? T(0) : keep;
            masks.push_back(m);
        }
    }
    using core_t = typename rnn_core_on<T, X, H0, C0, Dev>::type;
    auto core = std::make_shared<const core_t>(s, std::move(x), std::move(h0), std::move(c0), std::move(w),
                                               std::move(lengths), std::move(masks));
    return std::array<rnn_output_node<core_t>, 3>{rnn_output_node<core_t>(core, 0), rnn_output_node<core_t>(core, 1),
                                                   rnn_output_node<core_t>(core, 2)};
}

}  // namespace detail

/// The new states of one LSTM step.
template <class N>
struct lstm_state {
    N h, c;
};

/// One LSTM step as torch.nn.LSTMCell: x {B, in}, h, c {B, H}; w_ih {4H, in}, w_hh {4H, H},
/// b_ih, b_hh {4H}, gates i, f, g, o:
///   i = s(W_ii x + b_ii + W_hi h + b_hi), f = s(...), g = tanh(...), o = s(...)
///   c' = f c + i g,  h' = o tanh(c')
/// Returns {h', c'} (expressions sharing one node).
template <operand X, operand Hs, operand Cs, class T, class D>
auto lstm_cell(X&& x, Hs&& h, Cs&& c, const parameter<T, D>& w_ih, const parameter<T, D>& w_hh,
               const parameter<T, D>& b_ih, const parameter<T, D>& b_hh) {
    rnn_spec s;
    s.kind = rnn_kind::lstm;
    s.cell = true;
    auto xe = as_expr(std::forward<X>(x));
    auto he = as_expr(std::forward<Hs>(h));
    s.input_size = xe.shape().empty() ? 0 : xe.shape().back();
    s.hidden_size = he.shape().empty() ? 0 : he.shape().back();
    auto outs = detail::make_rnn<T>(s, std::move(xe), std::move(he),
                                    as_expr(std::forward<Cs>(c)), {w_ih, w_hh, b_ih, b_hh}, std::nullopt, 0, false, nullptr);
    return lstm_state<typename decltype(outs)::value_type>{outs[1], outs[2]};
}

/// One GRU step as torch.nn.GRUCell: x {B, in}, h {B, H}; w_ih {3H, in}, w_hh {3H, H}, gates r, z, n:
///   r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz)
///   n = tanh(W_in x + b_in + r (W_hn h + b_hn)),  h' = (1 - z) n + z h
template <operand X, operand Hs, class T, class D>
auto gru_cell(X&& x, Hs&& h, const parameter<T, D>& w_ih, const parameter<T, D>& w_hh, const parameter<T, D>& b_ih,
              const parameter<T, D>& b_hh) {
    rnn_spec s;
    s.kind = rnn_kind::gru;
    s.cell = true;
    auto xe = as_expr(std::forward<X>(x));
    auto he = as_expr(std::forward<Hs>(h));
    const shape_t hs = he.shape();
    s.input_size = xe.shape().empty() ? 0 : xe.shape().back();
    s.hidden_size = hs.empty() ? 0 : hs.back();
    auto outs = detail::make_rnn<T>(s, std::move(xe), std::move(he), tensor_node<T, D>(zeros<T, D>(hs)),
                                    {w_ih, w_hh, b_ih, b_hh}, std::nullopt, 0, false, nullptr);
    return outs[1];
}

}  // namespace xgrad
