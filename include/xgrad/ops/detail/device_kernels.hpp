#pragma once
// Barrier ops on devices other than the CPU. An op's Impl (see expr/op_node.hpp) holds its CPU
// kernels; a device backend adds the same op's kernels for its devices by specializing
//
//   template <...> struct device_kernels<Impl, D> {
//       static constexpr bool available = true;
//       static tensor<T, D> forward(const Impl&, const tensor<T, D>&... inputs);
//       static void backward(const Impl&, const tensor<T, D>& grad_out, const tensor<T, D>& out,
//                            const std::array<tensor<T, D>, N>& inputs,
//                            std::array<tensor<T, D>*, N> grad_inputs);
//   };
//
// and the Impl overloads its forward/backward over tensor<T, D> for the devices where
// has_device_kernels<Impl, D> holds, forwarding to it. The kernels themselves live with the
// backend (backend/thrust/ops_nn.hpp for the Thrust devices), so a CPU-only build never
// compiles them, and an op handed operands on a device without kernels still fails with
// op_node's "no kernel on the operands' device" message.
#include <concepts>
#include <type_traits>

#include "../../expr/node.hpp"

namespace xgrad::detail {

/// The kernels of barrier op Impl on device D; none unless a device backend specializes it.
template <class Impl, class D>
struct device_kernels {
    static constexpr bool available = false;
};

template <class Impl, class D>
concept has_device_kernels = (!std::same_as<D, device::cpu>) && device_kernels<Impl, D>::available;

/// The device an op over expressions E... runs on (the CPU when every operand is a constant).
template <class... E>
using op_device_t = std::conditional_t<
    std::is_same_v<typename common_device_of<device_of_t<E>...>::type, any_device>, device::cpu,
    typename common_device_of<device_of_t<E>...>::type>;

}  // namespace xgrad::detail
