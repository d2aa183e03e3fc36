#pragma once
// bzip2 decompression (libbz2) with a hard bound on the output size, and a file reader
// that decompresses .bz2/.gz files by their magic number.
#include <bzlib.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "detail/bytes.hpp"
#include "gzip.hpp"

namespace xgrad::io {

/// True when `bytes` starts with a bzip2 stream header: "BZh" and a block size digit 1-9.
inline bool is_bzip2(std::span<const std::byte> bytes) noexcept {
    return bytes.size() >= 4 && bytes[0] == std::byte{'B'} && bytes[1] == std::byte{'Z'} &&
           bytes[2] == std::byte{'h'} && bytes[3] >= std::byte{'1'} && bytes[3] <= std::byte{'9'};
}

/// Decompresses a bzip2 stream (several concatenated streams are allowed, as bzip2(1) does).
/// Corrupt or truncated data, or more than `max_out` bytes of output, throw format_error
/// naming `name` and the compressed byte offset.
inline std::vector<std::byte> bunzip2(std::span<const std::byte> in, std::string_view name, std::size_t max_out) {
    if (!is_bzip2(in)) throw format_error(detail::at_byte(name, 0, "not a bzip2 stream (no \"BZh\" header)"));
    std::vector<std::byte> out(std::min<std::size_t>(max_out, std::max<std::size_t>(in.size() * 6, 4096)));
    std::size_t produced = 0;
    std::size_t consumed = 0;
    // libbz2 counts in unsigned int; feed at most 1 GiB per call
    constexpr std::size_t piece = std::size_t{1} << 30;
    while (consumed < in.size()) {
        bz_stream bz{};
        if (BZ2_bzDecompressInit(&bz, 0, 0) != BZ_OK) throw io_error(std::string(name) + ": libbz2 initialisation failed");
        struct guard {
            bz_stream* b;
            ~guard() { BZ2_bzDecompressEnd(b); }
        } g{&bz};
        const std::size_t stream_start = consumed;
        for (;;) {
            if (bz.avail_in == 0 && consumed < in.size()) {
                bz.next_in = const_cast<char*>(reinterpret_cast<const char*>(in.data() + consumed));
                bz.avail_in = static_cast<unsigned>(std::min(in.size() - consumed, piece));
                consumed += bz.avail_in;
            }
            if (produced == out.size()) {
                if (produced == max_out) {
                    // one byte of scratch: anything written there is one byte too many
                    char scratch;
                    bz.next_out = &scratch;
                    bz.avail_out = 1;
                    const int r = BZ2_bzDecompress(&bz);
                    if (bz.avail_out == 0)
                        throw format_error(detail::at_byte(name, consumed - bz.avail_in,
                                                           "decompressed data exceeds the limit of " +
                                                               std::to_string(max_out) + " bytes"));
                    if (r == BZ_STREAM_END) break;
                    if (r != BZ_OK)
                        throw format_error(detail::at_byte(name, consumed - bz.avail_in, "corrupt bzip2 data"));
                    if (bz.avail_in == 0 && consumed == in.size())
                        throw format_error(detail::at_byte(name, consumed, "truncated bzip2 stream"));
                    continue;
                }
                out.resize(std::min(max_out, out.size() * 2));
            }
            bz.next_out = reinterpret_cast<char*>(out.data() + produced);
            bz.avail_out = static_cast<unsigned>(std::min(out.size() - produced, piece));
            const unsigned room = bz.avail_out;
            const int r = BZ2_bzDecompress(&bz);
            produced += room - bz.avail_out;
            if (r == BZ_STREAM_END) break;
            if (r == BZ_MEM_ERROR) throw io_error(std::string(name) + ": out of memory while decompressing");
            if (r != BZ_OK)
                throw format_error(detail::at_byte(name, consumed - bz.avail_in,
                                                   r == BZ_DATA_ERROR_MAGIC ? "not a bzip2 stream"
                                                                            : "corrupt bzip2 data"));
            // BZ_OK without progress and without input left: the stream stops early
            if (bz.avail_in == 0 && consumed == in.size() && bz.avail_out != 0)
                throw format_error(detail::at_byte(name, consumed, "truncated bzip2 stream"));
        }
        consumed -= bz.avail_in;  // unread bytes belong to the next stream
        if (consumed == stream_start) break;  // cannot happen after BZ_STREAM_END; guards the loop
        // bzip2(1) ignores trailing zero padding after the last stream
        if (consumed < in.size() && !is_bzip2(in.subspan(consumed))) {
            bool zeros = true;
            for (std::size_t i = consumed; i < in.size() && zeros; ++i) zeros = in[i] == std::byte{0};
            if (zeros) break;
            throw format_error(detail::at_byte(name, consumed, "trailing garbage after the bzip2 stream"));
        }
    }
    out.resize(produced);
    return out;
}

/// Upper bound on a decompressed text file read by read_text (4 GiB).
inline constexpr std::size_t max_text_bytes = std::size_t{1} << 32;

/// The bytes of a file, decompressed when they start with the bzip2 or gzip magic number.
inline std::vector<std::byte> read_maybe_compressed(const std::filesystem::path& path,
                                                    std::size_t max_out = max_text_bytes) {
    auto bytes = detail::read_file(path);
    if (is_bzip2(bytes)) return bunzip2(bytes, path.string(), max_out);
    if (is_gzip(bytes)) return gunzip(bytes, path.string(), max_out);
    return bytes;
}

/// A text file as a string, decompressed when it is bzip2 or gzip.
inline std::string read_text(const std::filesystem::path& path, std::size_t max_out = max_text_bytes) {
    const auto bytes = read_maybe_compressed(path, max_out);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace xgrad::io
