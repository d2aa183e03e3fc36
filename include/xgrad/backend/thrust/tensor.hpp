#pragma once
// xgrad::tensor<T, Device> for the Thrust devices: shape, strides and shared storage in the
// device's memory, with the host tensor's semantics (copies share data, views share storage).
// Copies to and from the CPU are what xgrad::to<Device>(t) (core/transfer.hpp) uses.
#include <algorithm>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <thrust/fill.h>

#include "../../core/transfer.hpp"
#include "system.hpp"

namespace xgrad {

namespace detail::thrust_backend {

// Elementwise copies between layouts; ix maps a contiguous position to the strided offset.
template <class T>
struct fill_strided {
    T* dst;
    strided_index ix;
    T v;
    XGRAD_HD void operator()(std::ptrdiff_t i) const { dst[ix(i)] = v; }
};
template <class From, class To>
struct gather {  // dst[i] = src[ix(i)]
    const From* src;
    To* dst;
    strided_index ix;
    XGRAD_HD void operator()(std::ptrdiff_t i) const { dst[i] = static_cast<To>(src[ix(i)]); }
};
template <class T>
struct scatter {  // dst[ix(i)] = src[i]
    const T* src;
    T* dst;
    strided_index ix;
    XGRAD_HD void operator()(std::ptrdiff_t i) const { dst[ix(i)] = src[i]; }
};

}  // namespace detail::thrust_backend

/// A tensor in a Thrust device's memory. Elements are reached through device operations
/// (eval, fill, assign, to<Device>); item() and to_vector() copy to the host.
template <class T, thrust_device D>
class tensor<T, D> {
    static_assert(std::is_arithmetic_v<T>, "xgrad::tensor<T>: T must be an arithmetic type (float, double, int ...)");
    using sys = detail::thrust_backend::system<D>;
    // The host tensor class provides the geometry (views, reshape, checks and their messages).
    // Its handle holds the device pointer and is never dereferenced: every method below that
    // touches elements does so with a device operation.
    using layout_t = tensor<T, device::cpu>;

public:
    using value_type = T;
    using device_type = D;

    /// An empty tensor of shape {0} (allocates nothing).
    tensor() : layout_(std::shared_ptr<T>(), {0}, {1}) {}

    /// A zero-filled tensor of the given shape.
    explicit tensor(shape_t shape) : tensor(uninitialized(std::move(shape))) { fill(T(0)); }

    /// A tensor of the given shape holding `values` (row-major), copied to the device.
    tensor(shape_t shape, std::initializer_list<T> values) : tensor(uninitialized(std::move(shape))) {
        if (values.size() != size())
            throw shape_error("tensor: " + std::to_string(values.size()) + " values given for shape " +
                              to_string(this->shape()));
        sys::copy_in(values.begin(), data(), values.size());
    }

    /// Wraps device storage: `data` points at element (0, ..., 0) and keeps the owner alive.
    tensor(std::shared_ptr<T> data, shape_t shape, strides_t strides)
        : layout_(std::move(data), std::move(shape), std::move(strides)) {}

    /// A contiguous tensor whose elements are not initialised.
    static tensor uninitialized(shape_t shape) {
        auto st = contiguous_strides(shape);
        const auto n = numel(shape);
        return tensor(detail::thrust_backend::allocate<T, D>(n), std::move(shape), std::move(st));
    }

    // --- geometry -----------------------------------------------------------
    const shape_t& shape() const noexcept { return layout_.shape(); }
    std::size_t shape(std::ptrdiff_t axis) const { return layout_.shape(axis); }
    const strides_t& strides() const noexcept { return layout_.strides(); }
    std::size_t dim() const noexcept { return layout_.dim(); }
    std::size_t size() const noexcept { return layout_.size(); }
    bool empty() const noexcept { return layout_.empty(); }
    bool is_contiguous() const noexcept { return layout_.is_contiguous(); }

    // --- data ---------------------------------------------------------------
    /// The device pointer of element (0, ..., 0).
    T* data() const noexcept { return layout_.data(); }
    const std::shared_ptr<T>& storage() const noexcept { return layout_.storage(); }

    /// The single element of a one-element tensor, copied to the host.
    T item() const {
        if (size() != 1) throw shape_error("tensor::item: tensor of shape " + to_string(shape()) + " is not one element");
        T v;
        sys::copy_out(data(), &v, 1);
        return v;
    }

    /// Elements in row-major order, copied to the host.
    std::vector<T> to_vector() const {
        const tensor c = contiguous();
        std::vector<T> out(size());
        if (!out.empty()) sys::copy_out(c.data(), out.data(), out.size());
        return out;
    }

    // --- in-place -----------------------------------------------------------
    const tensor& fill(T v) const {
        if (empty()) return *this;
        if (is_contiguous())
            thrust::fill_n(sys::policy(), data(), size(), v);
        else
            detail::thrust_backend::for_each_index<D>(size(), detail::thrust_backend::fill_strided<T>{data(), index(), v});
        return *this;
    }

    /// Copies `src` (same shape, or broadcastable to this shape) into this tensor's elements.
    const tensor& assign(const tensor& src) const {
        if (broadcast_shapes(shape(), src.shape(), "tensor::assign") != shape())
            throw shape_error("tensor::assign: source shape " + to_string(src.shape()) +
                              " does not broadcast to destination shape " + to_string(shape()));
        if (empty()) return *this;
        // gather into a buffer first so overlapping views are safe
        auto buf = uninitialized(shape());
        const auto sst = broadcast_strides(src.shape(), src.strides(), shape());
        detail::thrust_backend::for_each_index<D>(
            size(), detail::thrust_backend::gather<T, T>{src.data(), buf.data(), detail::thrust_backend::make_index(shape(), sst)});
        detail::thrust_backend::for_each_index<D>(size(), detail::thrust_backend::scatter<T>{buf.data(), data(), index()});
        return *this;
    }

    // --- copies and views ---------------------------------------------------
    /// A contiguous copy.
    tensor clone() const { return astype<T>(); }

    /// This tensor if contiguous, else a contiguous copy.
    tensor contiguous() const { return is_contiguous() ? *this : clone(); }

    /// Same elements, new shape; a view when contiguous, a copy otherwise. One dimension may be -1.
    tensor reshape(const std::vector<std::ptrdiff_t>& new_shape) const { return tensor(contiguous().layout_.reshape(new_shape)); }
    tensor reshape(shape_t s) const { return tensor(contiguous().layout_.reshape(std::move(s))); }
    tensor reshape(std::initializer_list<std::ptrdiff_t> s) const { return reshape(std::vector<std::ptrdiff_t>(s)); }

    tensor transpose(std::ptrdiff_t a, std::ptrdiff_t b) const { return tensor(layout_.transpose(a, b)); }
    tensor t() const { return tensor(layout_.t()); }
    tensor permute(const std::vector<std::ptrdiff_t>& order) const { return tensor(layout_.permute(order)); }
    tensor slice(std::ptrdiff_t axis, std::ptrdiff_t start, std::ptrdiff_t stop, std::ptrdiff_t step = 1) const {
        return tensor(layout_.slice(axis, start, stop, step));
    }
    tensor select(std::ptrdiff_t axis, std::ptrdiff_t index) const { return tensor(layout_.select(axis, index)); }
    tensor unsqueeze(std::ptrdiff_t axis) const { return tensor(layout_.unsqueeze(axis)); }

    /// Elementwise conversion to another element type (a contiguous copy on the device).
    template <class U>
    tensor<U, D> astype() const {
        auto out = tensor<U, D>::uninitialized(shape());
        if (!empty())
            detail::thrust_backend::for_each_index<D>(size(), detail::thrust_backend::gather<T, U>{data(), out.data(), index()});
        return out;
    }

private:
    explicit tensor(layout_t l) : layout_(std::move(l)) {}
    detail::thrust_backend::strided_index index() const { return detail::thrust_backend::make_index(shape(), strides()); }

    layout_t layout_;
};

// --- moving between the CPU and a Thrust device -----------------------------------

template <thrust_device D>
struct detail::transfer<device::cpu, D> {
    template <class T>
    static tensor<T, D> copy(const tensor<T>& t) {
        const tensor<T> c = t.contiguous();
        auto out = tensor<T, D>::uninitialized(t.shape());
        if (!c.empty()) thrust_backend::system<D>::copy_in(c.data(), out.data(), c.size());
        return out;
    }
};

template <thrust_device D>
struct detail::transfer<D, device::cpu> {
    template <class T>
    static tensor<T> copy(const tensor<T, D>& t) {
        const tensor<T, D> c = t.contiguous();
        auto out = tensor<T>::uninitialized(t.shape());
        if (!c.empty()) thrust_backend::system<D>::copy_out(c.data(), out.data(), c.size());
        return out;
    }
};

/// Prints like the host tensor, with the device: tensor([1, 2], shape={2}, device=thrust_omp).
template <class T, thrust_device D>
std::ostream& operator<<(std::ostream& os, const tensor<T, D>& t) {
    std::ostringstream ss;
    ss.copyfmt(os);
    ss << to<device::cpu>(t);
    std::string s = ss.str();
    s.insert(s.size() - 1, std::string(", device=") + D::name);
    return os << s;
}

}  // namespace xgrad
