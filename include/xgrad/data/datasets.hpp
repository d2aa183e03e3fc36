#pragma once
// Ready-made datasets: Fashion-MNIST (and any IDX image/label pair), CIFAR-10 binary
// batches, and CSV tables. Each loads into a tensor_dataset held in memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../core/config.hpp"
#include "../core/tensor.hpp"
#include "../io/cifar10.hpp"
#include "../io/csv.hpp"
#include "../io/idx.hpp"
#include "tensor_dataset.hpp"

namespace xgrad::data {

enum class split { train, test };

/// Where fashion_mnist() looks when no directory is given: Debian's dataset-fashion-mnist.
inline constexpr const char* fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

/// Images {N, 1, H, W} uint8 and labels {N} from an IDX pair (MNIST layout). format_error
/// when the images are not uint8 {N, H, W}, the labels not uint8 {N}, the counts differ
/// or a label is not below `num_classes` (the message names the file and byte offset).
XGRAD_OUTLINE tensor_dataset<std::uint8_t> idx_dataset(const std::filesystem::path& images_file,
                                                const std::filesystem::path& labels_file,
                                                std::size_t num_classes = 10) {
    const std::string in = images_file.string(), ln = labels_file.string();
    auto images = io::idx_get<std::uint8_t>(io::read_idx(images_file), in);
    auto labels = io::idx_get<std::uint8_t>(io::read_idx(labels_file), ln);
    if (images.dim() == 3)
        images = images.reshape(shape_t{images.shape()[0], 1, images.shape()[1], images.shape()[2]});
    else if (images.dim() != 4)
        throw format_error(in + ": byte 3: images of rank " + std::to_string(images.dim()) +
                           ", expected {N, H, W} or {N, C, H, W}");
    if (labels.dim() != 1)
        throw format_error(ln + ": byte 3: labels of rank " + std::to_string(labels.dim()) + ", expected {N}");
    if (labels.size() != images.shape()[0])
        throw format_error(ln + ": byte 4: " + std::to_string(labels.size()) + " labels for " +
                           std::to_string(images.shape()[0]) + " images in " + in);
    auto out = tensor<std::int64_t>::uninitialized({labels.size()});
    for (std::size_t i = 0; i < labels.size(); ++i) {
        const std::uint8_t v = labels.data()[i];
        if (v >= num_classes)
            throw format_error(ln + ": byte " + std::to_string(8 + i) + ": label " + std::to_string(v) +
                               " is outside 0.." + std::to_string(num_classes - 1));
        out.data()[i] = v;
    }
    return {images, out};
}
XGRAD_INSTANCE(tensor_dataset<std::uint8_t> idx_dataset(const std::filesystem::path& images_file, const std::filesystem::path& labels_file, std::size_t num_classes))

namespace detail {
/// `dir/stem`, or `dir/stem.gz`, whichever exists; empty when neither does.
XGRAD_OUTLINE std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& stem) {
    std::error_code ec;
    for (const auto& p : {dir / stem, dir / (stem + ".gz")})
        if (std::filesystem::is_regular_file(p, ec)) return p;
    return {};
}
XGRAD_INSTANCE(std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& stem))

/// The first of `places` that holds both files of the split.
XGRAD_OUTLINE tensor_dataset<std::uint8_t> fashion_mnist_in(const std::vector<std::filesystem::path>& places, split which) {
    const std::string prefix = which == split::train ? "train" : "t10k";
    std::string tried;
    for (const auto& d : places) {
        const auto images = find_idx(d, prefix + "-images-idx3-ubyte");
        const auto labels = find_idx(d, prefix + "-labels-idx1-ubyte");
        if (!images.empty() && !labels.empty()) return idx_dataset(images, labels, 10);
        tried += (tried.empty() ? "" : ", ") + d.string();
    }
    throw io_error("fashion_mnist: no " + prefix + "-images-idx3-ubyte[.gz] and " + prefix +
                   "-labels-idx1-ubyte[.gz] in " + tried +
                   " (install Debian's dataset-fashion-mnist, pass a directory, or set XGRAD_DATA_DIR)");
}
XGRAD_INSTANCE(tensor_dataset<std::uint8_t> fashion_mnist_in(const std::vector<std::filesystem::path>& places, split which))
}  // namespace detail

/// Fashion-MNIST (Xiao et al. 2017): 60000 train / 10000 test images {1, 28, 28}, 10
/// classes. Looks in `dir`, then $XGRAD_DATA_DIR, then Debian's install location, for
/// {train,t10k}-{images-idx3,labels-idx1}-ubyte, plain or .gz; io_error when none has them.
XGRAD_OUTLINE tensor_dataset<std::uint8_t> fashion_mnist(split which, const std::filesystem::path& dir = {}) {
    std::vector<std::filesystem::path> places;
    if (!dir.empty()) places.push_back(dir);
    if (const char* env = std::getenv("XGRAD_DATA_DIR"); env && *env) places.emplace_back(env);
    places.emplace_back(fashion_mnist_default_dir);
    return detail::fashion_mnist_in(places, which);
}
XGRAD_INSTANCE(tensor_dataset<std::uint8_t> fashion_mnist(split which, const std::filesystem::path& dir))

/// CIFAR-10 (Krizhevsky 2009) from its binary version: data_batch_1.bin ... data_batch_5.bin
/// (train) or test_batch.bin (test) in `dir` or `dir/cifar-10-batches-bin`. Images
/// {N, 3, 32, 32} uint8, labels 0..9. io_error for a missing file, format_error for bad content.
XGRAD_OUTLINE tensor_dataset<std::uint8_t> cifar10(const std::filesystem::path& dir, split which) {
    std::vector<std::string> names;
    if (which == split::train)
        for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    else
        names.emplace_back("test_batch.bin");
    std::error_code ec;
    auto base = dir;
    if (!std::filesystem::is_regular_file(base / names[0], ec) &&
        std::filesystem::is_regular_file(dir / "cifar-10-batches-bin" / names[0], ec))
        base = dir / "cifar-10-batches-bin";

    std::vector<std::vector<std::byte>> files;
    std::vector<std::size_t> counts;
    std::size_t total = 0;
    for (const auto& n : names) {
        const auto path = base / n;
        files.push_back(io::detail::read_file(path));
        counts.push_back(io::detail::check_cifar10(files.back(), path.string()));
        total += counts.back();
    }
    auto images = tensor<std::uint8_t>::uninitialized({total, 3, 32, 32});
    auto labels = tensor<std::int64_t>::uninitialized({total});
    std::size_t at = 0;
    for (std::size_t f = 0; f < files.size(); ++f) {
        io::detail::decode_cifar10(files[f], counts[f], images.data() + at * io::cifar10_pixels, labels.data() + at);
        at += counts[f];
    }
    return {images, labels};
}
XGRAD_INSTANCE(tensor_dataset<std::uint8_t> cifar10(const std::filesystem::path& dir, split which))

/// A CSV table as a dataset of float feature vectors {F} with integer labels.
XGRAD_OUTLINE tensor_dataset<float> csv_dataset(const std::filesystem::path& file, const io::csv_options& opt = {}) {
    auto t = io::read_csv(file, opt);
    return {t.features, t.labels};
}
XGRAD_INSTANCE(tensor_dataset<float> csv_dataset(const std::filesystem::path& file, const io::csv_options& opt))

}  // namespace xgrad::data
