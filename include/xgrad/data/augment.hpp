#pragma once
// Random transforms (data augmentation). Each draws only from the generator it is
// handed, which the loader derives from (seed, epoch, sample index): a run is
// reproducible and independent of the number of worker threads.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "image.hpp"
#include "sample.hpp"
#include "transform.hpp"

namespace xgrad::data {

namespace detail {
inline double check_probability(double p, const char* op) {
    if (!(p >= 0 && p <= 1)) throw value_error(std::string(op) + ": probability must lie in [0, 1], got " + std::to_string(p));
    return p;
}
}  // namespace detail

/// Mirrors the image left-right with probability p.
class random_horizontal_flip : public transform_tag {
public:
    explicit random_horizontal_flip(double p = 0.5) : p_(detail::check_probability(p, "random_horizontal_flip")) {}

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        if (gen.uniform() < p_) {
            s.input = detail::writable(std::move(s.input));
            detail::hflip_inplace(s.input);
        }
        return s;
    }

private:
    double p_;
};

/// Mirrors the image top-bottom with probability p.
class random_vertical_flip : public transform_tag {
public:
    explicit random_vertical_flip(double p = 0.5) : p_(detail::check_probability(p, "random_vertical_flip")) {}

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        if (gen.uniform() < p_) {
            s.input = detail::writable(std::move(s.input));
            detail::vflip_inplace(s.input);
        }
        return s;
    }

private:
    double p_;
};

/// Pads the image with `padding` zeros on every side, then cuts a size x size window at
/// a uniformly random position (the usual CIFAR / Fashion-MNIST augmentation).
class random_crop : public transform_tag {
public:
    explicit random_crop(std::size_t size, std::size_t padding = 0) : size_(size), pad_(padding) {
        if (size == 0) throw value_error("random_crop: size must be positive");
    }

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        const auto g = detail::geometry(s.input.shape(), "random_crop");
        const std::size_t ph = g.height + 2 * pad_, pw = g.width + 2 * pad_;
        if (ph < size_ || pw < size_)
            throw shape_error("random_crop: a " + std::to_string(size_) + "x" + std::to_string(size_) +
                              " window does not fit an image of " + std::to_string(g.height) + "x" +
                              std::to_string(g.width) + " padded by " + std::to_string(pad_));
        const std::size_t top = gen.below(ph - size_ + 1);
        const std::size_t left = gen.below(pw - size_ + 1);
        s.input = crop(s.input, top, left, size_, size_, pad_);
        return s;
    }

private:
    std::size_t size_, pad_;
};

/// Rotates by an angle drawn uniformly from [-degrees, degrees], bilinear, zero fill.
class random_rotation : public transform_tag {
public:
    explicit random_rotation(double degrees) : deg_(degrees) {
        if (!(degrees >= 0 && degrees <= 360))
            throw value_error("random_rotation: degrees must lie in [0, 360], got " + std::to_string(degrees));
    }

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        const double angle = gen.uniform(-deg_, deg_);
        s.input = rotate(s.input, angle);
        return s;
    }

private:
    double deg_;
};

/// Zooms about the centre by a factor drawn uniformly from [lo, hi], same size, zero fill.
class random_scale : public transform_tag {
public:
    random_scale(double lo, double hi) : lo_(lo), hi_(hi) {
        if (!(lo > 0 && lo <= hi && std::isfinite(hi)))
            throw value_error("random_scale: needs 0 < lo <= hi, got [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "]");
    }

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        s.input = scale(s.input, gen.uniform(lo_, hi_));
        return s;
    }

private:
    double lo_, hi_;
};

/// Crops a random region covering a fraction in [scale_lo, scale_hi] of the area with an
/// aspect ratio (w/h) log-uniform in [ratio_lo, ratio_hi], then resizes it bilinearly to
/// size x size (Szegedy et al. 2015, "Going deeper with convolutions"; torchvision's
/// RandomResizedCrop: 10 tries, then a centre crop).
class random_resized_crop : public transform_tag {
public:
    explicit random_resized_crop(std::size_t size, std::pair<double, double> area = {0.08, 1.0},
                                 std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0})
        : size_(size), area_(area), ratio_(ratio) {
        if (size == 0) throw value_error("random_resized_crop: size must be positive");
        if (!(area.first > 0 && area.first <= area.second && area.second <= 1))
            throw value_error("random_resized_crop: area range must satisfy 0 < lo <= hi <= 1");
        if (!(ratio.first > 0 && ratio.first <= ratio.second && std::isfinite(ratio.second)))
            throw value_error("random_resized_crop: ratio range must satisfy 0 < lo <= hi");
    }

    template <class X, class Y>
    sample<X, Y> operator()(sample<X, Y> s, rng& gen) const {
        const auto g = detail::geometry(s.input.shape(), "random_resized_crop");
        const double H = static_cast<double>(g.height), W = static_cast<double>(g.width);
        std::size_t h = g.height, w = g.width, top = 0, left = 0;
        bool found = false;
        for (int attempt = 0; attempt < 10 && !found; ++attempt) {
            const double target = H * W * gen.uniform(area_.first, area_.second);
            const double r = std::exp(gen.uniform(std::log(ratio_.first), std::log(ratio_.second)));
            const auto cw = static_cast<std::size_t>(std::lround(std::sqrt(target * r)));
            const auto ch = static_cast<std::size_t>(std::lround(std::sqrt(target / r)));
            if (cw > 0 && ch > 0 && cw <= g.width && ch <= g.height) {
                h = ch;
                w = cw;
                top = gen.below(g.height - h + 1);
                left = gen.below(g.width - w + 1);
                found = true;
            }
        }
        if (!found) {  // centre crop clamped to the ratio range
            const double r = W / H;
            if (r < ratio_.first) {
                w = g.width;
                h = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(W / ratio_.first)));
            } else if (r > ratio_.second) {
                h = g.height;
                w = std::max<std::size_t>(1, static_cast<std::size_t>(std::lround(H * ratio_.second)));
            }
            h = std::min(h, g.height);
            w = std::min(w, g.width);
            top = (g.height - h) / 2;
            left = (g.width - w) / 2;
        }
        s.input = resize(crop(s.input, top, left, h, w), size_, size_);
        return s;
    }

private:
    std::size_t size_;
    std::pair<double, double> area_, ratio_;
};

}  // namespace xgrad::data
