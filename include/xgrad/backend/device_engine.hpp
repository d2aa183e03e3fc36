#pragma once
// The executor for expressions whose leaves live on a device other than the CPU. eval(),
// backward() and the reductions call the CPU engine (backend/cpu/engine.hpp) directly for
// CPU expressions and device_engine<Device> for the others; a device backend specializes it
// (backend/thrust/engine.hpp does for the Thrust devices) with the same operations:
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

namespace xgrad::detail {

template <class Device>
struct device_engine {
    static_assert(sizeof(Device) == 0,
                  "xgrad: no engine for this device; include <xgrad/device.hpp> (and compile .cu files "
                  "with nvcc for xgrad::device::cuda)");
};

}  // namespace xgrad::detail
