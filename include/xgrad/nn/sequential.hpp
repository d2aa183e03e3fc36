#pragma once
// sequential(l0, l1, ...): layers applied in order, as torch.nn.Sequential. Its forward is the
// composition l_{n-1}(... l1(l0(x))), one expression, so elementwise layers fuse with their
// neighbours (linear then relu becomes one GEMM with a relu epilogue). Children are named
// "0", "1", ... ("0.weight"); a sequential may contain sequentials and user layers.
#include <string>
#include <tuple>
#include <utility>

#include "module.hpp"

namespace xgrad::nn {

namespace detail {

template <class... L>
struct sequence_value {
    using type = void;
};
template <class L0, class... L>
struct sequence_value<L0, L...> {
    using type = typename decltype(combine_value(
        value_probe<L0>(), std::type_identity<typename sequence_value<L...>::type>{}))::type;
};

template <class... L>
struct sequence_device {
    using type = void;
};
template <class L0, class... L>
struct sequence_device<L0, L...> {
    using type = typename decltype(combine_device(
        device_probe<L0>(), std::type_identity<typename sequence_device<L...>::type>{}))::type;
};

template <class L>
concept module_based = requires(L& l) { l.set_path(std::string{}); };

}  // namespace detail

template <class... L>
class sequential : public module<sequential<L...>> {
    static_assert(sizeof...(L) > 0, "xgrad::nn::sequential needs at least one layer");
    static_assert((layer<L> && ...),
                  "xgrad::nn::sequential: every argument must be a layer (a type with forward(x) and "
                  "for_each_member, e.g. through XGRAD_MODULE)");

public:
    using value_type = typename detail::sequence_value<L...>::type;
    using device_type = typename detail::sequence_device<L...>::type;  // void: no parameters
    static constexpr const char* kind = "sequential";

    explicit sequential(L... layers) : layers_(std::move(layers)...) { detail::assign_paths(*this, this->path()); }

    /// Built from the layers of another sequential, each converted (xgrad::to<Device>(model)
    /// converts a CPU model's layers to their device versions with this).
    template <class... M>
        requires(sizeof...(M) == sizeof...(L) && !std::is_same_v<sequential<M...>, sequential<L...>>)
    explicit sequential(const sequential<M...>& o)
        : layers_(std::apply([](const auto&... m) { return std::tuple<L...>(L(m)...); }, o.layers_)) {
        this->set_training(o.is_training());
        detail::assign_paths(*this, this->path());
    }

    static constexpr std::size_t size() { return sizeof...(L); }
    template <std::size_t I>
    auto& get() {
        return std::get<I>(layers_);
    }

    template <class X>
    auto forward(X&& x) {
        return run<0>(std::forward<X>(x));
    }

    template <class F>
    void for_each_member(F&& f) {
        each(f, std::index_sequence_for<L...>{});
    }

private:
    template <std::size_t I, class X>
    auto run(X&& x) {
        if constexpr (I == sizeof...(L)) {
            if constexpr (operand<X>)
                return as_expr(std::forward<X>(x));
            else  // a last layer's own result, e.g. lstm_output
                return std::remove_cvref_t<X>(std::forward<X>(x));
        } else {
            auto& l = std::get<I>(layers_);
            if constexpr (detail::module_based<decltype(l)>) {
                return run<I + 1>(l(std::forward<X>(x)));
            } else {
                // a plain user layer: name it here for its error messages
                auto label = [this] {
                    return "layer '" + detail::join(this->path(), std::to_string(I)) + "' (" +
                           detail::kind_of<std::tuple_element_t<I, std::tuple<L...>>>() + ")";
                };
                return run<I + 1>(detail::call_forward(l, std::forward<X>(x), label));
            }
        }
    }

    template <class F, std::size_t... I>
    void each(F& f, std::index_sequence<I...>) {
        (f(std::to_string(I).c_str(), std::get<I>(layers_)), ...);
    }

    template <class...>
    friend class sequential;
    std::tuple<L...> layers_;
};

}  // namespace xgrad::nn
