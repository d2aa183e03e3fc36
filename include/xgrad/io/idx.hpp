#pragma once
// IDX files (MNIST, Fashion-MNIST): plain or gzip-compressed.
// Layout: 00 00 <type> <rank>, then <rank> big-endian uint32 dimensions, then the
// elements in row-major order, big-endian.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "../core/config.hpp"
#include "../core/tensor.hpp"
#include "detail/bytes.hpp"
#include "gzip.hpp"

namespace xgrad::io {

/// The element types an IDX file can hold (the third magic byte).
enum class idx_type : std::uint8_t { u8 = 0x08, i8 = 0x09, i16 = 0x0B, i32 = 0x0C, f32 = 0x0D, f64 = 0x0E };

using idx_array = std::variant<tensor<std::uint8_t>, tensor<std::int8_t>, tensor<std::int16_t>, tensor<std::int32_t>,
                               tensor<float>, tensor<double>>;

/// Largest IDX payload accepted (plain or after decompression): 4 GiB.
inline constexpr std::size_t idx_max_bytes = std::size_t{1} << 32;

namespace detail {

struct idx_header {
    idx_type type{};
    std::size_t elem_size = 0;
    shape_t shape;
    std::size_t header_bytes = 0;
    std::size_t data_bytes = 0;
};

inline std::size_t idx_elem_size(std::uint8_t code) {
    switch (code) {
        case 0x08:
        case 0x09: return 1;
        case 0x0B: return 2;
        case 0x0C:
        case 0x0D: return 4;
        case 0x0E: return 8;
        default: return 0;
    }
}

/// Reads and checks the header; the data itself may be missing from `bytes`.
XGRAD_OUTLINE idx_header parse_idx_header(std::span<const std::byte> bytes, std::string_view name) {
    byte_reader r(bytes, name);
    const auto m0 = r.u8("the magic number");
    const auto m1 = r.u8("the magic number");
    if (m0 != 0 || m1 != 0)
        r.fail(0, "wrong magic number: an IDX file starts with two zero bytes, found " + std::to_string(m0) + " " +
                      std::to_string(m1));
    idx_header h;
    const auto code = r.u8("the type code");
    h.elem_size = idx_elem_size(code);
    if (h.elem_size == 0) r.fail(2, "unknown IDX element type code " + std::to_string(code));
    h.type = static_cast<idx_type>(code);
    const auto rank = r.u8("the rank");
    if (rank == 0 || rank > max_rank)
        r.fail(3, "rank " + std::to_string(rank) + " is outside 1.." + std::to_string(max_rank));
    std::size_t n = 1;
    std::size_t span = 1;  // product with zero extents read as 1: keeps strides representable
    for (std::size_t d = 0; d < rank; ++d) {
        const std::size_t at = r.offset();
        const std::size_t dim = r.u32_be("a dimension");
        if (!checked_mul(n, dim, idx_max_bytes / h.elem_size, n) ||
            !checked_mul(span, dim == 0 ? 1 : dim, idx_max_bytes / h.elem_size, span))
            r.fail(at, "dimensions describe more than " + std::to_string(idx_max_bytes) + " bytes of data");
        h.shape.push_back(dim);
    }
    h.header_bytes = r.offset();
    h.data_bytes = n * h.elem_size;
    return h;
}
XGRAD_INSTANCE(idx_header parse_idx_header(std::span<const std::byte> bytes, std::string_view name))

template <class T>
tensor<T> idx_elements(const idx_header& h, std::span<const std::byte> data) {
    auto t = tensor<T>::uninitialized(h.shape);
    copy_from(std::endian::big, data.data(), t.data(), t.size());
    return t;
}

/// An uncompressed IDX image in memory.
XGRAD_OUTLINE idx_array parse_idx_plain(std::span<const std::byte> bytes, std::string_view name) {
    const idx_header h = parse_idx_header(bytes, name);
    const std::size_t have = bytes.size() - h.header_bytes;
    if (have < h.data_bytes)
        throw format_error(at_byte(name, bytes.size(),
                                   "truncated: dimensions " + to_string(h.shape) + " need " +
                                       std::to_string(h.data_bytes) + " bytes of data after the " +
                                       std::to_string(h.header_bytes) + "-byte header, the file has " +
                                       std::to_string(have)));
    if (have > h.data_bytes)
        throw format_error(at_byte(name, h.header_bytes + h.data_bytes,
                                   std::to_string(have - h.data_bytes) + " bytes beyond the " +
                                       std::to_string(h.data_bytes) + " that dimensions " + to_string(h.shape) +
                                       " describe"));
    const auto data = bytes.subspan(h.header_bytes, h.data_bytes);
    switch (h.type) {
        case idx_type::u8: return idx_elements<std::uint8_t>(h, data);
        case idx_type::i8: return idx_elements<std::int8_t>(h, data);
        case idx_type::i16: return idx_elements<std::int16_t>(h, data);
        case idx_type::i32: return idx_elements<std::int32_t>(h, data);
        case idx_type::f32: return idx_elements<float>(h, data);
        case idx_type::f64: return idx_elements<double>(h, data);
    }
    throw format_error(at_byte(name, 2, "unknown IDX element type"));
}
XGRAD_INSTANCE(idx_array parse_idx_plain(std::span<const std::byte> bytes, std::string_view name))

}  // namespace detail

/// Decodes an IDX file held in memory, plain or gzip-compressed; `name` appears in errors.
/// Throws format_error (wrong magic, unknown type, truncated data, trailing bytes, corrupt gzip).
XGRAD_OUTLINE idx_array parse_idx(std::span<const std::byte> bytes, std::string_view name) {
    if (!is_gzip(bytes)) return detail::parse_idx_plain(bytes, name);
    // Peek at the header first, so the header's own dimensions bound the decompressed size.
    const auto head = gunzip(bytes, name, 4 + 4 * 255, gunzip_mode::prefix);
    const std::string inner = std::string(name) + " (decompressed)";
    const auto h = detail::parse_idx_header(head, inner);
    const std::size_t total = h.header_bytes + h.data_bytes;
    if (total / gzip_max_ratio > bytes.size() + 1024)
        throw format_error(detail::at_byte(inner, h.header_bytes,
                                           "truncated: dimensions " + to_string(h.shape) + " need " +
                                               std::to_string(h.data_bytes) + " bytes, more than " +
                                               std::to_string(bytes.size()) + " compressed bytes can hold"));
    const auto full = gunzip(bytes, name, total, gunzip_mode::exact);
    return detail::parse_idx_plain(full, inner);
}
XGRAD_INSTANCE(idx_array parse_idx(std::span<const std::byte> bytes, std::string_view name))

/// Reads an IDX file (`.gz` or plain, recognised by content). io_error when it cannot be read.
XGRAD_OUTLINE idx_array read_idx(const std::filesystem::path& path) {
    const auto bytes = detail::read_file(path);
    return parse_idx(bytes, path.string());
}
XGRAD_INSTANCE(idx_array read_idx(const std::filesystem::path& path))

/// The tensor inside `a` when it holds T; otherwise format_error naming `name`.
template <class T>
    requires(std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::int16_t> ||
             std::is_same_v<T, std::int32_t> || std::is_same_v<T, float> || std::is_same_v<T, double>)
tensor<T> idx_get(const idx_array& a, std::string_view name) {
    if (const auto* t = std::get_if<tensor<T>>(&a)) return *t;
    static constexpr const char* names[] = {"uint8", "int8", "int16", "int32", "float32", "float64"};
    std::size_t wanted = 0;
    if constexpr (std::is_same_v<T, std::int8_t>) wanted = 1;
    if constexpr (std::is_same_v<T, std::int16_t>) wanted = 2;
    if constexpr (std::is_same_v<T, std::int32_t>) wanted = 3;
    if constexpr (std::is_same_v<T, float>) wanted = 4;
    if constexpr (std::is_same_v<T, double>) wanted = 5;
    throw format_error(std::string(name) + ": byte 2: element type " + names[a.index()] + " where " + names[wanted] +
                       " was expected");
}

}  // namespace xgrad::io
