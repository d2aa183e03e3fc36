#pragma once
// What makes a struct a layer, and the walks over a tree of layers (parameters with dotted
// names, train/eval, freezing).
//
// A layer is any type with a forward(x) returning an expression and a description of its
// members: for_each_member(f) calls f(name, member) for each parameter<T>, buffer tensor<T>,
// sub-layer, or std::vector/std::array of these. A user-defined layer writes that description
// in one line with XGRAD_MODULE:
//
//   struct residual : xgrad::nn::module<residual> {      // the base is optional: it adds the
//       xgrad::nn::linear<float> fc1, fc2;                // members named_parameters(), train() ...
//       residual(std::size_t d, std::size_t h) : fc1(d, h), fc2(h, d) {}
//       template <class X> auto forward(X&& x) { return x + fc2(xgrad::gelu(fc1(x))); }
//       XGRAD_MODULE(fc1, fc2)
//   };
//
// Names are PyTorch's: a member's name, dotted below its parent's ("block.fc1.weight"), and
// positions in a sequential or a vector ("0.weight", "blocks.3.bias"). Every walk also writes
// these names into the parameters (parameter::name()) and into layers built on module<>
// (their path(), which their error messages start with).
#include <array>
#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>
#if defined(__GNUG__)
#include <cxxabi.h>
#endif

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/parameter.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../expr/node.hpp"  // detail::is_parameter

namespace xgrad::nn {

/// The generator layers draw their initial values and dropout masks from unless given one.
inline rng& default_generator() {
    static rng g(0);
    return g;
}
/// Reseeds default_generator() (like torch.manual_seed): layers built afterwards repeat.
inline void manual_seed(std::uint64_t seed) { default_generator().reseed(seed); }

namespace detail {

template <class X>
struct is_std_vector : std::false_type {};
template <class X, class A>
struct is_std_vector<std::vector<X, A>> : std::true_type {};
template <class X>
struct is_std_array : std::false_type {};
template <class X, std::size_t N>
struct is_std_array<std::array<X, N>> : std::true_type {};

/// Something with a member description: for_each_member(f).
struct member_probe {
    template <class M>
    void operator()(const char*, M&) const {}
};
template <class X>
concept described = requires(X& x) { x.for_each_member(member_probe{}); };

/// The parameters' element type of a layer or member (void where there is none), found from
/// value_type or, for XGRAD_MODULE layers, from the listed members.
template <class A, class B>
constexpr auto combine_value(std::type_identity<A>, std::type_identity<B>) {
    if constexpr (std::is_void_v<A>)
        return std::type_identity<B>{};
    else if constexpr (std::is_void_v<B> || std::is_same_v<A, B>)
        return std::type_identity<A>{};
    else
        static_assert(sizeof(A) == 0, "xgrad::nn: a layer mixes float and double parameters");
}
template <class X>
constexpr auto value_probe();
template <class Tuple>
struct members_value;
template <>
struct members_value<std::tuple<>> {
    using type = void;
};
template <class M0, class... M>
struct members_value<std::tuple<M0, M...>> {
    using type = typename decltype(combine_value(
        value_probe<M0>(), std::type_identity<typename members_value<std::tuple<M...>>::type>{}))::type;
};
template <class X>
constexpr auto value_probe() {
    using D = std::remove_cvref_t<X>;
    if constexpr (xgrad::detail::is_parameter<D>::value)
        return std::type_identity<typename D::value_type>{};
    else if constexpr (xgrad::detail::is_tensor<D>::value)
        return std::conditional_t<std::is_floating_point_v<typename D::value_type>,
                                  std::type_identity<typename D::value_type>, std::type_identity<void>>{};
    else if constexpr (is_std_vector<D>::value || is_std_array<D>::value)
        return value_probe<typename D::value_type>();
    else if constexpr (requires { typename D::value_type; })
        return std::type_identity<typename D::value_type>{};
    else if constexpr (requires(D& d) { d.xgrad_members(); })
        return std::type_identity<typename members_value<decltype(std::declval<D&>().xgrad_members())>::type>{};
    else
        return std::type_identity<void>{};
}

/// The device of a layer's parameters and buffers (void where there are none), found like
/// value_probe: from device_type or, for XGRAD_MODULE layers, from the listed members.
template <class A, class B>
constexpr auto combine_device(std::type_identity<A>, std::type_identity<B>) {
    if constexpr (std::is_void_v<A>)
        return std::type_identity<B>{};
    else if constexpr (std::is_void_v<B> || std::is_same_v<A, B>)
        return std::type_identity<A>{};
    else
        static_assert(sizeof(A) == 0, "xgrad::nn: a layer mixes parameters on different devices");
}
template <class X>
constexpr auto device_probe();
template <class Tuple>
struct members_device;
template <>
struct members_device<std::tuple<>> {
    using type = void;
};
template <class M0, class... M>
struct members_device<std::tuple<M0, M...>> {
    using type = typename decltype(combine_device(
        device_probe<M0>(), std::type_identity<typename members_device<std::tuple<M...>>::type>{}))::type;
};
template <class X>
constexpr auto device_probe() {
    using D = std::remove_cvref_t<X>;
    if constexpr (xgrad::detail::is_parameter<D>::value)
        return std::type_identity<typename D::device_type>{};
    else if constexpr (xgrad::detail::is_tensor<D>::value)
        return std::conditional_t<std::is_floating_point_v<typename D::value_type>,
                                  std::type_identity<typename D::device_type>, std::type_identity<void>>{};
    else if constexpr (is_std_vector<D>::value || is_std_array<D>::value)
        return device_probe<typename D::value_type>();
    else if constexpr (requires { typename D::device_type; })
        return std::type_identity<typename D::device_type>{};
    else if constexpr (requires(D& d) { d.xgrad_members(); })
        return std::type_identity<typename members_device<decltype(std::declval<D&>().xgrad_members())>::type>{};
    else
        return std::type_identity<void>{};
}

/// "fc1, fc2" -> {"fc1", "fc2"} (the stringized argument list of XGRAD_MODULE).
XGRAD_OUTLINE std::vector<std::string> split_names(const char* list) {
    std::vector<std::string> out;
    std::string cur;
    for (const char* p = list;; ++p) {
        if (*p == ',' || *p == '\0') {
            out.push_back(cur);
            cur.clear();
            if (*p == '\0') break;
        } else if (*p != ' ' && *p != '\t' && *p != '\n') {
            cur += *p;
        }
    }
    return out;
}
XGRAD_INSTANCE(std::vector<std::string> split_names(const char* list))

template <class Tuple, class F>
void for_each_named(const char* names, Tuple&& members, F&& f) {
    const auto n = split_names(names);
    std::apply(
        [&](auto&... m) {
            std::size_t i = 0;
            (f(n[i++].c_str(), m), ...);
        },
        members);
}

inline std::string join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
}

/// Visits a member tree depth first: v.on_parameter(path, p), v.on_buffer(path, t),
/// v.on_layer(path, l) (before its members).
template <class X, class V>
void walk(X& x, const std::string& path, V& v) {
    using D = std::remove_cvref_t<X>;
    if constexpr (xgrad::detail::is_parameter<D>::value) {
        v.on_parameter(path, x);
    } else if constexpr (xgrad::detail::is_tensor<D>::value) {
        v.on_buffer(path, x);
    } else if constexpr (is_std_vector<D>::value || is_std_array<D>::value) {
        for (std::size_t i = 0; i < x.size(); ++i) walk(x[i], join(path, std::to_string(i)), v);
    } else if constexpr (described<D>) {
        v.on_layer(path, x);
        x.for_each_member([&](const char* name, auto& m) { walk(m, join(path, name), v); });
    } else {
        static_assert(sizeof(D) == 0,
                      "xgrad::nn: a listed member is not a parameter, a tensor, a layer (a type with "
                      "for_each_member, e.g. through XGRAD_MODULE) or a vector/array of them");
    }
}

template <class L>
concept has_path = requires(L& l, std::string s) { l.set_path(s); };
template <class L>
concept has_training = requires(L& l) { l.set_training(true); };

/// The visitors of the walks below.
struct path_namer {
    template <class P>
    void on_parameter(const std::string& path, const P& p) {
        p.set_name(path);
    }
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string& path, L& l) {
        if constexpr (has_path<L>) l.set_path(path);
    }
};
template <class T, class Device = device::cpu>
struct parameter_collector : path_namer {
    std::vector<std::pair<std::string, xgrad::parameter<T, Device>>> out;
    template <class P>
    void on_parameter(const std::string& path, const P& p) {
        static_assert(std::is_same_v<typename P::value_type, T>, "xgrad::nn: a layer mixes float and double parameters");
        static_assert(std::is_same_v<P, xgrad::parameter<T, Device>>,
                      "xgrad::nn: a layer mixes parameters on different devices");
        for (auto& [n, q] : out)
            if (q.same(p)) return;  // shared (tied) parameters are listed once
        p.set_name(path);
        out.emplace_back(path, p);
    }
};
template <class T, class Device = device::cpu>
struct buffer_collector {
    std::vector<std::pair<std::string, tensor<T, Device>>> out;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string& path, const B& t) {
        if constexpr (std::is_same_v<B, tensor<T, Device>>) out.emplace_back(path, t);
    }
    template <class L>
    void on_layer(const std::string&, L&) {}
};
struct mode_setter {
    bool on;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string&, L& l) {
        if constexpr (has_training<L>) l.set_training(on);
    }
};

/// Writes dotted names into parameters and module<> layers below `root` (named `prefix`).
template <class M>
void assign_paths(M& root, const std::string& prefix) {
    path_namer v;
    walk(root, prefix, v);
}

}  // namespace detail

/// A layer: a type with for_each_member (directly or through XGRAD_MODULE).
template <class L>
concept layer = detail::described<std::remove_cvref_t<L>>;

/// Element type of a layer's parameters (float for a layer without any).
template <class L>
using value_type_of = std::conditional_t<std::is_void_v<typename decltype(detail::value_probe<L>())::type>, float,
                                         typename decltype(detail::value_probe<L>())::type>;

/// The device of a layer's parameters and buffers (the CPU for a layer without any).
template <class L>
using device_type_of = std::conditional_t<std::is_void_v<typename decltype(detail::device_probe<L>())::type>,
                                          device::cpu, typename decltype(detail::device_probe<L>())::type>;

/// {dotted name, parameter} of every parameter below m, each shared parameter once.
template <layer M>
std::vector<std::pair<std::string, parameter<value_type_of<M>, device_type_of<M>>>> named_parameters(M& m) {
    detail::parameter_collector<value_type_of<M>, device_type_of<M>> v;
    detail::walk(m, std::string{}, v);
    return std::move(v.out);
}

/// The parameters of named_parameters(m), in the same order (what optimizers take).
template <layer M>
std::vector<parameter<value_type_of<M>, device_type_of<M>>> parameters(M& m) {
    std::vector<parameter<value_type_of<M>, device_type_of<M>>> out;
    for (auto& [n, p] : named_parameters(m)) out.push_back(p);
    return out;
}

/// {dotted name, tensor} of every buffer below m (running statistics of batch norms ...).
template <layer M>
std::vector<std::pair<std::string, tensor<value_type_of<M>, device_type_of<M>>>> named_buffers(M& m) {
    detail::buffer_collector<value_type_of<M>, device_type_of<M>> v;
    detail::walk(m, std::string{}, v);
    return std::move(v.out);
}

/// Number of parameter elements below m (only those that require gradients with trainable_only).
template <layer M>
std::size_t num_parameters(M& m, bool trainable_only = false) {
    std::size_t n = 0;
    for (auto& [name, p] : named_parameters(m))
        if (!trainable_only || p.requires_grad()) n += p.size();
    return n;
}

/// Switches every layer below m (m included) to training (on) or evaluation mode.
template <layer M>
M& train(M& m, bool on = true) {
    detail::mode_setter v{on};
    detail::walk(m, std::string{}, v);
    return m;
}
template <layer M>
M& eval(M& m) {
    return train(m, false);
}

/// Freezes (false) or unfreezes every parameter below m: frozen parameters get no gradient
/// and optimizers leave them alone.
template <layer M>
M& requires_grad(M& m, bool on) {
    for (auto& [n, p] : named_parameters(m)) p.requires_grad(on);
    return m;
}

namespace detail {

/// A shape_error that already names its layer (outer layers pass it on unchanged).
struct layer_shape_error : shape_error {
    using shape_error::shape_error;
};

/// L::kind, or the type's name for a user layer without one.
template <class L>
std::string kind_of() {
    if constexpr (requires { L::kind; }) {
        return L::kind;
    } else {
        const char* raw = typeid(L).name();
#if defined(__GNUG__)
        int status = 0;
        char* d = abi::__cxa_demangle(raw, nullptr, nullptr, &status);
        std::string s = status == 0 && d ? d : raw;
        std::free(d);
        return s;
#else
        return raw;
#endif
    }
}

template <class L>
std::string layer_label(const L& l) {
    const std::string kind = kind_of<L>();
    std::string path;
    if constexpr (requires { l.path(); }) path = l.path();
    return path.empty() ? kind : "layer '" + path + "' (" + kind + ")";
}

/// l.forward(x); a shape_error from inside gets the layer's name and kind, label(), in front.
template <class L, class X, class Label>
auto call_forward(L& l, X&& x, Label&& label) {
    try {
        return l.forward(std::forward<X>(x));
    } catch (const layer_shape_error&) {
        throw;
    } catch (const shape_error& e) {
        throw layer_shape_error(label() + ": " + e.what());
    }
}

}  // namespace detail

/// Optional base of a layer (CRTP): member versions of the walks above, the call operator,
/// the training flag and the dotted path. Derived provides forward(x) and for_each_member(f)
/// (or XGRAD_MODULE), and may provide `static constexpr const char* kind`.
template <class Derived>
class module {
public:
    /// forward(x), with shape errors naming this layer.
    template <class X>
    auto operator()(X&& x) {
        return detail::call_forward(self(), std::forward<X>(x), [this] { return detail::layer_label(self()); });
    }

    auto named_parameters() { return nn::named_parameters(self()); }
    auto parameters() { return nn::parameters(self()); }
    auto named_buffers() { return nn::named_buffers(self()); }
    std::size_t num_parameters(bool trainable_only = false) { return nn::num_parameters(self(), trainable_only); }

    Derived& train(bool on = true) { return nn::train(self(), on); }
    Derived& eval() { return nn::train(self(), false); }
    bool is_training() const { return training_; }
    Derived& requires_grad(bool on) { return nn::requires_grad(self(), on); }

    /// Dotted name below the outermost layer that named it ("" at the top).
    const std::string& path() const { return path_; }

    // used by the walks
    void set_training(bool on) { training_ = on; }
    void set_path(std::string p) { path_ = std::move(p); }
    template <class F>
    void for_each_member(F&&) {}  // a layer without parameters

protected:
    module() = default;

private:
    Derived& self() { return static_cast<Derived&>(*this); }
    bool training_ = true;
    std::string path_;
};

}  // namespace xgrad::nn

/// Inside a layer struct: lists the members (parameters, buffers, sub-layers, vectors of
/// them) that make up the layer, under their own names.
#define XGRAD_MODULE(...)                                                                    \
    auto xgrad_members() { return std::tie(__VA_ARGS__); }                                   \
    template <class XgradF>                                                                  \
    void for_each_member(XgradF&& xgrad_f) {                                                 \
        ::xgrad::nn::detail::for_each_named(#__VA_ARGS__, xgrad_members(), xgrad_f);        \
    }
