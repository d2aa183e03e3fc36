#pragma once
// Barrier ops on devices other than the CPU. An op's Impl (see expr/op_node.hpp) holds its CPU
// kernels, and op_node calls every kernel through detail::device_kernels<Impl, D> (declared in
// expr/op_node.hpp; unspecialized, it forwards to the Impl's own kernels: the CPU's, or those of
// a device-generic op such as reshape). A device backend adds an op's kernels for its devices
// by specializing
//
//   template <...> struct device_kernels<Impl, D> {
//       static constexpr bool available = true;
//       static tensor<T, D> forward(const Impl&, const tensor<T, D>&... inputs);
//       static void backward(const Impl&, const tensor<T, D>& grad_out, const tensor<T, D>& out,
//                            const std::array<tensor<T, D>, N>& inputs,
//                            std::array<tensor<T, D>*, N> grad_inputs);
//   };
//
// and nothing in the op's own file changes. The kernels themselves live with the backend
// (backend/thrust/ops_nn.hpp for the Thrust devices), so a CPU-only build never compiles them,
// and an op handed operands on a device without kernels fails with op_node's "no kernel on the
// operands' device" message. Per-line formulas that both sides evaluate are XGRAD_HD templates
// in the op's file (softmax_line, class_loss_sample, layer_norm_row_stats, window_argmax ...),
// over the line walkers of line.hpp; the backends keep only their drivers.
#include <concepts>
#include <type_traits>

#include "../../expr/op_node.hpp"

namespace xgrad::detail {

/// Whether a device backend supplies Impl's kernels (or, for dropout_mask, its mask) on D.
template <class Impl, class D>
concept has_device_kernels = device_kernels<Impl, D>::available;

/// The device an op over expressions E... runs on (the CPU when every operand is a constant).
template <class... E>
using op_device_t = std::conditional_t<
    std::is_same_v<typename common_device_of<device_of_t<E>...>::type, any_device>, device::cpu,
    typename common_device_of<device_of_t<E>...>::type>;

}  // namespace xgrad::detail
