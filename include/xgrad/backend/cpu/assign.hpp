#pragma once
// The CPU executor of assign(into(dst, e), ...) (expr/assign.hpp), reached through
// device_engine<device::cpu>::assign. Two loops. When every leaf and destination is a
// contiguous tensor of the loop's shape (an optimizer update), a dense loop runs: leaves are
// bare pointers held in registers, so the destinations' stores do not force the engine's
// strided-operand descriptors to be reloaded (they would be: SIMD stores may alias anything).
// Thread chunks start at multiples of 64 elements, so every element takes the same SIMD or
// scalar path whatever the thread count and results do not depend on it. Anything else
// (broadcast operands, views, reductions or barrier ops inside) runs on the general fused-loop
// engine (loop.hpp).
#include <algorithm>
#include <array>
#include <tuple>
#include <utility>

#include "../../expr/assign.hpp"
#include "../../expr/pass.hpp"
#include "loop.hpp"
#include "thread_pool.hpp"

namespace xgrad::detail {

/// One iteration stores every expression's value into its destination, in order.
template <class T, class... K>
struct assign_root {
    std::tuple<K...> k;
    std::array<output_operand<T>, sizeof...(K)> out;

    template <class V>
    XGRAD_INLINE void step(std::ptrdiff_t j) {
        step_all<V>(j, std::index_sequence_for<K...>{});
    }
    template <class V, std::size_t... I>
    XGRAD_INLINE void step_all(std::ptrdiff_t j, std::index_sequence<I...>) {
        (out[I].store(j, std::get<I>(k).template fwd<V>(j).v), ...);  // comma fold: left to right
    }
    template <class F>
    void visit(F&& f) {
        std::apply([&](auto&... ks) { (ks.visit(f), ...); }, k);
        for (auto& o : out) f(o);
    }
};

/// A leaf read at the loop position: a contiguous tensor of the loop's shape.
template <class T>
struct dense_leaf_kernel {
    static constexpr bool has_grad = false;
    const T* p;
    template <class V>
    XGRAD_INLINE leaf_cache<V> fwd(std::ptrdiff_t j) const {
        if constexpr (is_batch_v<V>)
            return {V::load_unaligned(p + j)};
        else
            return {p[j]};
    }
    template <class V, class C>
    XGRAD_INLINE void bwd(std::ptrdiff_t, const C&, V) {}
    template <class F>
    void visit(F&&) {}
};

/// Kernel builder for the dense loop; `ok` turns false when a leaf does not qualify.
template <class T>
struct dense_ctx {
    const shape_t* shape;
    bool ok = true;
    dense_leaf_kernel<T> leaf(const tensor<T>& t) {
        if (t.shape() != *shape || !t.is_contiguous()) ok = false;
        return {t.data()};
    }
    dense_leaf_kernel<T> input_leaf(const tensor<T>& t) { return leaf(t); }
    dense_leaf_kernel<T> grad_leaf(grad_state<T>& s) { return leaf(s.value); }
    template <class Node>
    dense_leaf_kernel<T> materialized(const Node&) {
        ok = false;  // a reduction or barrier op: the general engine computes it first
        return {nullptr};
    }
};

template <class V, class T, class Kernels, std::size_t... I>
XGRAD_INLINE void dense_step(Kernels& k, T* const* out, std::ptrdiff_t j, std::index_sequence<I...>) {
    auto store = [&](T* o, auto v) {
        if constexpr (is_batch_v<V>)
            v.store_unaligned(o + j);
        else
            o[j] = v;
    };
    (store(out[I], std::get<I>(k).template fwd<V>(j).v), ...);  // in order
}

template <class T, class Kernels, std::size_t N>
void dense_assign(const Kernels& kernels, const std::array<T*, N>& outs, std::size_t n) {
    constexpr std::size_t W = simd_t<T>::size;
    auto run = [&](std::size_t lo, std::size_t hi) {
        Kernels k = kernels;  // local copies the stores cannot touch
        const std::array<T*, N> o = outs;
        auto j = static_cast<std::ptrdiff_t>(lo);
        const auto end = static_cast<std::ptrdiff_t>(hi);
        for (; j + static_cast<std::ptrdiff_t>(W) <= end; j += static_cast<std::ptrdiff_t>(W))
            dense_step<simd_t<T>>(k, o.data(), j, std::make_index_sequence<N>{});
        for (; j < end; ++j) dense_step<T>(k, o.data(), j, std::make_index_sequence<N>{});
    };
    const std::size_t nt = n >= parallel_grain ? std::max<std::size_t>(1, num_threads()) : 1;
    if (nt == 1) {
        run(0, n);
        return;
    }
    constexpr std::size_t align = 64;  // a multiple of every SIMD width
    const std::size_t chunk = ((n + nt - 1) / nt + align - 1) / align * align;
    parallel_run(nt, [&](std::size_t t) { run(std::min(n, t * chunk), std::min(n, (t + 1) * chunk)); });
}

/// The assignments in one loop over the first destination's shape, which every destination
/// has and every expression broadcasts to (checked by assign()).
template <class T, class... E>
void cpu_assign(const assignment<T, E>&... a) {
    const shape_t& shape = std::get<0>(std::tie(a...)).dst.shape();
    {
        dense_ctx<T> dctx{&shape};
        auto kernels = std::tuple{a.e.kernel(dctx)...};
        const bool dense_out = (a.dst.is_contiguous() && ...);
        if (dctx.ok && dense_out) {
            dense_assign<T>(kernels, std::array<T*, sizeof...(E)>{a.dst.data()...}, numel(shape));
            return;
        }
    }
    pass_scope pass;
    loop_ctx<T> ctx(shape, false);
    using Root = assign_root<T, decltype(a.e.kernel(ctx))...>;
    // kernels are built left to right (a braced list is sequenced)
    Root root{std::tuple{a.e.kernel(ctx)...}, {ctx.assign_output(a.dst)...}};
    execute(root, ctx);
}

}  // namespace xgrad::detail
