#pragma once
// Helpers of the barrier-op kernels on the Thrust devices (ops_*.hpp): integer-label checks
// and single-element reads. Every kernel is a trivially copyable functor run by
// for_each_index<D> (one thread per element or line on the GPU, lanes on the host systems).
#include <cstdint>

#include <thrust/functional.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/transform_reduce.h>

#include "../../ops/detail/device_kernels.hpp"
#include "tensor.hpp"

namespace xgrad::detail::thrust_backend {

/// i when integer label y[i] is outside [0, count) (and not `ignore`, when use_ignore), else none.
struct bad_label_position {
    const std::int64_t* y;
    std::int64_t count, ignore;
    bool use_ignore;
    std::ptrdiff_t none;
    XGRAD_HD std::ptrdiff_t operator()(std::ptrdiff_t i) const {
        const std::int64_t v = y[i];
        const bool ok = (use_ignore && v == ignore) || (v >= 0 && v < count);
        return ok ? none : i;
    }
};

struct min_position {
    XGRAD_HD std::ptrdiff_t operator()(std::ptrdiff_t a, std::ptrdiff_t b) const { return a < b ? a : b; }
};

/// The first position of n labels at y that is out of range (see bad_label_position), or n.
template <class D>
std::ptrdiff_t first_bad_label(const std::int64_t* y, std::size_t n, std::size_t count, bool use_ignore,
                               std::int64_t ignore) {
    const auto len = static_cast<std::ptrdiff_t>(n);
    if (len == 0) return 0;
    return thrust::transform_reduce(
        system<D>::policy(), thrust::counting_iterator<std::ptrdiff_t>(0), thrust::counting_iterator<std::ptrdiff_t>(len),
        bad_label_position{y, static_cast<std::int64_t>(count), ignore, use_ignore, len}, len, min_position{});
}

/// One element of device memory, copied to the host.
template <class D, class T>
T read_element(const T* p) {
    T v;
    system<D>::copy_out(p, &v, 1);
    return v;
}

}  // namespace xgrad::detail::thrust_backend
