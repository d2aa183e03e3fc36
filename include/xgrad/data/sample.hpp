#pragma once
// What a dataset hands out (a sample), what the loader hands out (a batch), and the
// dataset concept that ties them together.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"

namespace xgrad::data {

/// One example: an input tensor (an image {C, H, W}, or a feature vector {F}) and its
/// label: a class index, or a tensor once a transform such as one_hot has replaced it.
template <class X, class Y = std::int64_t>
struct sample {
    using input_type = X;
    using label_type = Y;
    tensor<X> input;
    Y label;
};

namespace detail {
template <class T>
struct is_sample : std::false_type {};
template <class X, class Y>
struct is_sample<sample<X, Y>> : std::true_type {};
template <class T>
struct is_tensor : std::false_type {};
template <class T>
struct is_tensor<tensor<T>> : std::true_type {};
}  // namespace detail

/// A label the loader can stack: a class index or a tensor.
template <class Y>
concept batchable_label = std::same_as<Y, std::int64_t> || detail::is_tensor<Y>::value;

/// A random-access collection of samples. `get(i, gen)` must be safe to call from several
/// threads at once; random transforms draw from `gen`, which the loader derives from
/// (seed, epoch, i) so that results do not depend on which thread loads a sample.
template <class D>
concept dataset = requires(const D& d, std::size_t i, rng& gen) {
    typename D::sample_type;
    requires detail::is_sample<typename D::sample_type>::value;
    { d.size() } -> std::convertible_to<std::size_t>;
    { d.get(i, gen) } -> std::same_as<typename D::sample_type>;
};

namespace detail {

/// splitmix64's finaliser: a bijective 64-bit mix.
constexpr std::uint64_t mix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// The seed of sample `index`'s generator in `epoch`; index ~0 is the epoch's shuffle.
constexpr std::uint64_t sample_seed(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index) {
    return mix64(mix64(mix64(seed) ^ epoch) ^ index);
}

template <class Y>
struct label_batch {
    using type = tensor<std::int64_t>;
};
template <class T>
struct label_batch<tensor<T>> {
    using type = tensor<T>;
};

}  // namespace detail

/// A batch: inputs stacked along a new first axis (contiguous, e.g. NCHW) and the labels
/// stacked likewise ({N} class indices, or {N, K} for tensor labels).
template <class X, class Y>
struct batch {
    tensor<X> inputs;
    typename detail::label_batch<Y>::type labels;
};

template <class S>
using batch_of = batch<typename S::input_type, typename S::label_type>;

namespace detail {

/// Copies the elements of `src` (any layout) to `dst` in row-major order.
template <class T>
void copy_elements(const tensor<T>& src, T* dst) {
    if (src.is_contiguous()) {
        if (src.size() != 0) std::memcpy(dst, src.data(), src.size() * sizeof(T));
        return;
    }
    const T* p = src.data();
    xgrad::detail::for_each_offset(src.shape(), src.strides(), [&](std::ptrdiff_t o) { *dst++ = p[o]; });
}

inline shape_t with_leading(std::size_t n, const shape_t& s) {
    shape_t out;
    out.reserve(s.size() + 1);
    out.push_back(n);
    out.insert(out.end(), s.begin(), s.end());
    return out;
}

/// Stacks the samples of one batch as they arrive.
template <class X, class Y>
class collator {
public:
    explicit collator(std::size_t n) : n_(n) {}

    void add(std::size_t pos, const sample<X, Y>& s, std::size_t index) {
        if (pos == 0) {
            shape_ = s.input.shape();
            out_.inputs = tensor<X>::uninitialized(with_leading(n_, shape_));
            if constexpr (is_tensor<Y>::value) {
                label_shape_ = s.label.shape();
                out_.labels = Y::uninitialized(with_leading(n_, label_shape_));
            } else {
                out_.labels = tensor<std::int64_t>::uninitialized({n_});
            }
        } else if (s.input.shape() != shape_) {
            throw shape_error("loader: sample " + std::to_string(index) + " has input shape " +
                              to_string(s.input.shape()) + ", the first sample of its batch " + to_string(shape_));
        }
        copy_elements(s.input, out_.inputs.data() + pos * numel(shape_));
        if constexpr (is_tensor<Y>::value) {
            if (s.label.shape() != label_shape_)
                throw shape_error("loader: sample " + std::to_string(index) + " has label shape " +
                                  to_string(s.label.shape()) + ", the first sample of its batch " +
                                  to_string(label_shape_));
            copy_elements(s.label, out_.labels.data() + pos * numel(label_shape_));
        } else {
            out_.labels.data()[pos] = s.label;
        }
    }

    batch<X, Y> take() { return std::move(out_); }

private:
    std::size_t n_;
    shape_t shape_, label_shape_;
    batch<X, Y> out_;
};

}  // namespace detail

}  // namespace xgrad::data
