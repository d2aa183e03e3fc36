#pragma once
// Geometric operations on image tensors {..., H, W} (leading axes are channels).
// The random transforms in augment.hpp are built on these; they are public so that
// a fixed flip, crop, rotation or resize can be applied directly.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "../core/tensor.hpp"

namespace xgrad::data {

namespace detail {

struct image_geometry {
    std::size_t channels, height, width;
};

inline image_geometry geometry(const shape_t& s, const char* op) {
    if (s.size() < 2)
        throw shape_error(std::string(op) + ": expects an image of shape {..., H, W}, got " + to_string(s));
    std::size_t c = 1;
    for (std::size_t d = 0; d + 2 < s.size(); ++d) c *= s[d];
    return {c, s[s.size() - 2], s[s.size() - 1]};
}

inline shape_t with_hw(shape_t s, std::size_t h, std::size_t w) {
    s[s.size() - 2] = h;
    s[s.size() - 1] = w;
    return s;
}

/// `t` itself when no one else holds its storage, else a contiguous copy: lets a pipeline
/// reuse the tensor a previous transform produced, never touching a dataset's storage.
/// Pass the caller's handle by std::move, or the count includes it.
template <class T>
tensor<T> writable(tensor<T> t) {
    if (t.is_contiguous() && t.storage().use_count() == 1) return t;
    return t.clone();
}

template <class T>
void hflip_inplace(const tensor<T>& t) {
    const auto g = geometry(t.shape(), "hflip");
    T* p = t.data();
    for (std::size_t r = 0; r < g.channels * g.height; ++r) std::reverse(p + r * g.width, p + (r + 1) * g.width);
}

template <class T>
void vflip_inplace(const tensor<T>& t) {
    const auto g = geometry(t.shape(), "vflip");
    T* p = t.data();
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t y = 0; y < g.height / 2; ++y)
            std::swap_ranges(p + (c * g.height + y) * g.width, p + (c * g.height + y + 1) * g.width,
                             p + (c * g.height + g.height - 1 - y) * g.width);
}

/// Converts an interpolated value back to the element type (rounding for integers).
template <class T>
T from_float(float v) {
    if constexpr (std::is_integral_v<T>) {
        const float lo = static_cast<float>(std::numeric_limits<T>::min());
        const float hi = static_cast<float>(std::numeric_limits<T>::max());
        return static_cast<T>(std::clamp(std::nearbyint(v), lo, hi));
    } else {
        return static_cast<T>(v);
    }
}

/// out(y, x) = in at (sx, sy) = (m0 x + m1 y + m2, m3 x + m4 y + m5), bilinear, per channel.
/// Neighbours outside the image count as zero (`clamp` false), or the source point is
/// clamped into the image so edges are replicated (`clamp` true).
template <class T>
tensor<T> warp(const tensor<T>& in, std::size_t oh, std::size_t ow, const double m[6], bool clamp) {
    const auto g = geometry(in.shape(), "warp");
    const auto src = in.contiguous();
    auto out = tensor<T>::uninitialized(with_hw(in.shape(), oh, ow));
    const T* p = src.data();
    T* q = out.data();
    const auto H = static_cast<std::ptrdiff_t>(g.height), W = static_cast<std::ptrdiff_t>(g.width);
    for (std::size_t y = 0; y < oh; ++y) {
        for (std::size_t x = 0; x < ow; ++x) {
            double sx = m[0] * static_cast<double>(x) + m[1] * static_cast<double>(y) + m[2];
            double sy = m[3] * static_cast<double>(x) + m[4] * static_cast<double>(y) + m[5];
            if (clamp) {
                sx = std::clamp(sx, 0.0, static_cast<double>(W - 1));
                sy = std::clamp(sy, 0.0, static_cast<double>(H - 1));
            }
            const double fx0 = std::floor(sx), fy0 = std::floor(sy);
            // far outside (also catches NaN): every neighbour is zero
            if (!(fx0 >= -1.0 && fx0 < static_cast<double>(W) && fy0 >= -1.0 && fy0 < static_cast<double>(H))) {
                for (std::size_t c = 0; c < g.channels; ++c) q[(c * oh + y) * ow + x] = T(0);
                continue;
            }
            const auto x0 = static_cast<std::ptrdiff_t>(fx0), y0 = static_cast<std::ptrdiff_t>(fy0);
            const float ax = static_cast<float>(sx - fx0), ay = static_cast<float>(sy - fy0);
            const float w00 = (1 - ax) * (1 - ay), w01 = ax * (1 - ay), w10 = (1 - ax) * ay, w11 = ax * ay;
            const bool in_x0 = x0 >= 0, in_x1 = x0 + 1 < W, in_y0 = y0 >= 0, in_y1 = y0 + 1 < H;
            for (std::size_t c = 0; c < g.channels; ++c) {
                const T* plane = p + static_cast<std::ptrdiff_t>(c) * H * W;
                float v = 0;
                if (in_y0 && in_x0) v += w00 * static_cast<float>(plane[y0 * W + x0]);
                if (in_y0 && in_x1) v += w01 * static_cast<float>(plane[y0 * W + x0 + 1]);
                if (in_y1 && in_x0) v += w10 * static_cast<float>(plane[(y0 + 1) * W + x0]);
                if (in_y1 && in_x1) v += w11 * static_cast<float>(plane[(y0 + 1) * W + x0 + 1]);
                q[(c * oh + y) * ow + x] = from_float<T>(v);
            }
        }
    }
    return out;
}

}  // namespace detail

/// Mirror left-right (last axis).
template <class T>
tensor<T> hflip(const tensor<T>& img) {
    auto out = img.clone();
    detail::hflip_inplace(out);
    return out;
}

/// Mirror top-bottom (second-to-last axis).
template <class T>
tensor<T> vflip(const tensor<T>& img) {
    auto out = img.clone();
    detail::vflip_inplace(out);
    return out;
}

/// The h x w window whose top-left corner is at (top, left) of the image padded with
/// `padding` zeros on every side; shape_error when the window leaves the padded image.
template <class T>
tensor<T> crop(const tensor<T>& img, std::size_t top, std::size_t left, std::size_t h, std::size_t w,
               std::size_t padding = 0) {
    const auto g = detail::geometry(img.shape(), "crop");
    if (top + h > g.height + 2 * padding || left + w > g.width + 2 * padding)
        throw shape_error("crop: window " + std::to_string(h) + "x" + std::to_string(w) + " at (" +
                          std::to_string(top) + ", " + std::to_string(left) + ") does not fit an image of " +
                          std::to_string(g.height) + "x" + std::to_string(g.width) + " padded by " +
                          std::to_string(padding));
    const auto src = img.contiguous();
    auto out = tensor<T>::uninitialized(detail::with_hw(img.shape(), h, w));
    const T* p = src.data();
    T* q = out.data();
    // source row/column of window row/column 0, in padded coordinates shifted back
    const auto y_off = static_cast<std::ptrdiff_t>(top) - static_cast<std::ptrdiff_t>(padding);
    const auto x_off = static_cast<std::ptrdiff_t>(left) - static_cast<std::ptrdiff_t>(padding);
    const auto W = static_cast<std::ptrdiff_t>(g.width), H = static_cast<std::ptrdiff_t>(g.height);
    // columns [x_lo, x_hi) of the window lie inside the image
    const std::ptrdiff_t x_lo = std::clamp<std::ptrdiff_t>(-x_off, 0, static_cast<std::ptrdiff_t>(w));
    const std::ptrdiff_t x_hi = std::clamp<std::ptrdiff_t>(W - x_off, x_lo, static_cast<std::ptrdiff_t>(w));
    for (std::size_t c = 0; c < g.channels; ++c) {
        for (std::size_t y = 0; y < h; ++y) {
            T* row = q + (c * h + y) * w;
            const std::ptrdiff_t sy = static_cast<std::ptrdiff_t>(y) + y_off;
            if (sy < 0 || sy >= H) {
                std::fill(row, row + w, T(0));
                continue;
            }
            const T* srow = p + (static_cast<std::ptrdiff_t>(c) * H + sy) * W + x_off;
            std::fill(row, row + x_lo, T(0));
            std::copy(srow + x_lo, srow + x_hi, row + x_lo);
            std::fill(row + x_hi, row + w, T(0));
        }
    }
    return out;
}

/// Bilinear resize to h x w (pixel centres aligned, edges replicated, like PyTorch's
/// interpolate(mode="bilinear", align_corners=False) without antialiasing).
template <class T>
tensor<T> resize(const tensor<T>& img, std::size_t h, std::size_t w) {
    const auto g = detail::geometry(img.shape(), "resize");
    if (h == 0 || w == 0 || g.height == 0 || g.width == 0)
        throw shape_error("resize: cannot resize " + to_string(img.shape()) + " to " + std::to_string(h) + "x" +
                          std::to_string(w));
    const double sx = static_cast<double>(g.width) / static_cast<double>(w);
    const double sy = static_cast<double>(g.height) / static_cast<double>(h);
    const double m[6] = {sx, 0, 0.5 * sx - 0.5, 0, sy, 0.5 * sy - 0.5};
    return detail::warp(img, h, w, m, true);
}

/// Rotation by `degrees` counter-clockwise about the image centre, bilinear, same size;
/// pixels that come from outside the image are zero.
template <class T>
tensor<T> rotate(const tensor<T>& img, double degrees) {
    const auto g = detail::geometry(img.shape(), "rotate");
    const double a = degrees * 3.14159265358979323846 / 180.0;
    const double c = std::cos(a), s = std::sin(a);
    const double cx = (static_cast<double>(g.width) - 1) / 2, cy = (static_cast<double>(g.height) - 1) / 2;
    // inverse map: source = centre + R(-a) (dest - centre), with y pointing down
    const double m[6] = {c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy};
    return detail::warp(img, g.height, g.width, m, false);
}

/// Zoom by `factor` about the centre (> 1 enlarges), bilinear, same size; zero outside.
template <class T>
tensor<T> scale(const tensor<T>& img, double factor) {
    const auto g = detail::geometry(img.shape(), "scale");
    if (!(factor > 0)) throw value_error("scale: factor must be positive, got " + std::to_string(factor));
    const double cx = (static_cast<double>(g.width) - 1) / 2, cy = (static_cast<double>(g.height) - 1) / 2;
    const double k = 1 / factor;
    const double m[6] = {k, 0, cx - k * cx, 0, k, cy - k * cy};
    return detail::warp(img, g.height, g.width, m, false);
}

}  // namespace xgrad::data
