#pragma once
// Helpers shared by the data and io tests: a scratch directory, byte builders, gzip.
#include <zlib.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace xgrad_test {

using bytes = std::vector<std::byte>;

/// A fresh directory under the system temp dir, removed with everything in it.
class temp_dir {
public:
    temp_dir() {
        static std::atomic<int> counter{0};
        path_ = std::filesystem::temp_directory_path() /
                ("xgrad-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

inline bytes make_bytes(std::initializer_list<int> values) {
    bytes b;
    for (int v : values) b.push_back(static_cast<std::byte>(v));
    return b;
}

inline void append(bytes& b, std::span<const std::byte> more) { b.insert(b.end(), more.begin(), more.end()); }

inline void put_u32_be(bytes& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::byte>((v >> s) & 0xff));
}

inline void write_file(const std::filesystem::path& p, std::span<const std::byte> b) {
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!out) throw std::runtime_error("cannot write " + p.string());
}

inline void write_text(const std::filesystem::path& p, const std::string& s) {
    write_file(p, std::as_bytes(std::span(s.data(), s.size())));
}

/// An IDX header (type code, dimensions) followed by `payload`.
inline bytes make_idx(int type, std::initializer_list<std::uint32_t> dims, std::span<const std::byte> payload) {
    bytes b = make_bytes({0, 0, type, static_cast<int>(dims.size())});
    for (auto d : dims) put_u32_be(b, d);
    append(b, payload);
    return b;
}

/// A single gzip member holding `data`.
inline bytes gzip(std::span<const std::byte> data) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2");
    bytes out(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int r = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (r != Z_STREAM_END) throw std::runtime_error("deflate");
    out.resize(zs.total_out);
    return out;
}

}  // namespace xgrad_test
