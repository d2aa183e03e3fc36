#pragma once
// lstm, gru, lstm_cell and gru_cell (ops/rnn.hpp) on the Thrust devices: only the driver, the
// same steps as the CPU's in the same order. Per layer and direction:
//   forward:  one kernel writes the biases into every row, one GEMM adds X W_ih^T for all
//             steps; per step one GEMM h_{t-1} W_hh^T and ONE kernel (one position per element
//             of {B, H}) for every gate, c_t, h_t and y_t;
//   backward: per step ONE kernel (all gate derivatives, dc_{t-1}, the direct part of dh_{t-1})
//             and one GEMM dG_t W_hh; then dW_ih, dW_hh, dX (three GEMMs over all steps) and
//             one kernel per bias (each column summed over the rows in order, as on the CPU).
// Each step's element (the gate formulas of ops/rnn.hpp's lstm_gate_forward/backward and
// gru_gate_forward/backward, and what a padded row does) is ops/rnn.hpp's step struct
// (lstm_forward_step, ...), which the CPU's SIMD driver runs too: this file has only the
// driver. GEMMs are blas.hpp's (cuBLAS on CUDA).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "../../ops/rnn.hpp"
#include "blas.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

template <class T>
struct copy_elements {
    const T* src;
    T* dst;
    XGRAD_HD void operator()(std::ptrdiff_t k) const { dst[k] = src[k]; }
};

/// out[k] = a[k] * m[k] (out may be a).
template <class T>
struct multiply_elements {
    const T* a;
    const T* m;
    T* out;
    XGRAD_HD void operator()(std::ptrdiff_t k) const { out[k] = a[k] * m[k]; }
};

/// {A, Bn, C} -> {Bn, A, C}: element k of the destination.
template <class T>
struct swap_leading_kernel {
    const T* src;
    T* dst;
    std::size_t A, Bn, C;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t i = static_cast<std::size_t>(k), c = i % C, r = i / C, a = r % A, b = r / A;
        dst[k] = src[(a * Bn + b) * C + c];
    }
};

/// Every row of xg {rows, G}: b_ih (+ b_hh when not null), what the input GEMM adds onto.
template <class T>
struct rnn_bias_rows {
    const T* b_ih;
    const T* b_hh;
    T* xg;
    std::size_t G;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t j = static_cast<std::size_t>(k) % G;
        xg[k] = b_hh ? b_ih[j] + b_hh[j] : b_ih[j];
    }
};

/// out[j] += sum over the rows of a[r, j], rows in order (the CPU's add_column_sums).
template <class T>
struct add_column_sums_kernel {
    const T* a;
    T* out;
    std::size_t rows, cols;
    XGRAD_HD void operator()(std::ptrdiff_t j) const {
        T acc = out[j];
        for (std::size_t r = 0; r < rows; ++r) acc += a[r * cols + static_cast<std::size_t>(j)];
        out[j] = acc;
    }
};

/// One step of a cell (lstm_forward_step, ... of ops/rnn.hpp) on a device: position k is the
/// element (b, j) of {B, H}, padded or valid as on the CPU's rnn_step_rows.
template <class Step>
struct rnn_step_kernel {
    Step s;
    rnn_step_at at;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        using T = typename Step::value_type;
        const std::size_t b = static_cast<std::size_t>(k) / s.H, j = static_cast<std::size_t>(k) - b * s.H;
        if (at.padded(b))
            s.template padded<T>(b, j);
        else
            s.template valid<T>(b, j);
    }
};

template <class D, class T>
void copy_on(const T* src, T* dst, std::size_t n) {
    for_each_index<D>(n, copy_elements<T>{src, dst});
}

template <class D, class T>
tensor<T, D> swap_leading_on(const T* src, std::size_t A, std::size_t Bn, std::size_t C) {
    auto out = tensor<T, D>::uninitialized({Bn, A, C});
    for_each_index<D>(A * Bn * C, swap_leading_kernel<T>{src, out.data(), A, Bn, C});
    return out;
}

/// The stack of ops/rnn.hpp's rnn_core on device D: the same members, constructor and outputs.
template <class T, class X, class H0, class C0, class D>
struct rnn_device_core {
    using value_type = T;
    using device_type = D;
    using tensor_t = tensor<T, D>;
    rnn_spec spec;
    X x;
    H0 h0;
    C0 c0;
    std::vector<parameter<T, D>> w;
    std::optional<tensor<std::int64_t, D>> lengths;
    std::vector<tensor_t> masks;  // between layers, {T, B, D*H} (empty: no dropout)
    std::size_t Tn = 0, B = 0;

    struct dir_saved {
        tensor_t act, hp, cs, c0;  // as rnn_dir_saved
    };
    struct result {
        std::array<tensor_t, 3> outs;
        std::vector<tensor_t> inputs;
        std::vector<dir_saved> dirs;
    };
    pass_cache<result> cache;

    rnn_device_core(rnn_spec s, X xe, H0 h, C0 c, std::vector<parameter<T, D>> ws,
                    std::optional<tensor<std::int64_t>> len, std::vector<tensor<T>> m)
        : spec(s), x(std::move(xe)), h0(std::move(h)), c0(std::move(c)), w(std::move(ws)) {
        if (len) lengths = xgrad::to<D>(*len);
        for (const auto& k : m) masks.push_back(xgrad::to<D>(k));
        const shape_t& xs = x.shape();
        Tn = spec.cell ? 1 : (spec.batch_first ? xs[1] : xs[0]);
        B = spec.cell ? xs[0] : (spec.batch_first ? xs[0] : xs[1]);
    }

    std::size_t H() const { return spec.hidden_size; }
    std::size_t layer_input(std::size_t l) const { return l == 0 ? spec.input_size : spec.dirs() * H(); }
    const std::int64_t* len() const { return lengths ? lengths->data() : nullptr; }

    shape_t out_shape(int which) const {
        const std::size_t H_ = H(), Dn = spec.dirs();
        if (spec.cell) return {B, H_};
        if (which == 0) return spec.batch_first ? shape_t{B, Tn, Dn * H_} : shape_t{Tn, B, Dn * H_};
        return {spec.num_layers * Dn, B, H_};
    }

    /// rnn_dir_forward of ops/rnn.hpp.
    dir_saved dir_forward(std::size_t I, const T* inp, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh,
                          const T* h0p, const T* c0p, bool reverse, T* y, std::size_t ldy, T* hn, T* cn) const {
        const std::size_t H_ = H(), G = spec.gates() * H_, BH = B * H_;
        const bool lstm = spec.kind == rnn_kind::lstm;
        dir_saved sv;
        sv.act = tensor_t::uninitialized({Tn, B, 4 * H_});
        sv.hp = tensor_t::uninitialized({Tn, B, H_});
        if (lstm) {
            sv.cs = tensor_t::uninitialized({Tn, B, H_});
            sv.c0 = tensor_t::uninitialized({B, H_});
            copy_on<D>(c0p, sv.c0.data(), BH);
        }
        auto xg = tensor_t::uninitialized({Tn * B, G});
        for_each_index<D>(Tn * B * G, rnn_bias_rows<T>{b_ih, lstm ? b_hh : nullptr, xg.data(), G});
        device_gemm<D, T>(spec.name(), false, true, Tn * B, G, I, T(1), inp, I, w_ih, I, T(1), xg.data(), G);
        auto hg = tensor_t::uninitialized({B, G});
        copy_on<D>(h0p, sv.hp.data() + (reverse ? Tn - 1 : 0) * BH, BH);
        for (std::size_t k = 0; k < Tn; ++k) {
            const std::size_t t = reverse ? Tn - 1 - k : k;
            const T* hp = sv.hp.data() + t * BH;
            T* hnext = k + 1 == Tn ? hn : sv.hp.data() + (reverse ? t - 1 : t + 1) * BH;
            device_gemm<D, T>(spec.name(), false, true, B, G, H_, T(1), hp, H_, w_hh, H_, T(0), hg.data(), G);
            T* act = sv.act.data() + t * B * 4 * H_;
            const rnn_step_at at{len(), t};
            if (lstm) {
                const T* cp = k == 0 ? c0p : sv.cs.data() + (reverse ? t + 1 : t - 1) * BH;
                using step = lstm_forward_step<T>;
                for_each_index<D>(BH, rnn_step_kernel<step>{step{H_, ldy, xg.data() + t * B * G, hg.data(), hp, cp, act,
                                                                 sv.cs.data() + t * BH, hnext, y + t * B * ldy},
                                                            at});
            } else {
                using step = gru_forward_step<T>;
                for_each_index<D>(BH, rnn_step_kernel<step>{step{H_, ldy, xg.data() + t * B * G, hg.data(), b_hh, hp, act,
                                                                 hnext, y + t * B * ldy},
                                                            at});
            }
        }
        if (lstm) copy_on<D>(sv.cs.data() + (reverse ? 0 : Tn - 1) * BH, cn, BH);
        return sv;
    }

    /// rnn_dir_backward of ops/rnn.hpp; gw: w_ih, w_hh, b_ih, b_hh gradients (added into).
    void dir_backward(std::size_t I, const T* inp, const T* w_ih, const T* w_hh, bool reverse, const dir_saved& sv,
                      const T* dy, std::size_t ldy, const T* dhn, const T* dcn, std::array<T*, 4> gw, T* dinp, T* dh0,
                      T* dc0) const {
        const std::size_t H_ = H(), G = spec.gates() * H_, BH = B * H_;
        const bool lstm = spec.kind == rnn_kind::lstm;
        auto dgx = tensor_t::uninitialized({Tn * B, G});
        tensor_t dgh = lstm ? dgx : tensor_t::uninitialized({Tn * B, G});
        auto dh = zeros<T, D>({B, H_}), carry = tensor_t::uninitialized({B, H_}), dc = zeros<T, D>({B, H_});
        if (dhn) copy_on<D>(dhn, dh.data(), BH);
        if (dcn && lstm) copy_on<D>(dcn, dc.data(), BH);
        for (std::size_t k = 0; k < Tn; ++k) {
            const std::size_t t = reverse ? k : Tn - 1 - k;
            const T* dyt = dy ? dy + t * B * ldy : nullptr;
            const T* act = sv.act.data() + t * B * 4 * H_;
            const rnn_step_at at{len(), t};
            // the bias gradients are summed afterwards (db null), column by column
            if (lstm) {
                const T* cp = k + 1 == Tn ? sv.c0.data() : sv.cs.data() + (reverse ? t + 1 : t - 1) * BH;
                using step = lstm_backward_step<T>;
                for_each_index<D>(BH, rnn_step_kernel<step>{step{H_, ldy, act, cp, sv.cs.data() + t * BH, dh.data(), dyt,
                                                                 dc.data(), dgx.data() + t * B * G, nullptr, carry.data()},
                                                            at});
            } else {
                using step = gru_backward_step<T>;
                for_each_index<D>(BH, rnn_step_kernel<step>{step{H_, ldy, act, sv.hp.data() + t * BH, dh.data(), dyt,
                                                                 dgx.data() + t * B * G, dgh.data() + t * B * G, nullptr,
                                                                 nullptr, carry.data()},
                                                            at});
            }
            device_gemm<D, T>(spec.name(), false, false, B, H_, G, T(1), dgh.data() + t * B * G, G, w_hh, H_, T(1),
                              carry.data(), H_);
            std::swap(dh, carry);
        }
        copy_on<D>(dh.data(), dh0, BH);
        if (lstm) copy_on<D>(dc.data(), dc0, BH);
        device_gemm<D, T>(spec.name(), true, false, G, I, Tn * B, T(1), dgx.data(), G, inp, I, T(1), gw[0], I);
        device_gemm<D, T>(spec.name(), true, false, G, H_, Tn * B, T(1), dgh.data(), G, sv.hp.data(), H_, T(1), gw[1], H_);
        for_each_index<D>(G, add_column_sums_kernel<T>{dgx.data(), gw[2], Tn * B, G});
        for_each_index<D>(G, add_column_sums_kernel<T>{dgh.data(), gw[3], Tn * B, G});
        device_gemm<D, T>(spec.name(), false, false, Tn * B, I, G, T(1), dgx.data(), G, w_ih, I, T(1), dinp, I);
    }

    const result& run() const {
        return cache.get([&] {
            result r;
            const std::size_t H_ = H(), Dn = spec.dirs(), L = spec.num_layers, BH = B * H_;
            tensor_t xv = materialize(x);
            tensor_t inp = spec.batch_first && !spec.cell ? swap_leading_on<D>(xv.data(), B, Tn, spec.input_size) : xv;
            tensor_t h0v = materialize(h0), c0v = materialize(c0);
            auto hn = tensor_t::uninitialized({L * Dn, B, H_});
            auto cn = zeros<T, D>({L * Dn, B, H_});
            tensor_t y;
            for (std::size_t l = 0; l < L; ++l) {
                if (l > 0) {
                    inp = y;
                    if (!masks.empty()) {
                        inp = tensor_t::uninitialized(y.shape());
                        for_each_index<D>(y.size(), multiply_elements<T>{y.data(), masks[l - 1].data(), inp.data()});
                    }
                }
                r.inputs.push_back(inp);
                y = tensor_t::uninitialized({Tn, B, Dn * H_});
                for (std::size_t d = 0; d < Dn; ++d) {
                    const std::size_t k = l * Dn + d;
                    r.dirs.push_back(dir_forward(layer_input(l), inp.data(), w[4 * k].value().data(),
                                                 w[4 * k + 1].value().data(), w[4 * k + 2].value().data(),
                                                 w[4 * k + 3].value().data(), h0v.data() + k * BH, c0v.data() + k * BH,
                                                 d == 1, y.data() + d * H_, Dn * H_, hn.data() + k * BH, cn.data() + k * BH));
                }
            }
            if (spec.cell)
                r.outs = {y.reshape(shape_t{B, H_}), hn.reshape(shape_t{B, H_}), cn.reshape(shape_t{B, H_})};
            else
                r.outs = {spec.batch_first ? swap_leading_on<D>(y.data(), Tn, B, Dn * H_) : y, hn, cn};
            return r;
        });
    }

    /// Backward from the gradient g of output `which` (0: y, 1: h_n, 2: c_n).
    void backward(int which, const tensor_t& g) const {
        const result& r = run();
        const std::size_t H_ = H(), Dn = spec.dirs(), L = spec.num_layers, BH = B * H_;
        tensor_t dy;
        if (which == 0) dy = spec.batch_first && !spec.cell ? swap_leading_on<D>(g.data(), B, Tn, Dn * H_) : g;
        const T* dhn = which == 1 ? g.data() : nullptr;
        const T* dcn = which == 2 ? g.data() : nullptr;
        auto dh0 = tensor_t::uninitialized({L * Dn, B, H_});
        auto dc0 = zeros<T, D>({L * Dn, B, H_});
        std::vector<tensor_t> gw;
        for (const auto& p : w) gw.push_back(zeros<T, D>(p.shape()));
        tensor_t dinp;
        for (std::size_t l = L; l-- > 0;) {
            const std::size_t I = layer_input(l);
            dinp = zeros<T, D>({Tn, B, I});
            for (std::size_t d = 0; d < Dn; ++d) {
                const std::size_t k = l * Dn + d;
                dir_backward(I, r.inputs[l].data(), w[4 * k].value().data(), w[4 * k + 1].value().data(), d == 1,
                             r.dirs[k], dy.size() ? dy.data() + d * H_ : nullptr, Dn * H_, dhn ? dhn + k * BH : nullptr,
                             dcn ? dcn + k * BH : nullptr,
                             {gw[4 * k].data(), gw[4 * k + 1].data(), gw[4 * k + 2].data(), gw[4 * k + 3].data()},
                             dinp.data(), dh0.data() + k * BH, dc0.data() + k * BH);
            }
            if (l > 0) {
                if (!masks.empty())
                    for_each_index<D>(dinp.size(), multiply_elements<T>{dinp.data(), masks[l - 1].data(), dinp.data()});
                dy = dinp;
            }
        }
        if constexpr (X::has_grad) {
            tensor_t dx = spec.batch_first && !spec.cell ? swap_leading_on<D>(dinp.data(), Tn, B, spec.input_size) : dinp;
            push_grad(x, dx.reshape(x.shape()));
        }
        if constexpr (H0::has_grad) push_grad(h0, dh0.reshape(h0.shape()));
        if constexpr (C0::has_grad)
            if (spec.kind == rnn_kind::lstm) push_grad(c0, dc0.reshape(c0.shape()));
        for (std::size_t i = 0; i < w.size(); ++i) push_grad(param_node<T, D>(w[i]), gw[i]);
    }
};

}  // namespace thrust_backend

/// The recurrent stacks' core on the Thrust devices (see rnn_core_on in ops/rnn.hpp).
template <thrust_device D>
struct device_kernels<rnn_spec, D> {
    static constexpr bool available = true;
    template <class T, class X, class H0, class C0>
    using core = thrust_backend::rnn_device_core<T, X, H0, C0, D>;
};

}  // namespace xgrad::detail
