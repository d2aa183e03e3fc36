#pragma once
// CIFAR-10 binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin):
// records of 1 label byte (0..9) followed by 3072 pixel bytes, channel-major 3x32x32.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "../core/tensor.hpp"
#include "detail/bytes.hpp"

namespace xgrad::io {

inline constexpr std::size_t cifar10_pixels = 3 * 32 * 32;
inline constexpr std::size_t cifar10_record = 1 + cifar10_pixels;
inline constexpr std::size_t cifar10_classes = 10;

/// Images {N, 3, 32, 32} uint8 and labels {N}.
struct cifar10_batch {
    tensor<std::uint8_t> images;
    tensor<std::int64_t> labels;
};

namespace detail {

/// Number of records in a CIFAR-10 batch, after checking its size and every label.
inline std::size_t check_cifar10(std::span<const std::byte> bytes, std::string_view name) {
    if (bytes.empty()) throw format_error(at_byte(name, 0, "empty file: a CIFAR-10 batch holds at least one record"));
    if (bytes.size() % cifar10_record != 0) {
        const std::size_t whole = bytes.size() / cifar10_record;
        throw format_error(at_byte(name, whole * cifar10_record,
                                   "truncated record: " + std::to_string(bytes.size() - whole * cifar10_record) +
                                       " of " + std::to_string(cifar10_record) + " bytes (file size " +
                                       std::to_string(bytes.size()) + " is not a multiple of the record size)"));
    }
    const std::size_t n = bytes.size() / cifar10_record;
    for (std::size_t i = 0; i < n; ++i) {
        const auto label = static_cast<std::uint8_t>(bytes[i * cifar10_record]);
        if (label >= cifar10_classes)
            throw format_error(at_byte(name, i * cifar10_record,
                                       "label " + std::to_string(label) + " of record " + std::to_string(i) +
                                           " is outside 0.." + std::to_string(cifar10_classes - 1)));
    }
    return n;
}

/// Writes the checked records of `bytes` to `images` and `labels`.
inline void decode_cifar10(std::span<const std::byte> bytes, std::size_t n, std::uint8_t* images,
                           std::int64_t* labels) {
    for (std::size_t i = 0; i < n; ++i) {
        const std::byte* rec = bytes.data() + i * cifar10_record;
        labels[i] = static_cast<std::uint8_t>(rec[0]);
        std::memcpy(images + i * cifar10_pixels, rec + 1, cifar10_pixels);
    }
}

}  // namespace detail

/// Decodes one CIFAR-10 batch held in memory; format_error on a truncated record or a bad label.
inline cifar10_batch parse_cifar10(std::span<const std::byte> bytes, std::string_view name) {
    const std::size_t n = detail::check_cifar10(bytes, name);
    cifar10_batch b{tensor<std::uint8_t>::uninitialized({n, 3, 32, 32}), tensor<std::int64_t>::uninitialized({n})};
    detail::decode_cifar10(bytes, n, b.images.data(), b.labels.data());
    return b;
}

/// Reads one CIFAR-10 batch file; io_error when it cannot be read.
inline cifar10_batch read_cifar10(const std::filesystem::path& path) {
    const auto bytes = detail::read_file(path);
    return parse_cifar10(bytes, path.string());
}

}  // namespace xgrad::io
