#pragma once
// Zero-copy interop with xtensor, both ways.
#include <memory>
#include <utility>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include "tensor.hpp"

namespace xgrad {

/// An xtensor view of `t`'s elements (no copy; `t` must outlive it). Writes go to `t`.
template <class T>
auto as_xtensor(const tensor<T>& t) {
    std::vector<std::size_t> shape(t.shape().begin(), t.shape().end());
    std::vector<std::ptrdiff_t> strides(t.strides().begin(), t.strides().end());
    // span of the storage the view touches, measured from its first element
    std::size_t span = t.size() == 0 ? 0 : 1;
    for (std::size_t d = 0; d < t.dim(); ++d)
        if (t.shape()[d] > 0) span += static_cast<std::size_t>(std::abs(t.strides()[d])) * (t.shape()[d] - 1);
    return xt::adapt(t.data(), span, xt::no_ownership(), shape, strides);
}

/// Takes an xtensor container over without copying its elements: the returned tensor owns it.
template <class E>
    requires requires(E& e) {
        e.data();
        e.shape();
        e.strides();
    }
auto from_xtensor(E&& e) {
    using C = std::remove_cvref_t<E>;
    using T = typename C::value_type;
    static_assert(!std::is_lvalue_reference_v<E>,
                  "from_xtensor takes ownership: pass std::move(container), or use view_of(container) for a "
                  "non-owning view");
    auto holder = std::make_shared<C>(std::move(e));
    shape_t shape(holder->shape().begin(), holder->shape().end());
    strides_t strides(holder->strides().begin(), holder->strides().end());
    for (std::size_t d = 0; d < shape.size(); ++d)
        if (shape[d] == 1) strides[d] = 0;  // xtensor reports 0 for size-1 dims too; keep it consistent
    std::shared_ptr<T> data(holder, holder->data());
    return tensor<T>(std::move(data), std::move(shape), std::move(strides));
}

/// A non-owning xgrad view of an xtensor container: no copy, `e` must outlive the view.
template <class C>
auto view_of(C& e) {
    using T = typename C::value_type;
    shape_t shape(e.shape().begin(), e.shape().end());
    strides_t strides(e.strides().begin(), e.strides().end());
    std::shared_ptr<T> data(std::shared_ptr<T>(), e.data());
    return tensor<T>(std::move(data), std::move(shape), std::move(strides));
}

}  // namespace xgrad
