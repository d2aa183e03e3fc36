#pragma once
// Differentiable shape ops. Each is a barrier (it materializes its input) whose backward
// moves the gradient back to the input's layout:
//   reshape/flatten: dx = reshape(g, x.shape)            (forward is a view, no copy)
//   transpose/permute: dx = permute(g, inverse order)
//   narrow/split:    dx = g inside the slice, 0 elsewhere
//   concat:          dx_k = the slice of g that part k filled
// Outputs are contiguous, so the elementwise loops that read them stay vectorized.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <numeric>
#include <string>
#include <vector>

#include "../autodiff/pass.hpp"
#include "../expr/op_node.hpp"
#include "detail/layout.hpp"

namespace xgrad {

namespace detail {

struct reshape_impl {
    static constexpr const char* name = "reshape";
    shape_t to;
    shape_t output_shape(const shape_t& s) const {
        if (numel(s) != numel(to))
            throw shape_error("reshape: cannot reshape " + to_string(s) + " (" + std::to_string(numel(s)) +
                              " elements) to " + to_string(to) + " (" + std::to_string(numel(to)) + " elements)");
        return to;
    }
    // on any device: a view forward, a copy backward
    template <class T, class D>
    tensor<T, D> forward(const tensor<T, D>& x) const {
        return x.reshape(to);  // x is contiguous: a view
    }
    template <class T, class D>
    void backward(const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 1>&,
                  std::array<tensor<T, D>*, 1> dx) const {
        if (!dx[0]) return;
        if constexpr (std::is_same_v<D, device::cpu>)
            std::copy_n(g.data(), g.size(), dx[0]->data());
        else
            dx[0]->assign(g.reshape(dx[0]->shape()));  // g is contiguous
    }
};

/// Resolves one -1 in a requested shape against `count` elements.
inline shape_t resolve_shape(const std::vector<std::ptrdiff_t>& req, const shape_t& from) {
    shape_t s(req.size());
    std::ptrdiff_t infer = -1;
    std::size_t known = 1;
    for (std::size_t i = 0; i < req.size(); ++i) {
        if (req[i] == -1) {
            if (infer >= 0) throw shape_error("reshape: more than one -1 in the new shape");
            infer = static_cast<std::ptrdiff_t>(i);
        } else if (req[i] < 0) {
            throw shape_error("reshape: negative dimension " + std::to_string(req[i]) + " in the new shape");
        } else {
            s[i] = static_cast<std::size_t>(req[i]);
            known *= s[i];
        }
    }
    if (infer >= 0) {
        const std::size_t n = numel(from);
        if (known == 0 || n % known != 0)
            throw shape_error("reshape: cannot infer the -1 dimension to reshape " + to_string(from) + " (" +
                              std::to_string(n) + " elements)");
        s[static_cast<std::size_t>(infer)] = n / known;
    }
    return s;
}

struct permute_impl {
    static constexpr const char* name = "permute";
    std::vector<std::ptrdiff_t> order;  // result dim i is input dim order[i]; validated
    shape_t output_shape(const shape_t& s) const {
        shape_t out(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) out[i] = s[static_cast<std::size_t>(order[i])];
        return out;
    }
    template <class T>
    tensor<T> forward(const tensor<T>& x) const {
        return x.permute(order).clone();
    }
    template <class T>
    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>&,
                  std::array<tensor<T>*, 1> dx) const {
        if (!dx[0]) return;
        std::vector<std::ptrdiff_t> inverse(order.size());
        for (std::size_t i = 0; i < order.size(); ++i) inverse[static_cast<std::size_t>(order[i])] = static_cast<std::ptrdiff_t>(i);
        copy_to(g.permute(inverse), dx[0]->data());
    }
};

/// Copies blocks between a tensor laid out [outer, extent, inner] and the [start, start + len)
/// band of another laid out [outer, band_extent, inner] along the same axis.
template <class T>
void copy_band(const T* src, std::size_t src_extent, std::size_t src_start, T* dst, std::size_t dst_extent,
               std::size_t dst_start, std::size_t len, std::size_t outer, std::size_t inner) {
    for (std::size_t o = 0; o < outer; ++o)
        std::copy_n(src + (o * src_extent + src_start) * inner, len * inner, dst + (o * dst_extent + dst_start) * inner);
}

/// x[..., start:start+length, ...] along `axis`.
struct narrow_impl {
    static constexpr const char* name = "narrow";
    std::size_t axis, start, length;
    shape_t output_shape(const shape_t& s) const {
        if (axis >= s.size() || start + length > s[axis])
            throw index_error("narrow: range [" + std::to_string(start) + ", " + std::to_string(start + length) +
                              ") is out of range for axis " + std::to_string(axis) + " of shape " + to_string(s));
        shape_t out = s;
        out[axis] = length;
        return out;
    }
    // on any device: the CPU copies the band's blocks, a device copies through a slice view
    template <class T, class D>
    tensor<T, D> forward(const tensor<T, D>& x) const {
        if constexpr (!std::is_same_v<D, device::cpu>) {
            return x.slice(static_cast<std::ptrdiff_t>(axis), static_cast<std::ptrdiff_t>(start),
                           static_cast<std::ptrdiff_t>(start + length))
                .clone();
        } else {
            const axis_layout l = layout_along(x.shape(), axis);
            auto y = tensor<T>::uninitialized(output_shape(x.shape()));
            copy_band(x.data(), l.extent, start, y.data(), length, 0, length, l.outer, l.inner);
            return y;
        }
    }
    template <class T, class D>
    void backward(const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                  std::array<tensor<T, D>*, 1> dx) const {
        if (!dx[0]) return;
        dx[0]->fill(T(0));
        if constexpr (!std::is_same_v<D, device::cpu>) {
            dx[0]->slice(static_cast<std::ptrdiff_t>(axis), static_cast<std::ptrdiff_t>(start),
                         static_cast<std::ptrdiff_t>(start + length))
                .assign(g);
        } else {
            const axis_layout l = layout_along(in[0].shape(), axis);
            copy_band(g.data(), length, 0, dx[0]->data(), l.extent, start, length, l.outer, l.inner);
        }
    }
};

/// The shape of parts joined along `axis`; every other dimension must agree.
inline shape_t concat_shape(const std::vector<const shape_t*>& parts, std::size_t axis) {
    shape_t out = *parts[0];
    out[axis] = 0;
    for (std::size_t k = 0; k < parts.size(); ++k) {
        const shape_t& s = *parts[k];
        bool ok = s.size() == out.size();
        for (std::size_t d = 0; ok && d < s.size(); ++d) ok = d == axis || s[d] == out[d];
        if (!ok)
            throw shape_error("concat: part " + std::to_string(k) + " has shape " + to_string(s) +
                              ", which does not match part 0 of shape " + to_string(*parts[0]) +
                              " outside axis " + std::to_string(axis));
        out[axis] += s[axis];
    }
    return out;
}

template <class T, class Parts>
tensor<T> concat_forward(const Parts& parts, std::size_t axis, const shape_t& out_shape) {
    auto y = tensor<T>::uninitialized(out_shape);
    const axis_layout l = layout_along(out_shape, axis);
    std::size_t at = 0;
    for (const tensor<T>& p : parts) {
        const std::size_t len = p.shape()[axis];
        copy_band(p.data(), len, 0, y.data(), l.extent, at, len, l.outer, l.inner);
        at += len;
    }
    return y;
}

/// The band [start, start + len) of g along axis, as a contiguous tensor of `shape`.
template <class T>
void take_band(const tensor<T>& g, std::size_t axis, std::size_t start, tensor<T>& dst) {
    const axis_layout l = layout_along(g.shape(), axis);
    const std::size_t len = dst.shape()[axis];
    copy_band(g.data(), l.extent, start, dst.data(), len, 0, len, l.outer, l.inner);
}

/// concat of a fixed number of operands (any operand types of one element type).
template <std::size_t N>
struct concat_impl {
    static constexpr const char* name = "concat";
    std::size_t axis;
    template <class... S>
    shape_t output_shape(const S&... s) const {
        return concat_shape({&s...}, axis);
    }
    template <class... T>
    auto forward(const T&... x) const {
        using V = typename std::tuple_element_t<0, std::tuple<T...>>::value_type;
        const std::array<tensor<V>, N> parts{x...};
        return concat_forward<V>(parts, axis, output_shape(x.shape()...));
    }
    template <class T>
    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, N>& in,
                  std::array<tensor<T>*, N> dx) const {
        std::size_t at = 0;
        for (std::size_t k = 0; k < N; ++k) {
            if (dx[k]) take_band(g, axis, at, *dx[k]);
            at += in[k].shape()[axis];
        }
    }
};

}  // namespace detail

/// concat of a run-time number of operands of one expression type E. Like op_node, its value
/// is computed once per pass and read as a leaf by the surrounding loop; its backward hands
/// each part its band of the gradient.
template <class E>
struct concat_node : expression_base {
    using value_type = typename E::value_type;
    using T = value_type;
    static constexpr bool has_grad = E::has_grad;
    static constexpr bool is_scalar = false;

    std::vector<E> parts;
    std::size_t axis;
    shape_t shape_;
    detail::pass_cache<tensor<T>> cache_;

    concat_node(std::vector<E> p, std::ptrdiff_t ax) : parts(std::move(p)) {
        if (parts.empty()) throw value_error("concat: needs at least one operand");
        axis = normalize_axis(ax, parts[0].shape().size(), "concat");
        std::vector<const shape_t*> shapes;
        for (const auto& e : parts) shapes.push_back(&e.shape());
        shape_ = detail::concat_shape(shapes, axis);
    }

    const shape_t& shape() const { return shape_; }

    tensor<T> forward_value() const {
        return cache_.get([&] {
            std::vector<tensor<T>> in;
            in.reserve(parts.size());
            for (const auto& e : parts) in.push_back(detail::materialize(e));
            return detail::concat_forward<T>(in, axis, shape_);
        });
    }

    void backward_from(const tensor<T>& g) const {
        if constexpr (has_grad) {
            const tensor<T> gc = g.contiguous();
            std::size_t at = 0;
            for (const auto& e : parts) {
                auto band = tensor<T>::uninitialized(e.shape());
                detail::take_band(gc, axis, at, band);
                detail::push_grad(e, band);
                at += e.shape()[axis];
            }
        }
    }

    template <class Ctx>
    auto kernel(Ctx& ctx) const {
        return ctx.materialized(*this);
    }
    void walk_grad_leaves(detail::grad_leaf_walk& w) const {
        for (const auto& e : parts) detail::walk_grad_leaves(e, w);
    }
};

// --- public functions -------------------------------------------------------------------

/// x with a new shape of the same element count; one dimension may be -1 (inferred).
template <operand X>
auto reshape(X&& x, const std::vector<std::ptrdiff_t>& shape) {
    auto e = as_expr(std::forward<X>(x));
    shape_t to = detail::resolve_shape(shape, e.shape());
    return make_op(detail::reshape_impl{std::move(to)}, std::move(e));
}
/// reshape to a shape_t (a template so that a braced list picks the signed overload above).
template <operand X, class S>
    requires std::same_as<S, shape_t>
auto reshape(X&& x, const S& shape) {
    return make_op(detail::reshape_impl{shape}, std::forward<X>(x));
}

/// Dimensions start_dim..end_dim (inclusive, negative counts from the end) merged into one.
template <operand X>
auto flatten(X&& x, std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1) {
    auto e = as_expr(std::forward<X>(x));
    const shape_t& s = e.shape();
    if (s.empty()) return make_op(detail::reshape_impl{shape_t{1}}, std::move(e));
    const std::size_t a = normalize_axis(start_dim, s.size(), "flatten");
    const std::size_t b = normalize_axis(end_dim, s.size(), "flatten");
    if (a > b)
        throw index_error("flatten: start_dim " + std::to_string(start_dim) + " comes after end_dim " +
                          std::to_string(end_dim) + " for shape " + to_string(s));
    shape_t to(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(a));
    to.push_back(std::accumulate(s.begin() + static_cast<std::ptrdiff_t>(a), s.begin() + static_cast<std::ptrdiff_t>(b) + 1,
                                 std::size_t{1}, std::multiplies<>{}));
    to.insert(to.end(), s.begin() + static_cast<std::ptrdiff_t>(b) + 1, s.end());
    return make_op(detail::reshape_impl{std::move(to)}, std::move(e));
}

/// x with its dimensions reordered: result dimension i is x's dimension dims[i].
template <operand X>
auto permute(X&& x, const std::vector<std::ptrdiff_t>& dims) {
    auto e = as_expr(std::forward<X>(x));
    const std::size_t r = e.shape().size();
    if (dims.size() != r)
        throw shape_error("permute: " + std::to_string(dims.size()) + " dimensions given for shape " + to_string(e.shape()));
    std::vector<std::ptrdiff_t> order(r);
    std::vector<bool> seen(r, false);
    for (std::size_t i = 0; i < r; ++i) {
        const std::size_t a = normalize_axis(dims[i], r, "permute");
        if (seen[a]) throw index_error("permute: dimension " + std::to_string(dims[i]) + " repeated");
        seen[a] = true;
        order[i] = static_cast<std::ptrdiff_t>(a);
    }
    return make_op(detail::permute_impl{std::move(order)}, std::move(e));
}

/// x with dimensions a and b swapped.
template <operand X>
auto transpose(X&& x, std::ptrdiff_t a, std::ptrdiff_t b) {
    auto e = as_expr(std::forward<X>(x));
    const std::size_t r = e.shape().size();
    const std::size_t i = normalize_axis(a, r, "transpose"), j = normalize_axis(b, r, "transpose");
    std::vector<std::ptrdiff_t> order(r);
    std::iota(order.begin(), order.end(), std::ptrdiff_t{0});
    std::swap(order[i], order[j]);
    return make_op(detail::permute_impl{std::move(order)}, std::move(e));
}

/// x[..., start:start+length, ...] along `axis`.
template <operand X>
auto narrow(X&& x, std::ptrdiff_t axis, std::size_t start, std::size_t length) {
    auto e = as_expr(std::forward<X>(x));
    const std::size_t a = normalize_axis(axis, e.shape().size(), "narrow");
    return make_op(detail::narrow_impl{a, start, length}, std::move(e));
}

/// x cut along `axis` into consecutive parts of the given sizes (which must add up to the
/// extent). Each part is its own node over a copy of x's expression: an x that is a barrier
/// op or a parameter is computed once per pass; an elementwise x is evaluated once per part.
template <operand X>
auto split(X&& x, const std::vector<std::size_t>& sizes, std::ptrdiff_t axis = 0) {
    auto e = as_expr(std::forward<X>(x));
    const shape_t& s = e.shape();
    const std::size_t a = normalize_axis(axis, s.size(), "split");
    const std::size_t total = std::accumulate(sizes.begin(), sizes.end(), std::size_t{0});
    if (total != s[a]) {
        std::string list;
        for (std::size_t k = 0; k < sizes.size(); ++k) list += (k ? ", " : "") + std::to_string(sizes[k]);
        throw shape_error("split: sizes {" + list + "} add up to " + std::to_string(total) + ", not to the extent " +
                          std::to_string(s[a]) + " of axis " + std::to_string(a) + " of shape " + to_string(s));
    }
    using part = decltype(make_op(detail::narrow_impl{}, e));
    std::vector<part> out;
    out.reserve(sizes.size());
    std::size_t at = 0;
    for (const std::size_t n : sizes) {
        out.push_back(make_op(detail::narrow_impl{a, at, n}, e));
        at += n;
    }
    return out;
}
/// x cut along `axis` into parts of `size` elements (the last may be smaller), as PyTorch.
template <operand X>
auto split(X&& x, std::size_t size, std::ptrdiff_t axis = 0) {
    auto e = as_expr(std::forward<X>(x));
    const shape_t& s = e.shape();
    const std::size_t a = normalize_axis(axis, s.size(), "split");
    if (size == 0) throw value_error("split: part size must be > 0");
    std::vector<std::size_t> sizes;
    for (std::size_t at = 0; at < s[a]; at += size) sizes.push_back(std::min(size, s[a] - at));
    return split(std::move(e), sizes, static_cast<std::ptrdiff_t>(a));
}

/// Operands of one type joined along `axis` (a run-time number of them: a vector or a braced
/// list such as concat({a, b, c}, 1)). For operands of different types use concat(axis, a, b, ...).
template <operand X>
auto concat(const std::vector<X>& xs, std::ptrdiff_t axis = 0) {
    using E = expr_t<const X&>;
    std::vector<E> parts;
    parts.reserve(xs.size());
    for (const auto& x : xs) parts.push_back(as_expr(x));
    return concat_node<E>(std::move(parts), axis);
}
template <operand X>
auto concat(std::initializer_list<X> xs, std::ptrdiff_t axis = 0) {
    return concat(std::vector<X>(xs), axis);
}

/// A fixed number of operands, of any operand types with one element type, joined along axis.
template <operand X0, operand... X>
auto concat(std::ptrdiff_t axis, X0&& x0, X&&... xs) {
    const std::size_t a = normalize_axis(axis, x0.shape().size(), "concat");
    return make_op(detail::concat_impl<1 + sizeof...(X)>{a}, std::forward<X0>(x0), std::forward<X>(xs)...);
}

}  // namespace xgrad
