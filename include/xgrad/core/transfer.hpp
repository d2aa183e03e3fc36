#pragma once
// Device-generic spellings, so one source builds for every device by changing one type:
// xgrad::to<Device>(tensor or parameter), and zeros/ones/full/empty<T, Device>(shape).
// Copies between the CPU and a device are the device backend's job (detail::transfer).
#include <concepts>
#include <type_traits>

#include "parameter.hpp"
#include "tensor.hpp"

namespace xgrad {

namespace detail {
/// Copies a tensor from device From to device To (one of them the CPU):
///   static tensor<T, To> copy(const tensor<T, From>&)   -> a contiguous copy
/// Backends specialize it; include <xgrad/device.hpp> for the Thrust devices.
template <class From, class To>
struct transfer {
    static_assert(sizeof(From) == 0,
                  "xgrad::to<Device>: no copy between these devices; include <xgrad/device.hpp> (and compile .cu "
                  "files with nvcc for xgrad::device::cuda)");
};
}  // namespace detail

/// The tensor on device To: itself when it is there already, else a contiguous copy.
template <class To, class T, class From>
tensor<T, To> to(const tensor<T, From>& t) {
    if constexpr (std::is_same_v<To, From>)
        return t;
    else if constexpr (std::is_same_v<To, device::cpu> || std::is_same_v<From, device::cpu>)
        return detail::transfer<From, To>::copy(t);
    else
        return to<To>(to<device::cpu>(t));  // between two devices: through the host
}

/// The parameter on device To: itself when it is there already, else a new parameter holding a
/// copy of the value (same name and requires_grad; its gradient starts at zero).
template <class To, class T, class From>
parameter<T, To> to(const parameter<T, From>& p) {
    if constexpr (std::is_same_v<To, From>) {
        return p;
    } else {
        parameter<T, To> q(to<To>(p.value()), p.name());
        q.requires_grad(p.requires_grad());
        return q;
    }
}

// Factories on any device: zeros<float, Device>(shape). The CPU ones (one template argument)
// are in tensor.hpp; these take the device as a second one.
template <class T, class Device>
tensor<T, Device> empty(shape_t shape) {
    return tensor<T, Device>::uninitialized(std::move(shape));
}
template <class T, class Device>
tensor<T, Device> full(shape_t shape, T value) {
    auto t = tensor<T, Device>::uninitialized(std::move(shape));
    t.fill(value);
    return t;
}
template <class T, class Device>
tensor<T, Device> zeros(shape_t shape) {
    return full<T, Device>(std::move(shape), T(0));
}
template <class T, class Device>
tensor<T, Device> ones(shape_t shape) {
    return full<T, Device>(std::move(shape), T(1));
}
template <class T, class Device>
    requires(!std::same_as<Device, device::cpu>)
tensor<T, Device> zeros_like(const tensor<T, Device>& t) {
    return zeros<T, Device>(t.shape());
}
template <class T, class Device>
    requires(!std::same_as<Device, device::cpu>)
tensor<T, Device> ones_like(const tensor<T, Device>& t) {
    return ones<T, Device>(t.shape());
}

}  // namespace xgrad
