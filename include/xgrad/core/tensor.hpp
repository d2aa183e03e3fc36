#pragma once
// xgrad::tensor: a shared handle to strided storage (like a PyTorch tensor).
// Copying a tensor shares its data; views (reshape, transpose, slice) share it too.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <iomanip>
#include <memory>
#include <new>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "rng.hpp"
#include "shape.hpp"
#include "storage_cache.hpp"

namespace xgrad {

/// Where a tensor's storage lives. Device backends add their own tags.
namespace device {
struct cpu {
    static constexpr const char* name = "cpu";
};
}  // namespace device

template <class T, class Device = device::cpu>
class tensor;

namespace detail {

/// Counts tensor storage allocations (tests use it to prove that fused loops allocate nothing).
inline std::atomic<std::size_t>& allocation_count() {
    static std::atomic<std::size_t> n{0};
    return n;
}

/// 64-byte aligned, uninitialised storage for n elements (never null, even for n == 0); large
/// blocks come from and go back to the storage cache (core/storage_cache.hpp).
template <class T>
std::shared_ptr<T> allocate(std::size_t n) {
    allocation_count().fetch_add(1, std::memory_order_relaxed);
    static_assert(std::is_trivially_copyable_v<T>, "xgrad tensors hold trivially copyable element types");
    const std::size_t bytes = storage_cache::size_class(std::max<std::size_t>(n * sizeof(T), 1));
    void* p = storage_cache::instance().get(bytes);
    return std::shared_ptr<T>(static_cast<T*>(p), [bytes](T* q) { storage_cache::instance().put(q, bytes); });
}

/// Calls f(offset) for every element of a strided layout, in row-major order.
template <class F>
void for_each_offset(const shape_t& shape, const strides_t& strides, F&& f) {
    const std::size_t n = numel(shape);
    if (n == 0) return;
    const std::size_t r = shape.size();
    if (r == 0) {
        f(std::ptrdiff_t{0});
        return;
    }
    std::vector<std::size_t> idx(r, 0);
    std::ptrdiff_t off = 0;
    const std::size_t inner = shape[r - 1];
    const std::ptrdiff_t is = strides[r - 1];
    for (std::size_t done = 0; done < n; done += inner) {
        for (std::size_t j = 0; j < inner; ++j) f(off + static_cast<std::ptrdiff_t>(j) * is);
        // advance the outer multi-index
        for (std::size_t d = r - 1; d-- > 0;) {
            off += strides[d];
            if (++idx[d] < shape[d]) break;
            off -= strides[d] * static_cast<std::ptrdiff_t>(shape[d]);
            idx[d] = 0;
        }
    }
}

}  // namespace detail

/// A host tensor: shape, strides (in elements) and 64-byte aligned shared storage.
template <class T>
class tensor<T, device::cpu> {
    static_assert(std::is_arithmetic_v<T>, "xgrad::tensor<T>: T must be an arithmetic type (float, double, int ...)");

public:
    using value_type = T;
    using device_type = device::cpu;

    /// An empty tensor of shape {0}.
    tensor() : data_(detail::allocate<T>(0)), shape_{0}, strides_{1} {}

    /// A zero-filled tensor of the given shape.
    explicit tensor(shape_t shape) : tensor(uninitialized(std::move(shape))) { fill(T(0)); }

    /// A tensor of the given shape holding `values` in row-major order.
    tensor(shape_t shape, std::initializer_list<T> values) : tensor(uninitialized(std::move(shape))) {
        if (values.size() != size())
            throw shape_error("tensor: " + std::to_string(values.size()) + " values given for shape " +
                              to_string(shape_));
        std::copy(values.begin(), values.end(), data());
    }

    /// Wraps existing storage. `data` points at element (0, ..., 0) and keeps the owner alive.
    tensor(std::shared_ptr<T> data, shape_t shape, strides_t strides)
        : data_(std::move(data)), shape_(std::move(shape)), strides_(std::move(strides)) {
        if (shape_.size() != strides_.size())
            throw shape_error("tensor: shape " + to_string(shape_) + " and strides of rank " +
                              std::to_string(strides_.size()) + " differ in rank");
    }

    /// A contiguous tensor whose elements are not initialised.
    static tensor uninitialized(shape_t shape) {
        auto st = contiguous_strides(shape);
        auto n = checked_numel(shape);
        return tensor(detail::allocate<T>(n), std::move(shape), std::move(st));
    }

    /// Element count of a shape, throwing value_error when it overflows.
    static std::size_t checked_numel(const shape_t& s) {
        std::size_t n = 1;
        bool zero = false;
        for (auto d : s) zero = zero || d == 0;
        if (zero) return 0;
        for (auto d : s) {
            if (n > (std::size_t{1} << 62) / d)
                throw value_error("tensor: shape " + to_string(s) + " has more elements than can be addressed");
            n *= d;
        }
        return n;
    }

    // --- geometry -----------------------------------------------------------
    const shape_t& shape() const noexcept { return shape_; }
    std::size_t shape(std::ptrdiff_t axis) const { return shape_[normalize_axis(axis, dim(), "tensor::shape")]; }
    const strides_t& strides() const noexcept { return strides_; }
    std::size_t dim() const noexcept { return shape_.size(); }
    std::size_t size() const noexcept { return numel(shape_); }
    bool empty() const noexcept { return size() == 0; }
    bool is_contiguous() const noexcept {
        std::ptrdiff_t acc = 1;
        for (std::size_t i = shape_.size(); i-- > 0;) {
            if (shape_[i] != 1 && strides_[i] != acc) return false;
            acc *= static_cast<std::ptrdiff_t>(shape_[i]);
        }
        return true;
    }

    // --- data ---------------------------------------------------------------
    T* data() const noexcept { return data_.get(); }
    const std::shared_ptr<T>& storage() const noexcept { return data_; }

    /// Unchecked element access: t(i, j, k).
    template <class... I>
    T& operator()(I... i) const noexcept {
        static_assert((std::is_integral_v<I> && ...), "tensor::operator(): indices must be integers");
        std::size_t k = 0;
        std::ptrdiff_t off = 0;
        ((off += static_cast<std::ptrdiff_t>(i) * strides_[k++]), ...);
        return data_.get()[off];
    }

    /// Bounds-checked element access; throws index_error with the offending index.
    T& at(const std::vector<std::ptrdiff_t>& idx) const {
        if (idx.size() != dim())
            throw index_error("tensor::at: " + std::to_string(idx.size()) + " indices for a tensor of shape " +
                              to_string(shape_));
        std::ptrdiff_t off = 0;
        for (std::size_t d = 0; d < idx.size(); ++d) {
            if (idx[d] < 0 || static_cast<std::size_t>(idx[d]) >= shape_[d])
                throw index_error("tensor::at: index " + std::to_string(idx[d]) + " is out of range for axis " +
                                  std::to_string(d) + " of shape " + to_string(shape_));
            off += idx[d] * strides_[d];
        }
        return data_.get()[off];
    }

    /// The single element of a one-element tensor.
    T item() const {
        if (size() != 1) throw shape_error("tensor::item: tensor of shape " + to_string(shape_) + " is not one element");
        return data_.get()[0];
    }

    /// Elements in row-major order (copies).
    std::vector<T> to_vector() const {
        std::vector<T> out;
        out.reserve(size());
        const T* p = data();
        detail::for_each_offset(shape_, strides_, [&](std::ptrdiff_t o) { out.push_back(p[o]); });
        return out;
    }

    // --- in-place -----------------------------------------------------------
    const tensor& fill(T v) const {
        T* p = data();
        if (is_contiguous())
            std::fill(p, p + size(), v);
        else
            detail::for_each_offset(shape_, strides_, [&](std::ptrdiff_t o) { p[o] = v; });
        return *this;
    }

    /// Copies `src` (same shape, or broadcastable to this shape) into this tensor's elements.
    const tensor& assign(const tensor& src) const {
        if (broadcast_shapes(shape_, src.shape_, "tensor::assign") != shape_)
            throw shape_error("tensor::assign: source shape " + to_string(src.shape_) +
                              " does not broadcast to destination shape " + to_string(shape_));
        auto sst = broadcast_strides(src.shape_, src.strides_, shape_);
        // walk both layouts in the same order
        std::vector<std::ptrdiff_t> dst_off, src_off;
        dst_off.reserve(size());
        detail::for_each_offset(shape_, strides_, [&](std::ptrdiff_t o) { dst_off.push_back(o); });
        src_off.reserve(size());
        detail::for_each_offset(shape_, sst, [&](std::ptrdiff_t o) { src_off.push_back(o); });
        // copy through a buffer so overlapping views are safe
        std::vector<T> buf(src_off.size());
        for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = src.data()[src_off[i]];
        for (std::size_t i = 0; i < buf.size(); ++i) data()[dst_off[i]] = buf[i];
        return *this;
    }

    // --- copies and views ---------------------------------------------------
    /// A contiguous copy.
    tensor clone() const {
        auto out = uninitialized(shape_);
        T* q = out.data();
        const T* p = data();
        if (is_contiguous())
            std::memcpy(q, p, size() * sizeof(T));
        else
            detail::for_each_offset(shape_, strides_, [&](std::ptrdiff_t o) { *q++ = p[o]; });
        return out;
    }

    /// This tensor if contiguous, else a contiguous copy.
    tensor contiguous() const { return is_contiguous() ? *this : clone(); }

    /// Same elements, new shape; a view when contiguous, a copy otherwise.
    /// One dimension may be -1 and is inferred.
    tensor reshape(const std::vector<std::ptrdiff_t>& new_shape) const {
        shape_t s(new_shape.size());
        std::ptrdiff_t infer = -1;
        std::size_t known = 1;
        for (std::size_t i = 0; i < new_shape.size(); ++i) {
            if (new_shape[i] == -1) {
                if (infer >= 0) throw shape_error("reshape: more than one -1 in the new shape");
                infer = static_cast<std::ptrdiff_t>(i);
            } else if (new_shape[i] < 0) {
                throw shape_error("reshape: negative dimension " + std::to_string(new_shape[i]));
            } else {
                s[i] = static_cast<std::size_t>(new_shape[i]);
                known *= s[i];
            }
        }
        if (infer >= 0) {
            if (known == 0 || size() % known != 0)
                throw shape_error("reshape: cannot infer -1 to reshape " + to_string(shape_) + " (" +
                                  std::to_string(size()) + " elements)");
            s[static_cast<std::size_t>(infer)] = size() / known;
        }
        return reshape(std::move(s));
    }
    tensor reshape(shape_t s) const {
        if (numel(s) != size())
            throw shape_error("reshape: cannot reshape " + to_string(shape_) + " (" + std::to_string(size()) +
                              " elements) to " + to_string(s) + " (" + std::to_string(numel(s)) + " elements)");
        auto base = contiguous();
        auto st = contiguous_strides(s);
        return tensor(base.data_, std::move(s), std::move(st));
    }
    tensor reshape(std::initializer_list<std::ptrdiff_t> s) const { return reshape(std::vector<std::ptrdiff_t>(s)); }

    /// A view with dimensions `a` and `b` swapped.
    tensor transpose(std::ptrdiff_t a, std::ptrdiff_t b) const {
        auto i = normalize_axis(a, dim(), "transpose");
        auto j = normalize_axis(b, dim(), "transpose");
        auto s = shape_;
        auto st = strides_;
        std::swap(s[i], s[j]);
        std::swap(st[i], st[j]);
        return tensor(data_, std::move(s), std::move(st));
    }
    /// 2-D transpose view.
    tensor t() const {
        if (dim() != 2) throw shape_error("t: expects a 2-D tensor, got shape " + to_string(shape_));
        return transpose(0, 1);
    }

    /// A view with dimensions reordered: result dim i is this tensor's dim order[i].
    tensor permute(const std::vector<std::ptrdiff_t>& order) const {
        if (order.size() != dim())
            throw shape_error("permute: " + std::to_string(order.size()) + " axes given for shape " + to_string(shape_));
        std::vector<bool> seen(dim(), false);
        shape_t s(dim());
        strides_t st(dim());
        for (std::size_t i = 0; i < order.size(); ++i) {
            auto a = normalize_axis(order[i], dim(), "permute");
            if (seen[a]) throw index_error("permute: axis " + std::to_string(order[i]) + " repeated");
            seen[a] = true;
            s[i] = shape_[a];
            st[i] = strides_[a];
        }
        return tensor(data_, std::move(s), std::move(st));
    }

    /// A view of elements [start, stop) with `step` along `axis` (Python semantics for negative
    /// start/stop; stop is clamped to the extent).
    tensor slice(std::ptrdiff_t axis, std::ptrdiff_t start, std::ptrdiff_t stop, std::ptrdiff_t step = 1) const {
        auto a = normalize_axis(axis, dim(), "slice");
        const auto n = static_cast<std::ptrdiff_t>(shape_[a]);
        if (step <= 0) throw value_error("slice: step must be positive, got " + std::to_string(step));
        if (start < 0) start += n;
        if (stop < 0) stop += n;
        if (stop > n) stop = n;
        if (start < 0 || start > n)
            throw index_error("slice: start " + std::to_string(start) + " is out of range for axis " +
                              std::to_string(a) + " of extent " + std::to_string(n));
        if (stop < start) stop = start;
        auto s = shape_;
        auto st = strides_;
        s[a] = static_cast<std::size_t>((stop - start + step - 1) / step);
        st[a] = strides_[a] * step;
        std::shared_ptr<T> p(data_, data_.get() + start * strides_[a]);
        return tensor(std::move(p), std::move(s), std::move(st));
    }

    /// The sub-tensor at `index` along `axis` (the axis is removed).
    tensor select(std::ptrdiff_t axis, std::ptrdiff_t index) const {
        auto a = normalize_axis(axis, dim(), "select");
        const auto n = static_cast<std::ptrdiff_t>(shape_[a]);
        if (index < -n || index >= n)
            throw index_error("select: index " + std::to_string(index) + " is out of range for axis " +
                              std::to_string(a) + " of extent " + std::to_string(n));
        if (index < 0) index += n;
        auto s = shape_;
        auto st = strides_;
        s.erase(s.begin() + static_cast<std::ptrdiff_t>(a));
        st.erase(st.begin() + static_cast<std::ptrdiff_t>(a));
        std::shared_ptr<T> p(data_, data_.get() + index * strides_[a]);
        return tensor(std::move(p), std::move(s), std::move(st));
    }

    /// A view with a size-1 dimension inserted at `axis`.
    tensor unsqueeze(std::ptrdiff_t axis) const {
        auto a = normalize_axis(axis, dim() + 1, "unsqueeze");
        auto s = shape_;
        auto st = strides_;
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(a), 1);
        st.insert(st.begin() + static_cast<std::ptrdiff_t>(a), 0);
        return tensor(data_, std::move(s), std::move(st));
    }

    /// Elementwise conversion to another element type (a contiguous copy).
    template <class U>
    tensor<U> astype() const {
        auto out = tensor<U>::uninitialized(shape_);
        U* q = out.data();
        const T* p = data();
        detail::for_each_offset(shape_, strides_, [&](std::ptrdiff_t o) { *q++ = static_cast<U>(p[o]); });
        return out;
    }

private:
    std::shared_ptr<T> data_;
    shape_t shape_;
    strides_t strides_;
};

// --- factories -----------------------------------------------------------------

template <class T>
tensor<T> empty(shape_t shape) {
    return tensor<T>::uninitialized(std::move(shape));
}
template <class T>
tensor<T> full(shape_t shape, T value) {
    auto t = tensor<T>::uninitialized(std::move(shape));
    t.fill(value);
    return t;
}
template <class T>
tensor<T> zeros(shape_t shape) {
    return full<T>(std::move(shape), T(0));
}
template <class T>
tensor<T> ones(shape_t shape) {
    return full<T>(std::move(shape), T(1));
}
template <class T>
tensor<T> zeros_like(const tensor<T>& t) {
    return zeros<T>(t.shape());
}
template <class T>
tensor<T> ones_like(const tensor<T>& t) {
    return ones<T>(t.shape());
}

/// A 1-D tensor holding start, start + step, ... (< stop), like numpy.arange.
template <class T>
tensor<T> arange(T start, T stop, T step = T(1)) {
    if (step == T(0)) throw value_error("arange: step must not be zero");
    const double n = std::ceil((static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step));
    auto t = tensor<T>::uninitialized({n > 0 ? static_cast<std::size_t>(n) : 0});
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<T>(start + static_cast<T>(i) * step);
    return t;
}
template <class T>
tensor<T> arange(T stop) {
    return arange<T>(T(0), stop, T(1));
}

/// Normally distributed values (mean, stddev) drawn from `gen`.
template <class T>
tensor<T> randn(shape_t shape, rng& gen, T mean = T(0), T stddev = T(1)) {
    static_assert(std::is_floating_point_v<T>, "randn: T must be a floating-point type");
    if (!(stddev >= T(0))) throw value_error("randn: stddev must be >= 0, got " + std::to_string(stddev));
    auto t = tensor<T>::uninitialized(std::move(shape));
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<T>(gen.normal(mean, stddev));
    return t;
}

/// Uniformly distributed values in [lo, hi) drawn from `gen`.
template <class T>
tensor<T> uniform(shape_t shape, rng& gen, T lo = T(0), T hi = T(1)) {
    if (!(lo <= hi)) throw value_error("uniform: lo must be <= hi");
    auto t = tensor<T>::uninitialized(std::move(shape));
    for (std::size_t i = 0; i < t.size(); ++i) {
        if constexpr (std::is_floating_point_v<T>)
            t.data()[i] = static_cast<T>(gen.uniform(lo, hi));
        else
            t.data()[i] = static_cast<T>(lo + static_cast<T>(gen.below(static_cast<std::uint64_t>(hi - lo))));
    }
    return t;
}

/// A contiguous tensor copied from `values` (row-major) with the given shape.
template <class T>
tensor<T> from_vector(const std::vector<T>& values, shape_t shape) {
    if (values.size() != numel(shape))
        throw shape_error("from_vector: " + std::to_string(values.size()) + " values for shape " + to_string(shape));
    auto t = tensor<T>::uninitialized(std::move(shape));
    std::copy(values.begin(), values.end(), t.data());
    return t;
}

// --- printing ------------------------------------------------------------------

namespace detail {
template <class T>
void print_rec(std::ostream& os, const T* p, const shape_t& s, const strides_t& st, std::size_t d, int indent) {
    constexpr std::size_t edge = 3, limit = 6;  // show 3 leading and trailing items of long axes
    os << '[';
    const std::size_t n = s[d];
    for (std::size_t i = 0; i < n; ++i) {
        if (n > limit && i == edge) {
            os << (d + 1 == s.size() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
            i = n - edge;
        }
        const T* q = p + static_cast<std::ptrdiff_t>(i) * st[d];
        if (d + 1 == s.size()) {
            if constexpr (std::is_floating_point_v<T>)
                os << std::setprecision(4) << *q;
            else
                os << +*q;
        } else {
            print_rec(os, q, s, st, d + 1, indent + 1);
        }
        if (i + 1 < n) os << (d + 1 == s.size() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
    }
    os << ']';
}
}  // namespace detail

/// Prints like PyTorch: tensor([[1, 2], [3, 4]], shape={2, 2}); long axes are elided.
template <class T>
std::ostream& operator<<(std::ostream& os, const tensor<T>& t) {
    os << "tensor(";
    if (t.dim() == 0)
        os << +t.data()[0];
    else if (t.empty())
        os << "[]";
    else
        detail::print_rec(os, t.data(), t.shape(), t.strides(), 0, 7);
    return os << ", shape=" << to_string(t.shape()) << ')';
}

template <class T>
std::string to_string(const tensor<T>& t) {
    std::ostringstream os;
    os << t;
    return os.str();
}

}  // namespace xgrad
