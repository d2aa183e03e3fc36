#pragma once
// Activations that fuse into the output pass of matmul, linear and conv2d (the "epilogue"):
//
//   xgrad::linear(x, W, b, xgrad::activation::relu)      // explicit form
//   xgrad::relu(xgrad::matmul(x, W) + b)                  // same node, picked by overload
//   xgrad::relu(xgrad::linear(x, W, b)), xgrad::gelu(xgrad::conv2d(x, w, b, opt)) ...
//
// The fused op writes y = act(z + bias) while each block of z is still in cache, and never
// stores z. Its backward multiplies the upstream gradient by act' computed from the saved
// output y (relu' = [y > 0], tanh' = 1 - y^2, sigmoid' = y (1 - y)); gelu' needs z, so gelu
// alone keeps z. f and df are XGRAD_HD: the device kernels call the same formulas.
#include <concepts>
#include <type_traits>

#include "../expr/functions.hpp"
#include "../expr/unary_ops.hpp"

namespace xgrad {

namespace activation {

/// y = z (no activation).
struct identity_t {
    static constexpr const char* name = "identity";
    static constexpr bool needs_pre = false;
    template <class V> static XGRAD_HD XGRAD_INLINE V f(V z) { return z; }
    template <class V> static XGRAD_HD XGRAD_INLINE V df(V, V) { return V(1); }
};
/// y = max(z, 0); y' = [y > 0] (0 at z = 0, as PyTorch).
struct relu_t {
    static constexpr const char* name = "relu";
    static constexpr bool needs_pre = false;
    template <class V> static XGRAD_HD XGRAD_INLINE V f(V z) { return ops::relu{}.f(z); }
    template <class V> static XGRAD_HD XGRAD_INLINE V df(V, V y) { return detail::vm::select(y > V(0), V(1), V(0)); }
};
/// y = tanh(z); y' = 1 - y^2.
struct tanh_t {
    static constexpr const char* name = "tanh";
    static constexpr bool needs_pre = false;
    template <class V> static XGRAD_HD XGRAD_INLINE V f(V z) { return ops::tanh{}.f(z); }
    template <class V> static XGRAD_HD XGRAD_INLINE V df(V z, V y) { return ops::tanh{}.df(z, y); }
};
/// y = 1 / (1 + e^-z); y' = y (1 - y).
struct sigmoid_t {
    static constexpr const char* name = "sigmoid";
    static constexpr bool needs_pre = false;
    template <class V> static XGRAD_HD XGRAD_INLINE V f(V z) { return ops::sigmoid{}.f(z); }
    template <class V> static XGRAD_HD XGRAD_INLINE V df(V z, V y) { return ops::sigmoid{}.df(z, y); }
};
/// y = z Phi(z) (exact GELU); y' = Phi(z) + z phi(z), which needs z.
struct gelu_t {
    static constexpr const char* name = "gelu";
    static constexpr bool needs_pre = true;
    template <class V> static XGRAD_HD XGRAD_INLINE V f(V z) { return ops::gelu{}.f(z); }
    template <class V> static XGRAD_HD XGRAD_INLINE V df(V z, V y) { return ops::gelu{}.df(z, y); }
};

inline constexpr identity_t identity{};
inline constexpr relu_t relu{};
inline constexpr tanh_t tanh{};
inline constexpr sigmoid_t sigmoid{};
inline constexpr gelu_t gelu{};

}  // namespace activation

/// One of the activation tags above.
template <class A>
concept fusable_activation =
    std::same_as<A, activation::identity_t> || std::same_as<A, activation::relu_t> ||
    std::same_as<A, activation::tanh_t> || std::same_as<A, activation::sigmoid_t> ||
    std::same_as<A, activation::gelu_t>;

namespace detail {

/// Specialised by matmul.hpp and conv.hpp for the node types an activation can fuse into;
/// a specialisation provides `static auto fuse(Act, const E&)` returning the fused node.
template <class E>
struct dense_fusion : std::false_type {};

template <class X>
concept dense_fusable = dense_fusion<std::remove_cvref_t<X>>::value;

}  // namespace detail

// These overloads are more constrained than the generic ones in expr/functions.hpp, so
// relu(matmul(x, W) + b) and friends resolve here and build one fused node.
template <operand X>
    requires detail::dense_fusable<X>
auto relu(X&& x) {
    return detail::dense_fusion<std::remove_cvref_t<X>>::fuse(activation::relu, x);
}
template <operand X>
    requires detail::dense_fusable<X>
auto tanh(X&& x) {
    return detail::dense_fusion<std::remove_cvref_t<X>>::fuse(activation::tanh, x);
}
template <operand X>
    requires detail::dense_fusable<X>
auto sigmoid(X&& x) {
    return detail::dense_fusion<std::remove_cvref_t<X>>::fuse(activation::sigmoid, x);
}
template <operand X>
    requires detail::dense_fusable<X>
auto gelu(X&& x) {
    return detail::dense_fusion<std::remove_cvref_t<X>>::fuse(activation::gelu, x);
}

}  // namespace xgrad
