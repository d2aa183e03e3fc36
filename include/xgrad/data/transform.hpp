#pragma once
// Composition with `|`: `dataset | transform` is a new dataset, `transform | transform`
// is a new transform. A transform maps (sample, rng&) to a sample; deterministic ones
// ignore the generator.
#include <concepts>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "../core/rng.hpp"
#include "sample.hpp"

namespace xgrad::data {

/// Base of every transform: marks the types `|` accepts on its right-hand side.
struct transform_tag {};

template <class T>
concept transform = std::derived_from<std::remove_cvref_t<T>, transform_tag>;

/// `a` then `b`.
template <transform A, transform B>
struct composed : transform_tag {
    A first;
    B second;
    template <class S>
    auto operator()(S s, rng& gen) const {
        return second(first(std::move(s), gen), gen);
    }
};

template <transform A, transform B>
composed<A, B> operator|(A a, B b) {
    return {{}, std::move(a), std::move(b)};
}

/// A user-supplied function as a transform: f(sample) or f(sample, rng&).
template <class F>
struct lambda_transform : transform_tag {
    F f;
    template <class S>
    auto operator()(S s, rng& gen) const {
        if constexpr (std::is_invocable_v<const F&, S, rng&>)
            return f(std::move(s), gen);
        else
            return f(std::move(s));
    }
};

/// Wraps a function of (sample) or (sample, rng&) returning a sample.
template <class F>
lambda_transform<F> map(F f) {
    return {{}, std::move(f)};
}

/// The samples of `base` passed through `fn`.
template <dataset D, transform F>
class mapped_dataset {
public:
    using sample_type = std::invoke_result_t<const F&, typename D::sample_type, rng&>;
    static_assert(detail::is_sample<sample_type>::value,
                  "a transform must return an xgrad::data::sample<X, Y>");

    mapped_dataset(D base, F fn) : base_(std::move(base)), fn_(std::move(fn)) {}

    std::size_t size() const { return static_cast<std::size_t>(base_.size()); }
    sample_type get(std::size_t i, rng& gen) const { return fn_(base_.get(i, gen), gen); }
    /// Sample i as the loader with seed 0 would produce it in epoch 0.
    sample_type get(std::size_t i) const {
        rng gen(detail::sample_seed(0, 0, i));
        return get(i, gen);
    }

    const D& base() const noexcept { return base_; }
    const F& fn() const noexcept { return fn_; }

private:
    D base_;
    F fn_;
};

template <dataset D, transform F>
    requires(!transform<D>)
mapped_dataset<D, F> operator|(D d, F f) {
    return {std::move(d), std::move(f)};
}

}  // namespace xgrad::data
