#pragma once
// NumPy .npy files: read and write float32, float64, int64 and uint8 arrays,
// little-endian, C order. The header is parsed by a small bounded parser (never eval'd).
#include <bit>
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

namespace xgrad::io {

using npy_array = std::variant<tensor<float>, tensor<double>, tensor<std::int64_t>, tensor<std::uint8_t>>;

/// Largest header and payload accepted.
inline constexpr std::size_t npy_max_header = 65536;
inline constexpr std::size_t npy_max_bytes = std::size_t{1} << 34;

template <class T>
concept npy_element = std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
                      std::is_same_v<T, std::uint8_t>;

namespace detail {

template <class T>
constexpr const char* npy_descr() {
    if constexpr (std::is_same_v<T, float>) return "<f4";
    if constexpr (std::is_same_v<T, double>) return "<f8";
    if constexpr (std::is_same_v<T, std::int64_t>) return "<i8";
    if constexpr (std::is_same_v<T, std::uint8_t>) return "|u1";
}

/// A cursor over the header's Python dict literal; errors name the absolute byte offset.
class npy_header_parser {
public:
    npy_header_parser(std::string_view text, std::size_t base, std::string_view name)
        : s_(text), base_(base), name_(name) {}

    std::string descr;
    bool fortran = false;
    shape_t shape;

    void parse() {
        bool has_descr = false, has_fortran = false, has_shape = false;
        ws();
        expect('{');
        for (;;) {
            ws();
            if (peek() == '}') break;
            const std::size_t key_at = i_;
            const std::string key = string_literal();
            ws();
            expect(':');
            ws();
            if (key == "descr" && !has_descr) {
                descr = string_literal();
                has_descr = true;
            } else if (key == "fortran_order" && !has_fortran) {
                fortran = boolean();
                has_fortran = true;
            } else if (key == "shape" && !has_shape) {
                tuple();
                has_shape = true;
            } else {
                fail(key_at, "unexpected or repeated key '" + key + "' in the header");
            }
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() != '}') fail(i_, "expected ',' or '}' in the header");
        }
        ++i_;
        ws();
        if (i_ != s_.size()) fail(i_, "unexpected text after the header's closing brace");
        if (!has_descr || !has_fortran || !has_shape)
            fail(0, "the header lacks one of 'descr', 'fortran_order', 'shape'");
    }

private:
    [[noreturn]] void fail(std::size_t at, const std::string& what) const {
        throw format_error(at_byte(name_, base_ + at, what));
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
    }
    void expect(char c) {
        if (peek() != c) fail(i_, std::string("expected '") + c + "' in the header");
        ++i_;
    }
    std::string string_literal() {
        const char q = peek();
        if (q != '\'' && q != '"') fail(i_, "expected a quoted string in the header");
        const std::size_t start = ++i_;
        while (i_ < s_.size() && s_[i_] != q) {
            if (s_[i_] == '\\') fail(i_, "escape sequences are not supported in the header");
            ++i_;
        }
        if (i_ >= s_.size()) fail(start - 1, "unterminated string in the header");
        return std::string(s_.substr(start, i_++ - start));
    }
    bool boolean() {
        if (s_.substr(i_, 4) == "True") {
            i_ += 4;
            return true;
        }
        if (s_.substr(i_, 5) == "False") {
            i_ += 5;
            return false;
        }
        fail(i_, "expected True or False for 'fortran_order'");
    }
    void tuple() {
        expect('(');
        for (;;) {
            ws();
            if (peek() == ')') break;
            const std::size_t at = i_;
            std::size_t v = 0;
            if (peek() < '0' || peek() > '9') fail(at, "expected a dimension in 'shape'");
            while (peek() >= '0' && peek() <= '9') {
                v = v * 10 + static_cast<std::size_t>(peek() - '0');
                if (v > npy_max_bytes) fail(at, "dimension too large in 'shape'");
                ++i_;
            }
            if (shape.size() == max_rank) fail(at, "more than " + std::to_string(max_rank) + " dimensions in 'shape'");
            shape.push_back(v);
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            if (peek() != ')') fail(i_, "expected ',' or ')' in 'shape'");
        }
        ++i_;
    }

    std::string_view s_;
    std::size_t base_;
    std::string_view name_;
    std::size_t i_ = 0;
};

template <class T>
tensor<T> npy_elements(const shape_t& shape, std::span<const std::byte> data) {
    auto t = tensor<T>::uninitialized(shape);
    copy_from(std::endian::little, data.data(), t.data(), t.size());
    return t;
}

}  // namespace detail

/// Decodes a .npy file held in memory; `name` appears in errors. format_error for a bad
/// magic, version or header, an unsupported dtype (anything but <f4 <f8 <i8 |u1),
/// Fortran order, or a data size that disagrees with the shape.
inline npy_array parse_npy(std::span<const std::byte> bytes, std::string_view name) {
    detail::byte_reader r(bytes, name);
    static constexpr unsigned char magic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    const auto m = r.take(6, "the magic string");
    for (std::size_t i = 0; i < 6; ++i)
        if (static_cast<unsigned char>(m[i]) != magic[i]) r.fail(i, "wrong magic string: not a .npy file");
    const auto major = r.u8("the version");
    r.u8("the version");
    std::size_t header_len = 0;
    if (major == 1)
        header_len = r.u16_le("the header length");
    else if (major == 2 || major == 3)
        header_len = r.u32_le("the header length");
    else
        r.fail(6, "unsupported .npy version " + std::to_string(major));
    if (header_len > npy_max_header)
        r.fail(8, "header length " + std::to_string(header_len) + " exceeds " + std::to_string(npy_max_header));
    const std::size_t base = r.offset();
    const auto h = r.take(header_len, "the header");
    detail::npy_header_parser p(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()), base, name);
    p.parse();
    if (p.fortran) r.fail(base, "Fortran-order arrays are not supported (save a C-order array)");

    std::size_t elem = 0;
    int kind = -1;
    if (p.descr == "<f4") kind = 0, elem = 4;
    else if (p.descr == "<f8") kind = 1, elem = 8;
    else if (p.descr == "<i8") kind = 2, elem = 8;
    else if (p.descr == "|u1" || p.descr == "<u1" || p.descr == ">u1") kind = 3, elem = 1;
    else
        r.fail(base, "unsupported dtype '" + p.descr +
                         "': xgrad reads little-endian float32, float64, int64 and uint8 ('<f4' '<f8' '<i8' '|u1')");

    std::size_t n = 1;
    std::size_t span = 1;  // product with zero extents read as 1: keeps strides representable
    for (auto d : p.shape)
        if (!detail::checked_mul(n, d, npy_max_bytes / elem, n) ||
            !detail::checked_mul(span, d == 0 ? 1 : d, npy_max_bytes / elem, span))
            r.fail(base, "shape " + to_string(p.shape) + " describes more than " + std::to_string(npy_max_bytes) +
                             " bytes");
    const std::size_t need = n * elem;
    if (r.remaining() != need)
        r.fail(r.offset(), (r.remaining() < need ? "truncated: shape " : "trailing bytes: shape ") +
                               to_string(p.shape) + " needs " + std::to_string(need) + " bytes of data, the file has " +
                               std::to_string(r.remaining()));
    const auto data = r.take(need, "the data");
    switch (kind) {
        case 0: return detail::npy_elements<float>(p.shape, data);
        case 1: return detail::npy_elements<double>(p.shape, data);
        case 2: return detail::npy_elements<std::int64_t>(p.shape, data);
        default: return detail::npy_elements<std::uint8_t>(p.shape, data);
    }
}

/// Reads a .npy file; io_error when it cannot be read.
inline npy_array read_npy(const std::filesystem::path& path) {
    const auto bytes = detail::read_file(path);
    return parse_npy(bytes, path.string());
}

/// Reads a .npy file of any supported dtype and converts its elements to T.
template <class T>
tensor<T> read_npy_as(const std::filesystem::path& path) {
    return std::visit([](const auto& t) { return t.template astype<T>(); }, read_npy(path));
}

/// The .npy (version 1.0, or 2.0 for huge headers) encoding of `t`, C order.
template <npy_element T>
std::vector<std::byte> to_npy(const tensor<T>& t) {
    std::string dict = std::string("{'descr': '") + detail::npy_descr<T>() + "', 'fortran_order': False, 'shape': (";
    for (std::size_t d = 0; d < t.dim(); ++d) dict += std::to_string(t.shape()[d]) + (t.dim() == 1 ? "," : (d + 1 < t.dim() ? ", " : ""));
    dict += "), }";
    // numpy pads the header with spaces and a newline to a multiple of 64 bytes
    const bool v2 = dict.size() + 11 + 64 > 65535;
    const std::size_t prefix = v2 ? 12 : 10;
    std::size_t total = prefix + dict.size() + 1;
    total = (total + 63) / 64 * 64;
    dict.append(total - prefix - dict.size() - 1, ' ');
    dict.push_back('\n');

    std::vector<std::byte> out;
    out.reserve(total + t.size() * sizeof(T));
    auto put = [&](unsigned v) { out.push_back(static_cast<std::byte>(v)); };
    for (unsigned c : {0x93u, unsigned('N'), unsigned('U'), unsigned('M'), unsigned('P'), unsigned('Y')}) put(c);
    put(v2 ? 2 : 1);
    put(0);
    const std::size_t len = dict.size();
    for (std::size_t i = 0; i < (v2 ? 4u : 2u); ++i) put(static_cast<unsigned>((len >> (8 * i)) & 0xff));
    for (char c : dict) put(static_cast<unsigned char>(c));

    const auto body = t.contiguous();
    const std::size_t start = out.size();
    out.resize(start + body.size() * sizeof(T));
    detail::copy_from(std::endian::little, reinterpret_cast<const std::byte*>(body.data()),
                      reinterpret_cast<T*>(out.data() + start), body.size());
    return out;
}

/// Writes `t` as a .npy file; io_error on failure.
template <npy_element T>
void write_npy(const std::filesystem::path& path, const tensor<T>& t) {
    detail::write_file(path, to_npy(t));
}

}  // namespace xgrad::io
