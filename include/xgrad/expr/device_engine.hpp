#pragma once
// The executor interface. Expression nodes, eval(), backward() and assign() run a whole
// expression through device_engine<Device>, Device being where its leaves live; every backend
// specializes it for its devices: backend/cpu/engine.hpp for device::cpu, backend/thrust/engine.hpp
// for the Thrust devices. Only the primary template is declared here, below the backends, so
// the expression layer never includes a backend; the specialization must be visible where an
// expression is run (<xgrad/xgrad.hpp>, and every header that runs expressions, include the
// CPU one). Operations (T = e's element type; every tensor is on Device):
//
//   eval(e)                          -> tensor<T, Device>, e's value (contiguous)
//   reduce<Red>(e, keep_shape, n)    -> tensor<T, Device> of keep_shape: Red (reductions::sum,
//                                       mean or max) over the axes keep_shape has as 1; n is
//                                       the number of elements reduced into each result
//   backward(e, up, scale)           -> pushes up * scale (broadcast to e) into e's leaves
//   sum_backward(e, g)               -> sum(e) * g, pushing g into e's leaves, in one pass
//   value_backward(e)                -> e's value (e is one element) and d e / d leaves
//   max_backward(e, m, up)           -> up to the elements of e equal to m, split among ties
//   assign(a...)                     -> the fused assignments into(dst, e)... of expr/assign.hpp
//                                       (shapes checked by the caller), in order per element
#include <type_traits>

namespace xgrad::detail {

template <class E>
using value_t = typename std::remove_cvref_t<E>::value_type;

template <class Device>
struct device_engine {
    static_assert(sizeof(Device) == 0,
                  "xgrad: no engine for this device is visible here; include <xgrad/xgrad.hpp> (the CPU) or "
                  "<xgrad/device.hpp> (Thrust devices; compile .cu files with nvcc for xgrad::device::cuda)");
};

}  // namespace xgrad::detail
