#pragma once
// Matrix products: matmul (NumPy/PyTorch semantics, batched with broadcasting) and linear
// (PyTorch's weight layout), each optionally fused with a bias and an activation.
//
//   matmul(a, b):  {M, K} x {K, N} -> {M, N}; {..., M, K} x {..., K, N} -> {batch..., M, N}
//                  with the batch dimensions broadcast; a 1-D a is a row {1, K} and a 1-D b a
//                  column {K, 1}, the added dimension removed from the result.
//   linear(x, W, b) = x W^T + b, W: {out, in}, b: {out}, x: {..., in} -> {..., out}.
//
// Gradients (Y = A B, upstream G):  dA = G B^T,  dB = A^T G, each summed over the batch
// dimensions its operand was broadcast along; for linear dW = G^T x (over all rows of x) and
// db = sum of G over rows. With a fused activation G is first multiplied by act'.
#include <array>
#include <tuple>
#include <memory>
#include <string>
#include <vector>

#include "../core/config.hpp"
#include "../backend/cpu/gemm.hpp"
#include "../expr/op_node.hpp"
#include "activation.hpp"
#include "detail/device_kernels.hpp"
#include "detail/epilogue.hpp"

namespace xgrad {

namespace detail {

/// Sizes of one (batched) matrix product, derived from the operand shapes. `trans_b` reads b
/// as the transpose of a 2-D {N, K} weight (linear).
struct matmul_geometry {
    std::size_t M = 0, N = 0, K = 0;
    shape_t batch;                         // broadcast batch shape of the result
    std::vector<std::ptrdiff_t> a_off, b_off;  // per result batch: offset of its a / b matrix
    bool b_batched = false;                // b differs between batches (else fold rows of a)
    shape_t out;                           // result shape

    XGRAD_OUTLINE matmul_geometry(const shape_t& sa, const shape_t& sb, bool trans_b, const char* op);
    std::size_t batches() const { return numel(batch); }

    /// With an empty batch nothing flows back: zeroes the gradients of a and b (where wanted)
    /// and says so, for every backend's backward.
    template <class Tt, std::size_t N_>
    bool empty_batch_backward(const std::array<Tt*, N_>& gi) const {
        if (batches() != 0) return false;
        for (std::size_t i = 0; i < 2; ++i)
            if (gi[i]) gi[i]->fill(typename Tt::value_type(0));
        return true;
    }
};

XGRAD_OUTLINE_DEF matmul_geometry::matmul_geometry(const shape_t& sa, const shape_t& sb, bool trans_b, const char* op) {
    auto fail = [&](const std::string& why) {
        throw shape_error(std::string(op) + ": cannot multiply shapes " + to_string(sa) + " and " + to_string(sb) +
                          ": " + why);
    };
    if (sa.empty() || sb.empty()) fail("operands must have at least one dimension");
    if (trans_b && sb.size() != 2) fail("the weight must be 2-D {out, in}, got rank " + std::to_string(sb.size()));
    const bool a_vec = sa.size() == 1, b_vec = sb.size() == 1;
    const shape_t a2 = a_vec ? shape_t{1, sa[0]} : sa;
    const shape_t b2 = b_vec ? shape_t{sb[0], 1} : sb;
    M = a2[a2.size() - 2];
    K = a2[a2.size() - 1];
    const std::size_t kb = trans_b ? b2[1] : b2[b2.size() - 2];
    N = trans_b ? b2[0] : b2[b2.size() - 1];
    if (kb != K)
        fail("inner dimensions differ (" + std::to_string(K) + " vs " + std::to_string(kb) + ")");
    const shape_t ba(a2.begin(), a2.end() - 2), bb(b2.begin(), b2.end() - 2);
    try {
        batch = broadcast_shapes(ba, bb, op);
    } catch (const shape_error&) {
        fail("batch dimensions " + to_string(ba) + " and " + to_string(bb) + " do not broadcast");
    }
    out = batch;
    if (!a_vec) out.push_back(M);
    if (!b_vec) out.push_back(N);
    b_batched = numel(bb) > 1;
    auto offsets = [&](const shape_t& s, std::size_t mat) {
        strides_t st = contiguous_strides(s);
        for (auto& x : st) x *= static_cast<std::ptrdiff_t>(mat);
        std::vector<std::ptrdiff_t> o;
        for_each_offset(batch, broadcast_strides(s, st, batch), [&](std::ptrdiff_t x) { o.push_back(x); });
        return o;
    };
    a_off = offsets(ba, M * K);
    b_off = offsets(bb, K * N);
}
XGRAD_INSTANCE(matmul_geometry::matmul_geometry(const shape_t& sa, const shape_t& sb, bool trans_b, const char* op))

/// y = act(a op(b) + bias): matmul when !TransB, linear when TransB.
template <class T, class Act, bool Bias, bool TransB>
struct dense_op {
    static constexpr const char* name = TransB ? "linear" : "matmul";
    static constexpr std::size_t arity = Bias ? 3 : 2;
    pre_store<T, Act> pre;

    /// The product's shape; with a bias, that shape broadcast with the bias's.
    template <class... S>
    shape_t output_shape(const shape_t& a, const shape_t& b, const S&... bias) const {
        static_assert(sizeof...(S) == (Bias ? 1 : 0), "dense_op: wrong number of operands");
        matmul_geometry g(a, b, TransB, name);
        if constexpr (Bias) {
            const shape_t& sb = (bias, ...);
            return broadcast_shapes(g.out, sb, name);
        }
        return g.out;
    }

    template <class... Rest>
    tensor<T> forward(const tensor<T>& a, const tensor<T>& b, const Rest&... rest) const {
        const matmul_geometry g(a.shape(), b.shape(), TransB, name);
        if constexpr (Bias) {
            const tensor<T>& bias = (rest, ...);
            const shape_t full = broadcast_shapes(g.out, bias.shape(), name);
            if (full != g.out) {  // the bias enlarges the result: add it by broadcasting
                auto z = product(g, a, b, nullptr, {}, false);
                auto y = cpu_eval(tensor_node<T>(z) + tensor_node<T>(bias));
                bias_act_epilogue<T, Act> epi{y.data(), 0, nullptr, nullptr, 0, pre.prepare(full)};
                parallel_chunks(y.size(), std::size_t{1} << 15, [&](std::size_t lo, std::size_t hi) { epi(0, 1, lo, hi); });
                return y;
            }
            const bias_layout L = make_bias_layout(bias.shape(), g.out, 1, name);
            return product(g, a, b, bias.data(), L);
        } else {
            return product(g, a, b, nullptr, {});
        }
    }

    void backward(const tensor<T>& grad, const tensor<T>& out, const std::array<tensor<T>, arity>& in,
                  std::array<tensor<T>*, arity> gi) const {
        const tensor<T>& a = in[0];
        const tensor<T>& b = in[1];
        const matmul_geometry g(a.shape(), b.shape(), TransB, name);
        tensor<T> dz = grad;  // gradient w.r.t. a b + bias
        if (!trivial_activation<Act>) dz = tensor<T>::uninitialized(grad.shape());
        if constexpr (Bias) {
            if (grad.shape() == g.out) {  // act' and the bias gradient in one pass
                const bias_layout L = make_bias_layout(in[2].shape(), g.out, 1, name);
                const std::size_t cols = g.out.empty() ? 1 : g.out.back();
                epilogue_backward<T, Act>(grad.data(), out.data(), pre.data(), dz.data(), grad.size() / std::max<std::size_t>(cols, 1),
                                          cols, L, gi[2] ? gi[2]->data() : nullptr, in[2].size());
            } else {  // the bias enlarged the output: reduce both gradients to their shapes
                if constexpr (!trivial_activation<Act>)
                    activation_backward<T, Act>(grad.data(), out.data(), pre.data(), dz.data(), dz.size());
                if (gi[2]) gi[2]->assign(sum_to_shape(dz, in[2].shape()));
                dz = sum_to_shape(dz, g.out);
            }
        } else if constexpr (!trivial_activation<Act>) {
            activation_backward<T, Act>(grad.data(), out.data(), pre.data(), dz.data(), dz.size());
        }
        const T* G = dz.data();
        const std::size_t M = g.M, N = g.N, K = g.K, nb = g.batches();
        const std::size_t ldb = TransB ? K : N;
        if (g.empty_batch_backward(gi)) return;
        // Inner extent 0 (N == 0 for dA, rows == 0 for dB) makes gemm write zeros.
        if (gi[0]) {
            T* da = gi[0]->data();
            if (!g.b_batched) {  // all rows of a share b: one GEMM, dA = G op(b)^T
                gemm<T>(false, !TransB, nb * M, K, N, T(1), G, N, b.data() + g.b_off.front(), ldb, T(0), da, K);
            } else {
                gi[0]->fill(T(0));
                for (std::size_t o = 0; o < nb; ++o)
                    gemm<T>(false, !TransB, M, K, N, T(1), G + o * M * N, N, b.data() + g.b_off[o], ldb, T(1),
                            da + g.a_off[o], K);
            }
        }
        if (gi[1]) {
            T* db = gi[1]->data();
            if (!g.b_batched) {  // dB sums over every row of a: one GEMM with M' = batches * M
                if constexpr (TransB)
                    gemm<T>(true, false, N, K, nb * M, T(1), G, N, a.data(), K, T(0), db, K, no_epilogue{},
                            true);  // dW = G^T a, cut by rows across threads like the update
                else
                    gemm<T>(true, false, K, N, nb * M, T(1), a.data(), K, G, N, T(0), db, N);   // dB = a^T G
            } else {
                gi[1]->fill(T(0));
                for (std::size_t o = 0; o < nb; ++o)
                    gemm<T>(true, false, K, N, M, T(1), a.data() + g.a_off[o], K, G + o * M * N, N, T(1),
                            db + g.b_off[o], N);
            }
        }
    }

private:
    /// act(a op(b) + bias) with the bias and activation applied as each GEMM block finishes
    /// (just a op(b) when !epilogue).
    tensor<T> product(const matmul_geometry& g, const tensor<T>& a, const tensor<T>& b, const T* bias,
                      const bias_layout& L, bool epilogue = true) const {
        auto y = tensor<T>::uninitialized(g.out);
        T* pre_z = epilogue ? pre.prepare(g.out) : nullptr;
        const std::size_t M = g.M, N = g.N, K = g.K, nb = g.batches();
        const std::size_t ldb = TransB ? K : N;
        auto run = [&](std::size_t row0, std::size_t rows, const T* A, const T* B) {
            T* C = y.data() + row0 * N;
            if (epilogue && (bias || !trivial_activation<Act>)) {
                bias_act_epilogue<T, Act> epi{C, N, bias, bias ? L.rowoff.data() + row0 : nullptr, L.col_step,
                                              pre_z ? pre_z + row0 * N : nullptr};
                gemm<T>(false, TransB, rows, N, K, T(1), A, K, B, ldb, T(0), C, N, epi);
            } else {
                gemm<T>(false, TransB, rows, N, K, T(1), A, K, B, ldb, T(0), C, N);
            }
        };
        if (nb == 0) return y;
        if (!g.b_batched)
            run(0, nb * M, a.data(), b.data() + g.b_off.front());
        else
            for (std::size_t o = 0; o < nb; ++o) run(o * M, M, a.data() + g.a_off[o], b.data() + g.b_off[o]);
        return y;
    }
};

template <class T>
using matmul_op = dense_op<T, activation::identity_t, false, false>;

template <class N>
struct is_plain_dense : std::false_type {};
template <class T, bool TB, class A, class B>
struct is_plain_dense<op_node<dense_op<T, activation::identity_t, false, TB>, A, B>> : std::true_type {};

// act(matmul(a, b)), act(linear(x, W)), act(linear(x, W, b))
template <class T, bool Bias, bool TB, class... E>
struct dense_fusion<op_node<dense_op<T, activation::identity_t, Bias, TB>, E...>> : std::true_type {
    template <class Act>
    static auto fuse(Act, const op_node<dense_op<T, activation::identity_t, Bias, TB>, E...>& n) {
        return std::apply(
            [](const auto&... x) { return op_node<dense_op<T, Act, Bias, TB>, E...>(dense_op<T, Act, Bias, TB>{}, x...); },
            n.args);
    }
};
// act(matmul(a, b) + c), act(linear(x, W) + c)
template <class T, bool TB, class A, class B, class C>
struct dense_fusion<binary_node<ops::add, op_node<dense_op<T, activation::identity_t, false, TB>, A, B>, C>>
    : std::true_type {
    template <class Act, class Node>
    static auto fuse(Act, const Node& n) {
        using op = dense_op<T, Act, true, TB>;
        return op_node<op, A, B, C>(op{}, std::get<0>(n.l.args), std::get<1>(n.l.args), n.r);
    }
};
// act(c + matmul(a, b)) (unless c is itself a plain product: then the left one fuses)
template <class T, bool TB, class A, class B, class C>
    requires(!is_plain_dense<C>::value)
struct dense_fusion<binary_node<ops::add, C, op_node<dense_op<T, activation::identity_t, false, TB>, A, B>>>
    : std::true_type {
    template <class Act, class Node>
    static auto fuse(Act, const Node& n) {
        using op = dense_op<T, Act, true, TB>;
        return op_node<op, A, B, C>(op{}, std::get<0>(n.r.args), std::get<1>(n.r.args), n.l);
    }
};

template <class X>
using value_of = typename expr_t<X>::value_type;

}  // namespace detail

/// Matrix product with NumPy/PyTorch semantics (see the top of this file). Throws shape_error
/// on mismatched inner or batch dimensions.
template <operand A, operand B>
auto matmul(A&& a, B&& b) {
    using T = detail::value_of<A>;
    static_assert(std::is_floating_point_v<T>, "xgrad::matmul: operands must hold float or double");
    return make_op(detail::matmul_op<T>{}, std::forward<A>(a), std::forward<B>(b));
}

/// y = x W^T with W of shape {out, in} (PyTorch layout).
template <operand X, operand W, fusable_activation Act = activation::identity_t>
auto linear(X&& x, W&& w, Act = {}) {
    using T = detail::value_of<X>;
    static_assert(std::is_floating_point_v<T>, "xgrad::linear: operands must hold float or double");
    return make_op(detail::dense_op<T, Act, false, true>{}, std::forward<X>(x), std::forward<W>(w));
}

/// y = act(x W^T + b) with W: {out, in}, b: {out}; bias and activation fused into the GEMM's
/// output pass.
template <operand X, operand W, operand Bv, fusable_activation Act = activation::identity_t>
auto linear(X&& x, W&& w, Bv&& b, Act = {}) {
    using T = detail::value_of<X>;
    static_assert(std::is_floating_point_v<T>, "xgrad::linear: operands must hold float or double");
    return make_op(detail::dense_op<T, Act, true, true>{}, std::forward<X>(x), std::forward<W>(w), std::forward<Bv>(b));
}

}  // namespace xgrad
