#pragma once
// Reductions: sum, mean, max over all elements or over given axes.
// At the root of backward() a full sum/mean fuses into the elementwise loop below it. Used
// inside a larger expression, a reduction is materialized first (one loop) and read as a leaf.
#include <algorithm>
#include <initializer_list>
#include <vector>

#include "device_engine.hpp"
#include "node.hpp"
#include "pass.hpp"

namespace xgrad {

/// Axes to reduce over: one axis, a braced list, or a vector; negative axes count from the end.
struct axes_t {
    std::vector<std::ptrdiff_t> v;
    axes_t(std::ptrdiff_t a) : v{a} {}  // NOLINT: implicit by design (sum(x, 1))
    axes_t(std::initializer_list<std::ptrdiff_t> a) : v(a) {}
    axes_t(std::vector<std::ptrdiff_t> a) : v(std::move(a)) {}
};

namespace reductions {
/// d sum / d x_i = 1
struct sum {
    static constexpr const char* name = "sum";
};
/// d mean / d x_i = 1 / n
struct mean {
    static constexpr const char* name = "mean";
};
/// d max / d x_i = [x_i == max] / (number of maxima)
struct max {
    static constexpr const char* name = "max";
};
}  // namespace reductions

/// Red over `axes` of e (all axes when Full), optionally keeping reduced axes as size 1.
template <class Red, class E, bool Full>
struct reduce_node : expression_base {
    using value_type = typename E::value_type;
    using T = value_type;
    using device_type = detail::device_of_t<E>;
    using tensor_type = tensor<T, detail::expr_device_t<E>>;
    using engine = detail::device_engine<detail::expr_device_t<E>>;
    static constexpr bool has_grad = E::has_grad;
    static constexpr bool is_scalar = Full;
    E e;
    shape_t keep_shape_;  // e's shape with reduced axes set to 1
    shape_t shape_;       // result shape
    std::size_t count_ = 1;
    detail::pass_cache<tensor_type> value_cache_;  // forward value, kept for this pass

    reduce_node(E x, const std::vector<std::ptrdiff_t>& axes, bool keepdims) : e(std::move(x)) {
        const shape_t& s = e.shape();
        keep_shape_ = s;
        std::vector<bool> red(s.size(), Full);
        if constexpr (!Full)
            for (auto a : axes) {
                auto i = normalize_axis(a, s.size(), Red::name);
                if (red[i]) throw index_error(std::string(Red::name) + ": axis " + std::to_string(a) + " repeated");
                red[i] = true;
            }
        for (std::size_t i = 0; i < s.size(); ++i) {
            if (red[i]) {
                count_ *= s[i];
                keep_shape_[i] = 1;
                if (keepdims) shape_.push_back(1);
            } else {
                shape_.push_back(s[i]);
            }
        }
        if constexpr (std::is_same_v<Red, reductions::max>)
            if (count_ == 0)
                throw shape_error("max: reduction over an empty dimension of shape " + to_string(s) +
                                  " has no identity");
    }

    const shape_t& shape() const { return shape_; }

    tensor_type forward_value() const { return value_cache_.get([&] { return compute(); }); }

    tensor_type compute() const {
        return engine::template reduce<Red>(e, keep_shape_, count_).reshape(shape_);
    }

    /// Chain rule through the reduction: `g` has the result's shape.
    void backward_from(const tensor_type& g) const {
        if constexpr (has_grad) {
            auto gk = g.reshape(keep_shape_);
            if constexpr (std::is_same_v<Red, reductions::max>)
                engine::max_backward(e, forward_value().reshape(keep_shape_), gk);
            else if constexpr (std::is_same_v<Red, reductions::mean>)
                engine::backward(e, gk, count_ ? T(1) / T(count_) : T(0));
            else
                engine::backward(e, gk, T(1));
        }
    }

    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.materialized(*this);
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const { detail::walk_grad_leaves(e, w); }
};

#define XGRAD_DEFINE_REDUCTION(fn, red)                                                        \
    template <operand X>                                                                       \
    auto fn(X&& x) {                                                                           \
        using E = expr_t<X>;                                                                   \
        return reduce_node<red, E, true>(as_expr(std::forward<X>(x)), {}, false);              \
    }                                                                                          \
    template <operand X>                                                                       \
    auto fn(X&& x, axes_t axes, bool keepdims = false) {                                      \
        using E = expr_t<X>;                                                                   \
        return reduce_node<red, E, false>(as_expr(std::forward<X>(x)), axes.v, keepdims);      \
    }

/// Sum of all elements, or over axes.
XGRAD_DEFINE_REDUCTION(sum, reductions::sum)
/// Mean of all elements, or over axes.
XGRAD_DEFINE_REDUCTION(mean, reductions::mean)
/// Maximum of all elements, or over axes (gradient shared among ties).
XGRAD_DEFINE_REDUCTION(max, reductions::max)
#undef XGRAD_DEFINE_REDUCTION

}  // namespace xgrad
