#pragma once
// A small PNG encoder (8-bit grey, grey+alpha, RGB or RGBA; no interlacing): the signature,
// IHDR, one IDAT holding the zlib-deflated rows (each row led by filter byte 0, "none") and IEND;
// every chunk ends with the CRC-32 of its type and data (zlib's crc32). TensorBoard's image
// summaries and plot() use it.
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace xgrad::io {

/// 8-bit pixels, row-major, `channels` (1: grey, 2: grey + alpha, 3: RGB, 4: RGBA) per pixel.
struct image {
    std::size_t width = 0, height = 0, channels = 3;
    std::vector<std::uint8_t> pixels;

    image() = default;
    image(std::size_t w, std::size_t h, std::size_t c, std::uint8_t fill = 0)
        : width(w), height(h), channels(c), pixels(w * h * c, fill) {}
    std::uint8_t* at(std::size_t x, std::size_t y) { return pixels.data() + (y * width + x) * channels; }
};

namespace detail {

inline void png_u32(std::string& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

inline void png_chunk(std::string& out, const char* type, const std::string& data) {
    png_u32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.append(type, 4);
    out.append(data);
    const auto* p = reinterpret_cast<const Bytef*>(out.data() + start);
    png_u32(out, static_cast<std::uint32_t>(crc32(0L, p, static_cast<uInt>(out.size() - start))));
}

}  // namespace detail

/// The PNG file of `img` as bytes. value_error for an empty image, a bad channel count or a
/// pixel buffer of the wrong size.
inline std::string encode_png(const image& img) {
    if (img.width == 0 || img.height == 0 || img.width > 0x7fffffff || img.height > 0x7fffffff)
        throw value_error("encode_png: image of " + std::to_string(img.width) + "x" + std::to_string(img.height) +
                          " pixels (each side must be in [1, 2^31))");
    static constexpr std::uint8_t color_type[] = {0, 0, 4, 2, 6};  // by channel count
    if (img.channels < 1 || img.channels > 4)
        throw value_error("encode_png: " + std::to_string(img.channels) + " channels (1 to 4 are allowed)");
    const std::size_t row = img.width * img.channels;
    if (img.pixels.size() != row * img.height)
        throw value_error("encode_png: " + std::to_string(img.pixels.size()) + " pixel bytes for a " +
                          std::to_string(img.width) + "x" + std::to_string(img.height) + "x" +
                          std::to_string(img.channels) + " image");
    std::string raw;
    raw.reserve((row + 1) * img.height);
    for (std::size_t y = 0; y < img.height; ++y) {
        raw.push_back('\0');  // filter: none
        raw.append(reinterpret_cast<const char*>(img.pixels.data() + y * row), row);
    }
    uLongf zlen = compressBound(static_cast<uLong>(raw.size()));
    std::string z(zlen, '\0');
    if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
                  static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) != Z_OK)
        throw io_error("encode_png: zlib compression failed");
    z.resize(zlen);

    std::string out("\x89PNG\r\n\x1a\n", 8);
    std::string ihdr;
    detail::png_u32(ihdr, static_cast<std::uint32_t>(img.width));
    detail::png_u32(ihdr, static_cast<std::uint32_t>(img.height));
    ihdr += static_cast<char>(8);  // bit depth
    ihdr += static_cast<char>(color_type[img.channels]);
    ihdr.append(3, '\0');  // deflate, adaptive filtering, no interlace
    detail::png_chunk(out, "IHDR", ihdr);
    detail::png_chunk(out, "IDAT", z);
    detail::png_chunk(out, "IEND", {});
    return out;
}

/// Writes `img` as a PNG file; io_error naming the path when it cannot be written.
inline void write_png(const std::filesystem::path& path, const image& img) {
    const std::string bytes = encode_png(img);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw io_error(path.string() + ": cannot open for writing");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f.flush()) throw io_error(path.string() + ": write failed");
}

}  // namespace xgrad::io
