#pragma once
// TensorBoard event files (events.out.tfevents.*), written directly.
//
// A file is a sequence of records, each
//   u64 length (little endian) | u32 masked CRC-32C of those 8 bytes | data | u32 masked CRC-32C of data
// with mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8. Each record's data is an Event protobuf
// (tensorflow/core/util/event.proto): wall_time = 1 (double), step = 2 (int64) and one of
// file_version = 3 (string, "brain.Event:2" in the first record) or summary = 5. A Summary holds
// Values: tag = 1 and one of simple_value = 2 (float), image = 4 (height 1, width 2,
// colorspace 3, encoded_image_string 4) or histo = 5 (HistogramProto: min 1, max 2, num 3,
// sum 4, sum_squares 5, bucket_limit 6, bucket 7, both packed doubles).
//
// Every record is encoded in memory and written with one write and a flush, so a killed run
// leaves whole records plus at most one partial record at the end; readers (TensorBoard's and
// read_event_records below) stop at that partial record and keep everything before it.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "detail/protobuf.hpp"
#include "png.hpp"

namespace xgrad::io {

namespace detail {

/// CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), table driven.
inline std::uint32_t crc32c(std::string_view data, std::uint32_t crc = 0) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (unsigned char b : data) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
    return ~crc;
}

inline std::uint32_t masked_crc32c(std::string_view data) {
    const std::uint32_t c = crc32c(data);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

inline void put_le(std::string& out, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline std::uint64_t get_le(const char* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
    return v;
}

/// One framed record around `data`.
inline std::string event_record(std::string_view data) {
    std::string out;
    out.reserve(data.size() + 16);
    put_le(out, data.size(), 8);
    put_le(out, masked_crc32c(out), 4);
    out.append(data);
    put_le(out, masked_crc32c(data), 4);
    return out;
}

inline std::string event_file_version(double wall_time) {
    pb_writer e;
    e.double_field(1, wall_time);
    e.bytes_field(3, "brain.Event:2");
    return e.bytes();
}

/// An Event holding a Summary with one Value (`value`: the Value's fields after its tag).
inline std::string summary_event(double wall_time, std::int64_t step, std::string_view tag, const pb_writer& value) {
    pb_writer v, s, e;
    v.bytes_field(1, tag);
    v.append(value);
    s.message_field(1, v);
    e.double_field(1, wall_time);
    e.int_field(2, step);
    e.message_field(5, s);
    return e.bytes();
}

inline std::string scalar_event(double wall_time, std::int64_t step, std::string_view tag, float value) {
    pb_writer v;
    v.float_field(2, value);
    return summary_event(wall_time, step, tag, v);
}

/// HistogramProto of the finite values, `bins` equal-width buckets between min and max
/// (bucket_limit holds each bucket's right edge; one bucket when all values are equal).
inline pb_writer histogram_proto(std::span<const double> values, std::size_t bins) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0, sum_sq = 0, num = 0;
    for (double x : values)
        if (std::isfinite(x)) {
            lo = std::min(lo, x);
            hi = std::max(hi, x);
            sum += x;
            sum_sq += x * x;
            ++num;
        }
    std::vector<double> limits, counts;
    if (num == 0) {
        lo = hi = 0;
    } else if (lo == hi || bins <= 1) {
        limits.push_back(hi);
        counts.push_back(num);
    } else {
        const double width = (hi - lo) / static_cast<double>(bins);
        counts.assign(bins, 0);
        for (std::size_t b = 0; b < bins; ++b) limits.push_back(b + 1 == bins ? hi : lo + width * static_cast<double>(b + 1));
        for (double x : values)
            if (std::isfinite(x))
                ++counts[std::min(bins - 1, static_cast<std::size_t>((x - lo) / width))];
    }
    pb_writer h;
    h.double_field(1, lo);
    h.double_field(2, hi);
    h.double_field(3, num);
    h.double_field(4, sum);
    h.double_field(5, sum_sq);
    h.packed_doubles(6, limits);
    h.packed_doubles(7, counts);
    return h;
}

inline std::string event_file_name() {
    static std::atomic<unsigned> counter{0};
    std::string host = "localhost";
#if defined(__unix__) || defined(__APPLE__)
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) == 0 && buf[0]) host = buf;
    const long pid = static_cast<long>(getpid());
#else
    const long pid = 0;
#endif
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
    return "events.out.tfevents." + std::to_string(secs) + "." + host + "." + std::to_string(pid) + "." +
           std::to_string(counter++);
}

}  // namespace detail

/// Seconds since the Unix epoch (an Event's wall_time).
inline double wall_time_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// Writes one events.out.tfevents.* file in `logdir` (created if needed): scalars, histograms
/// and images, as TensorBoard's SummaryWriter. io_error naming the path when the directory
/// cannot be created or the file written.
class event_writer {
public:
    explicit event_writer(const std::filesystem::path& logdir) : logdir_(logdir) {
        std::error_code ec;
        std::filesystem::create_directories(logdir, ec);
        if (ec || !std::filesystem::is_directory(logdir))
            throw io_error("tensorboard: cannot create the log directory '" + logdir.string() + "'" +
                           (ec ? ": " + ec.message() : std::string(": not a directory")));
        path_ = logdir / detail::event_file_name();
        out_.open(path_, std::ios::binary | std::ios::app);
        if (!out_) throw io_error("tensorboard: cannot open '" + path_.string() + "' for writing");
        write_record(detail::event_file_version(wall_time_now()));
    }

    const std::filesystem::path& logdir() const noexcept { return logdir_; }
    /// The event file being written.
    const std::filesystem::path& path() const noexcept { return path_; }

    void add_scalar(std::string_view tag, double value, std::int64_t step) {
        write_record(detail::scalar_event(wall_time_now(), step, tag, static_cast<float>(value)));
    }

    /// A histogram of `values` (non-finite values left out) in `bins` equal-width buckets.
    void add_histogram(std::string_view tag, std::span<const double> values, std::int64_t step, std::size_t bins = 30) {
        if (bins == 0) throw value_error("tensorboard: add_histogram needs at least one bin");
        pb_writer v;
        v.message_field(5, detail::histogram_proto(values, bins));
        write_record(detail::summary_event(wall_time_now(), step, tag, v));
    }
    template <class T>
    void add_histogram(std::string_view tag, const tensor<T>& t, std::int64_t step, std::size_t bins = 30) {
        const auto c = t.contiguous();
        std::vector<double> v(c.data(), c.data() + c.size());
        add_histogram(tag, v, step, bins);
    }

    /// An image (stored as PNG).
    void add_image(std::string_view tag, const image& img, std::int64_t step) {
        pb_writer im, v;
        im.int_field(1, static_cast<std::int64_t>(img.height));
        im.int_field(2, static_cast<std::int64_t>(img.width));
        im.int_field(3, static_cast<std::int64_t>(img.channels));
        im.bytes_field(4, encode_png(img));
        v.message_field(4, im);
        write_record(detail::summary_event(wall_time_now(), step, tag, v));
    }

    /// Number of records written (the file_version record included).
    std::size_t records() const noexcept { return records_; }

private:
    using pb_writer = detail::pb_writer;

    void write_record(std::string_view data) {
        const std::string rec = detail::event_record(data);
        out_.write(rec.data(), static_cast<std::streamsize>(rec.size()));
        out_.flush();
        if (!out_) throw io_error("tensorboard: write to '" + path_.string() + "' failed");
        ++records_;
    }

    std::filesystem::path logdir_, path_;
    std::ofstream out_;
    std::size_t records_ = 0;
};

/// The records of an event file (each one's data: an Event protobuf). A partial record at the
/// end (a write cut short) is left out and reported by `truncated`; a complete record whose
/// length or data fails its CRC is a format_error naming the file and the record's offset.
struct event_records {
    std::vector<std::string> records;
    std::uint64_t valid_bytes = 0;  ///< bytes taken by the whole records
    bool truncated = false;
};

inline event_records read_event_records(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw io_error(path.string() + ": cannot open for reading");
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    event_records r;
    std::size_t at = 0;
    while (at < bytes.size()) {
        const std::string where = path.string() + ": record at byte " + std::to_string(at);
        if (bytes.size() - at < 12) {
            r.truncated = true;
            break;
        }
        const std::string_view len_bytes(bytes.data() + at, 8);
        if (detail::get_le(bytes.data() + at + 8, 4) != detail::masked_crc32c(len_bytes))
            throw format_error(where + ": length CRC mismatch");
        const std::uint64_t len = detail::get_le(bytes.data() + at, 8);
        if (len > bytes.size() - at - 12 || bytes.size() - at - 12 - len < 4) {
            r.truncated = true;
            break;
        }
        const std::string_view data(bytes.data() + at + 12, len);
        if (detail::get_le(bytes.data() + at + 12 + len, 4) != detail::masked_crc32c(data))
            throw format_error(where + ": data CRC mismatch");
        r.records.emplace_back(data);
        at += 16 + len;
        r.valid_bytes = at;
    }
    return r;
}

}  // namespace xgrad::io
