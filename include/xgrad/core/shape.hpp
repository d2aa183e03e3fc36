#pragma once
// Shapes, strides and NumPy broadcasting.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"

namespace xgrad {

using shape_t = std::vector<std::size_t>;
using strides_t = std::vector<std::ptrdiff_t>;

/// "{2, 3, 4}"
inline std::string to_string(const shape_t& s) {
    std::ostringstream os;
    os << '{';
    for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << '}';
    return os.str();
}

inline std::size_t numel(const shape_t& s) {
    std::size_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

/// Row-major strides, in elements.
inline strides_t contiguous_strides(const shape_t& s) {
    strides_t st(s.size());
    std::size_t acc = 1;  // unsigned: a zero-size shape with huge extents must not overflow
    for (std::size_t i = s.size(); i-- > 0;) {
        st[i] = static_cast<std::ptrdiff_t>(acc);
        acc *= s[i];
    }
    return st;
}

/// NumPy broadcasting of two shapes; `op` names the operation for the error message.
XGRAD_OUTLINE shape_t broadcast_shapes(const shape_t& a, const shape_t& b, const char* op) {
    const std::size_t r = a.size() > b.size() ? a.size() : b.size();
    shape_t out(r);
    for (std::size_t i = 0; i < r; ++i) {
        const std::size_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
        const std::size_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
        if (da != db && da != 1 && db != 1)
            throw shape_error(std::string(op) + ": shapes " + to_string(a) + " and " + to_string(b) +
                              " cannot be broadcast together (dimension " + std::to_string(i) + ": " +
                              std::to_string(da) + " vs " + std::to_string(db) + ")");
        out[i] = da == 1 ? db : da;
    }
    return out;
}
XGRAD_INSTANCE(shape_t broadcast_shapes(const shape_t& a, const shape_t& b, const char* op))

/// Strides that read a tensor of shape `s`/`st` as if it had the (broadcast) shape `to`:
/// leading missing dimensions and size-1 dimensions get stride 0.
inline strides_t broadcast_strides(const shape_t& s, const strides_t& st, const shape_t& to) {
    strides_t out(to.size(), 0);
    const std::size_t off = to.size() - s.size();
    for (std::size_t i = 0; i < s.size(); ++i)
        out[off + i] = (s[i] == 1 && to[off + i] != 1) ? 0 : st[i];
    return out;
}

/// Normalise a possibly negative axis against `rank`; throws index_error naming `op`.
inline std::size_t normalize_axis(std::ptrdiff_t axis, std::size_t rank, const char* op) {
    const auto r = static_cast<std::ptrdiff_t>(rank);
    if (axis < -r || axis >= r)
        throw index_error(std::string(op) + ": axis " + std::to_string(axis) + " is out of range for rank " +
                          std::to_string(rank));
    return static_cast<std::size_t>(axis < 0 ? axis + r : axis);
}

}  // namespace xgrad
