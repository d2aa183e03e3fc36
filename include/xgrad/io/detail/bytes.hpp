#pragma once
// Bounds-checked reading of untrusted bytes, and the error messages every reader shares.
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/config.hpp"
#include "../../core/error.hpp"

namespace xgrad::io::detail {

/// "name: byte 12: what"
XGRAD_OUTLINE std::string at_byte(std::string_view name, std::size_t offset, std::string_view what) {
    std::string s(name);
    s += ": byte ";
    s += std::to_string(offset);
    s += ": ";
    s += what;
    return s;
}
XGRAD_INSTANCE(std::string at_byte(std::string_view name, std::size_t offset, std::string_view what))

/// "name: line 7: what"
XGRAD_OUTLINE std::string at_line(std::string_view name, std::size_t line, std::string_view what) {
    std::string s(name);
    s += ": line ";
    s += std::to_string(line);
    s += ": ";
    s += what;
    return s;
}
XGRAD_INSTANCE(std::string at_line(std::string_view name, std::size_t line, std::string_view what))

/// The whole file as bytes; io_error names the file and the system's reason.
XGRAD_OUTLINE std::vector<std::byte> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw io_error(path.string() + ": cannot open for reading (" + std::strerror(errno) + ")");
    std::vector<std::byte> out;
    // read in chunks rather than trusting a size query: works for pipes and files that change
    constexpr std::size_t chunk = std::size_t{1} << 20;
    for (;;) {
        const std::size_t old = out.size();
        out.resize(old + chunk);
        in.read(reinterpret_cast<char*>(out.data() + old), static_cast<std::streamsize>(chunk));
        const auto got = static_cast<std::size_t>(in.gcount());
        out.resize(old + got);
        if (got < chunk) break;
    }
    if (in.bad()) throw io_error(path.string() + ": read failed after " + std::to_string(out.size()) + " bytes");
    return out;
}
XGRAD_INSTANCE(std::vector<std::byte> read_file(const std::filesystem::path& path))

/// Writes `bytes` to `path`, replacing it; io_error on failure.
XGRAD_OUTLINE void write_file(const std::filesystem::path& path, std::span<const std::byte> bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw io_error(path.string() + ": cannot open for writing (" + std::strerror(errno) + ")");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw io_error(path.string() + ": write failed");
}
XGRAD_INSTANCE(void write_file(const std::filesystem::path& path, std::span<const std::byte> bytes))

/// Reverses the bytes of a trivially copyable value.
template <class T>
T byteswap_value(T v) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(&v, b, sizeof(T));
    return v;
}

/// Copies n values stored with byte order `from` into `dst`, converting to the host order.
template <class T>
void copy_from(std::endian from, const std::byte* src, T* dst, std::size_t n) {
    if (n != 0) std::memcpy(dst, src, n * sizeof(T));
    if constexpr (sizeof(T) > 1) {
        if (from != std::endian::native)
            for (std::size_t i = 0; i < n; ++i) dst[i] = byteswap_value(dst[i]);
    }
}

/// a * b, or false when it overflows `limit`.
inline bool checked_mul(std::size_t a, std::size_t b, std::size_t limit, std::size_t& out) {
    if (a != 0 && b > limit / a) return false;
    out = a * b;
    return out <= limit;
}

/// A cursor over untrusted bytes: every read checks the remaining length first.
class byte_reader {
public:
    byte_reader(std::span<const std::byte> bytes, std::string_view name) : bytes_(bytes), name_(name) {}

    std::size_t offset() const noexcept { return pos_; }
    std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
    std::string_view name() const noexcept { return name_; }

    /// Throws format_error "truncated" unless n more bytes exist.
    void need(std::size_t n, std::string_view what) const {
        if (n > remaining())
            throw format_error(at_byte(name_, pos_,
                                       "truncated: " + std::string(what) + " needs " + std::to_string(n) +
                                           " bytes, " + std::to_string(remaining()) + " left"));
    }

    std::span<const std::byte> take(std::size_t n, std::string_view what) {
        need(n, what);
        auto s = bytes_.subspan(pos_, n);
        pos_ += n;
        return s;
    }

    std::uint8_t u8(std::string_view what) { return static_cast<std::uint8_t>(take(1, what)[0]); }

    std::uint32_t u32_be(std::string_view what) {
        auto s = take(4, what);
        std::uint32_t v = 0;
        for (auto b : s) v = (v << 8) | static_cast<std::uint8_t>(b);
        return v;
    }

    std::uint32_t u32_le(std::string_view what) {
        auto s = take(4, what);
        std::uint32_t v = 0;
        for (std::size_t i = 4; i-- > 0;) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
        return v;
    }

    std::uint16_t u16_le(std::string_view what) {
        auto s = take(2, what);
        return static_cast<std::uint16_t>(static_cast<std::uint8_t>(s[0]) | (static_cast<std::uint8_t>(s[1]) << 8));
    }

    [[noreturn]] void fail(std::size_t offset, std::string_view what) const {
        throw format_error(at_byte(name_, offset, what));
    }

private:
    std::span<const std::byte> bytes_;
    std::string_view name_;
    std::size_t pos_ = 0;
};

}  // namespace xgrad::io::detail
