#pragma once
// Deterministic transforms: to_float, normalize, one_hot.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "image.hpp"
#include "sample.hpp"
#include "transform.hpp"

namespace xgrad::data {

/// uint8 pixels 0..255 to float 0..1.
struct to_float_t : transform_tag {
    template <class X, class Y>
    sample<float, Y> operator()(sample<X, Y> s, rng&) const {
        static_assert(std::is_same_v<X, std::uint8_t>,
                      "to_float: expects uint8 inputs (pixels 0..255); this input is already another type");
        auto out = tensor<float>::uninitialized(s.input.shape());
        const auto in = s.input.contiguous();
        const std::uint8_t* p = in.data();
        float* q = out.data();
        for (std::size_t i = 0, n = in.size(); i < n; ++i) q[i] = static_cast<float>(p[i]) / 255.0f;
        return {std::move(out), std::move(s.label)};
    }
};
inline to_float_t to_float() { return {}; }

/// (x - mean[c]) / std[c] over channel c = axis 0 of the input ({C, H, W} images, or
/// {F} feature vectors). One mean and std apply to every channel.
class normalize : public transform_tag {
public:
    normalize(std::vector<float> mean, std::vector<float> stddev) : mean_(std::move(mean)) {
        if (mean_.empty() || mean_.size() != stddev.size())
            throw value_error("normalize: " + std::to_string(mean_.size()) + " means and " +
                              std::to_string(stddev.size()) + " standard deviations; give one of each per channel");
        for (std::size_t c = 0; c < stddev.size(); ++c) {
            if (!(stddev[c] > 0) || !std::isfinite(stddev[c]) || !std::isfinite(mean_[c]))
                throw value_error("normalize: channel " + std::to_string(c) + " has mean " + std::to_string(mean_[c]) +
                                  " and std " + std::to_string(stddev[c]) + "; std must be positive and both finite");
            inv_std_.push_back(1.0f / stddev[c]);
        }
    }

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng&) const {
        static_assert(std::is_floating_point_v<X>, "normalize: expects float inputs; apply to_float() first");
        auto t = detail::writable(std::move(s.input));
        if (t.dim() == 0) throw shape_error("normalize: expects an input with a channel axis, got a scalar");
        const std::size_t channels = t.shape()[0];
        if (mean_.size() != 1 && mean_.size() != channels)
            throw shape_error("normalize: " + std::to_string(mean_.size()) + " channel statistics for an input of shape " +
                              to_string(t.shape()));
        const std::size_t per = channels == 0 ? 0 : t.size() / channels;
        X* p = t.data();
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t k = mean_.size() == 1 ? 0 : c;
            const X m = static_cast<X>(mean_[k]), r = static_cast<X>(inv_std_[k]);
            for (std::size_t i = c * per; i < (c + 1) * per; ++i) p[i] = (p[i] - m) * r;
        }
        s.input = std::move(t);
        return s;
    }

private:
    std::vector<float> mean_, inv_std_;
};

/// Replaces a class index by a float vector {num_classes} with a 1 at the index.
class one_hot : public transform_tag {
public:
    explicit one_hot(std::size_t num_classes) : k_(num_classes) {
        if (k_ == 0) throw value_error("one_hot: num_classes must be positive");
    }

    template <class X>
    sample<X, tensor<float>> operator()(sample<X, std::int64_t> s, rng&) const {
        if (s.label < 0 || static_cast<std::uint64_t>(s.label) >= k_)
            throw value_error("one_hot: label " + std::to_string(s.label) + " is outside 0.." + std::to_string(k_ - 1));
        auto v = zeros<float>({k_});
        v.data()[s.label] = 1.0f;
        return {std::move(s.input), std::move(v)};
    }

private:
    std::size_t k_;
};

}  // namespace xgrad::data
