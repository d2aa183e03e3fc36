#pragma once
// gzip decompression (zlib) with a hard bound on the output size, so a small
// malicious file cannot expand into gigabytes.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "detail/bytes.hpp"

namespace xgrad::io {

/// True when `bytes` starts with the gzip magic number 1f 8b.
inline bool is_gzip(std::span<const std::byte> bytes) noexcept {
    return bytes.size() >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b};
}

/// Deflate cannot expand input by more than about 1032:1; a claimed size beyond this
/// bound proves a gzip stream is truncated without decompressing it.
inline constexpr std::size_t gzip_max_ratio = 1032;

/// How gunzip treats its `max_out` bound.
enum class gunzip_mode {
    bounded,  ///< any size up to max_out; more is a format_error
    exact,    ///< the caller expects about max_out bytes: allocate them up front; more is a format_error
    prefix,   ///< stop quietly after max_out bytes (to peek at a header)
};

/// Decompresses a gzip stream (several concatenated members are allowed, as gzip(1) does).
/// Corrupt or truncated streams throw format_error naming `name` and the compressed byte offset.
XGRAD_OUTLINE std::vector<std::byte> gunzip(std::span<const std::byte> in, std::string_view name, std::size_t max_out,
                                     gunzip_mode mode = gunzip_mode::bounded) {
    const bool prefix_only = mode == gunzip_mode::prefix;
    z_stream zs{};
    // 16 + MAX_WBITS: gzip wrapper only, with its CRC-32 and length checked by zlib
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) throw io_error(std::string(name) + ": zlib initialisation failed");
    struct guard {
        z_stream* z;
        ~guard() { inflateEnd(z); }
    } g{&zs};

    std::vector<std::byte> out;
    out.resize(mode == gunzip_mode::exact ? max_out
                                          : std::min<std::size_t>(max_out, std::max<std::size_t>(in.size() * 4, 4096)));
    std::size_t produced = 0;
    std::size_t consumed = 0;  // input bytes before the current member
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    // zlib counts in uInt; feed the input in pieces so huge buffers are fine too
    constexpr std::size_t piece = std::size_t{1} << 30;
    std::size_t in_left = in.size();
    auto feed = [&] {
        if (zs.avail_in == 0 && in_left != 0) {
            zs.avail_in = static_cast<uInt>(std::min(in_left, piece));
            in_left -= zs.avail_in;
        }
    };
    auto where = [&] { return consumed + static_cast<std::size_t>(zs.total_in); };

    for (;;) {
        if (produced == out.size() && produced < max_out)
            out.resize(std::min(max_out, std::max<std::size_t>(out.size() * 2, 4096)));
        if (produced == max_out && prefix_only) break;
        feed();
        // At the bound, inflate into a one-byte scratch: any output there is one byte too many.
        std::byte scratch{};
        const bool full = produced == max_out;
        const std::size_t room = full ? 1 : std::min(out.size() - produced, piece);
        zs.next_out = reinterpret_cast<Bytef*>(full ? &scratch : out.data() + produced);
        zs.avail_out = static_cast<uInt>(room);
        const int r = inflate(&zs, Z_NO_FLUSH);
        const std::size_t got = room - zs.avail_out;
        if (full && got != 0)
            throw format_error(detail::at_byte(name, where(),
                                               "decompressed data exceeds the limit of " + std::to_string(max_out) +
                                                   " bytes"));
        produced += got;
        if (r == Z_OK) continue;
        if (r == Z_STREAM_END) {
            if (zs.avail_in == 0 && in_left == 0) break;
            consumed += static_cast<std::size_t>(zs.total_in);  // another member follows
            if (inflateReset(&zs) != Z_OK) throw io_error(std::string(name) + ": zlib reset failed");
            continue;
        }
        if (r == Z_BUF_ERROR) {  // no progress: output full (grown next round) or input exhausted
            if (zs.avail_out != 0 && zs.avail_in == 0 && in_left == 0)
                throw format_error(detail::at_byte(name, where(), "truncated gzip stream"));
            continue;
        }
        if (r == Z_MEM_ERROR) throw io_error(std::string(name) + ": out of memory while decompressing");
        throw format_error(detail::at_byte(name, where(),
                                           std::string("corrupt gzip data (") + (zs.msg ? zs.msg : "zlib error") + ")"));
    }
    out.resize(produced);
    return out;
}
XGRAD_INSTANCE(std::vector<std::byte> gunzip(std::span<const std::byte> in, std::string_view name, std::size_t max_out, gunzip_mode mode))

}  // namespace xgrad::io
