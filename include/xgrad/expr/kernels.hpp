#pragma once
// Composite kernels: what an expression node becomes inside a fused loop. They are plain
// structs (no heap, no virtuals) so a loop, a thread or a device functor can copy them.
//
// Kernel protocol, for V = T or a SIMD batch of T, j = position in the current row:
//   fwd<V>(j)         -> a cache whose member v is this node's value; the cache keeps the
//                        children's caches so backward needs no recomputation
//   bwd(j, cache, g)  -> pushes upstream gradient g to the leaves (chain rule)
//   visit(f)          -> applies f to every strided operand (leaves first, left to right)
//   has_grad          -> false when no leaf below can receive a gradient (backward pruned)
#include "../core/config.hpp"

namespace xgrad::detail {

template <class V>
struct leaf_cache {
    V v;
};
template <class V, class C>
struct unary_cache {
    C c;
    V v;
};
template <class V, class L, class R>
struct binary_cache {
    L l;
    R r;
    V v;
};

/// A leaf read from an operand X (a backend's strided array: x.template load<V>(j) gives the
/// value at position j as a V).
template <class X>
struct input_kernel {
    static constexpr bool has_grad = false;
    X x;
    template <class V>
    XGRAD_HD XGRAD_INLINE leaf_cache<V> fwd(std::ptrdiff_t j) const {
        return {x.template load<V>(j)};
    }
    template <class V, class C>
    XGRAD_HD XGRAD_INLINE void bwd(std::ptrdiff_t, const C&, V) {}
    template <class F>
    void visit(F&& f) {
        f(x);
    }
};

/// A leaf that may receive a gradient (a parameter, or a materialized node's output): read from
/// X as input_kernel, its gradient stored into G (g.store(j, grad)) while `active`.
template <class X, class G>
struct grad_leaf_kernel {
    static constexpr bool has_grad = true;
    X x;
    G g;
    bool active = false;
    template <class V>
    XGRAD_HD XGRAD_INLINE leaf_cache<V> fwd(std::ptrdiff_t j) const {
        return {x.template load<V>(j)};
    }
    template <class V, class C>
    XGRAD_HD XGRAD_INLINE void bwd(std::ptrdiff_t j, const C&, V grad) {
        if (active) g.store(j, grad);
    }
    template <class F>
    void visit(F&& f) {
        f(x);
        f(g);
    }
};

template <class T>
struct const_kernel {
    static constexpr bool has_grad = false;
    T c;
    template <class V>
    XGRAD_HD XGRAD_INLINE leaf_cache<V> fwd(std::ptrdiff_t) const {
        return {V(c)};
    }
    template <class V, class C>
    XGRAD_HD XGRAD_INLINE void bwd(std::ptrdiff_t, const C&, V) {}
    template <class F>
    void visit(F&&) {}
};

template <class Op, class K>
struct unary_kernel {
    static constexpr bool has_grad = K::has_grad;
    Op op;
    K k;
    template <class V>
    XGRAD_HD XGRAD_INLINE auto fwd(std::ptrdiff_t j) const {
        auto c = k.template fwd<V>(j);
        V y = op.f(c.v);
        return unary_cache<V, decltype(c)>{c, y};
    }
    template <class V, class C>
    XGRAD_HD XGRAD_INLINE void bwd(std::ptrdiff_t j, const C& c, V g) {
        if constexpr (K::has_grad) k.bwd(j, c.c, V(g * op.df(c.c.v, c.v)));
    }
    template <class F>
    void visit(F&& f) {
        k.visit(f);
    }
};

template <class Op, class L, class R>
struct binary_kernel {
    static constexpr bool has_grad = L::has_grad || R::has_grad;
    Op op;
    L l;
    R r;
    template <class V>
    XGRAD_HD XGRAD_INLINE auto fwd(std::ptrdiff_t j) const {
        auto a = l.template fwd<V>(j);
        auto b = r.template fwd<V>(j);
        V y = op.f(a.v, b.v);
        return binary_cache<V, decltype(a), decltype(b)>{a, b, y};
    }
    // Left before right: the same order the kernels were built in, which is what lets the
    // first occurrence of a leaf write its gradient and later ones add to it.
    template <class V, class C>
    XGRAD_HD XGRAD_INLINE void bwd(std::ptrdiff_t j, const C& c, V g) {
        if constexpr (L::has_grad) l.bwd(j, c.l, V(g * op.da(c.l.v, c.r.v, c.v)));
        if constexpr (R::has_grad) r.bwd(j, c.r, V(g * op.db(c.l.v, c.r.v, c.v)));
    }
    template <class F>
    void visit(F&& f) {
        l.visit(f);
        r.visit(f);
    }
};

}  // namespace xgrad::detail
