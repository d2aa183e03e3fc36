#define BOOST_TEST_MODULE data_datasets
#include <boost/test/unit_test.hpp>

#include <xgrad/data.hpp>

#include <array>
#include <cstdlib>
#include <string>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace data = xgrad::data;
using xgrad::shape_t;

namespace {

/// Writes a 3-image 2x2 IDX pair with the given labels under `stem` ("train" or "t10k").
void write_pair(const std::filesystem::path& dir, const std::string& stem, std::initializer_list<int> labels,
                bool gz) {
    bytes px;
    for (int i = 0; i < 12; ++i) px.push_back(static_cast<std::byte>(i + 1));
    bytes lb;
    for (int v : labels) lb.push_back(static_cast<std::byte>(v));
    const auto images = make_idx(0x08, {3, 2, 2}, px);
    const auto lab = make_idx(0x08, {static_cast<std::uint32_t>(labels.size())}, lb);
    const std::string ext = gz ? ".gz" : "";
    write_file(dir / (stem + "-images-idx3-ubyte" + ext), gz ? gzip(images) : images);
    write_file(dir / (stem + "-labels-idx1-ubyte" + ext), gz ? gzip(lab) : lab);
}

}  // namespace

BOOST_AUTO_TEST_CASE(fashion_mnist_from_debian_package) {
    ::unsetenv("XGRAD_DATA_DIR");
    const auto train = data::fashion_mnist(data::split::train);
    const auto test = data::fashion_mnist(data::split::test);
    BOOST_TEST(train.size() == 60000u);
    BOOST_TEST(test.size() == 10000u);
    BOOST_TEST(train.inputs().shape() == (shape_t{60000, 1, 28, 28}));
    BOOST_TEST(train.get(0).label == 9);
    BOOST_TEST(test.get(0).label == 9);
    BOOST_TEST(test.get(1).label == 2);
    std::array<int, 10> counts{};
    for (std::size_t i = 0; i < test.size(); ++i) ++counts.at(static_cast<std::size_t>(test.labels()(i)));
    for (int c : counts) BOOST_TEST(c == 1000);
}

BOOST_AUTO_TEST_CASE(issue_example_pipeline) {
    auto train = data::fashion_mnist(data::split::train) | data::to_float() | data::normalize({0.2860f}, {0.3530f});
    auto loader = data::loader(train, {.batch_size = 64, .shuffle = true, .drop_last = false, .workers = 2,
                                       .prefetch = 4, .seed = 1});
    std::size_t batches = 0, samples = 0;
    std::array<int, 10> counts{};
    float lo = 1e9f, hi = -1e9f;
    for (auto& [images, labels] : loader) {
        static_assert(std::is_same_v<std::remove_cvref_t<decltype(images)>, xgrad::tensor<float>>);
        static_assert(std::is_same_v<std::remove_cvref_t<decltype(labels)>, xgrad::tensor<std::int64_t>>);
        if (batches == 0) {
            BOOST_TEST(images.shape() == (shape_t{64, 1, 28, 28}));
            BOOST_TEST(labels.shape() == (shape_t{64}));
        }
        for (std::size_t i = 0; i < labels.size(); ++i) ++counts.at(static_cast<std::size_t>(labels(i)));
        const float* p = images.data();
        for (std::size_t i = 0; i < images.size(); ++i) lo = std::min(lo, p[i]), hi = std::max(hi, p[i]);
        ++batches;
        samples += labels.size();
    }
    BOOST_TEST(batches == 938u);
    BOOST_TEST(samples == 60000u);
    for (int c : counts) BOOST_TEST(c == 6000);
    BOOST_TEST(std::abs(lo - (0 - 0.2860f) / 0.3530f) < 1e-5f);
    BOOST_TEST(std::abs(hi - (1 - 0.2860f) / 0.3530f) < 1e-5f);
}

BOOST_AUTO_TEST_CASE(search_order) {
    temp_dir arg, env;
    write_pair(arg.path(), "train", {1, 2, 3}, false);
    write_pair(env.path(), "train", {4, 5, 6}, true);
    write_pair(env.path(), "t10k", {7, 8, 9}, true);
    ::setenv("XGRAD_DATA_DIR", env.path().c_str(), 1);
    // the argument wins over the environment, which wins over the Debian directory
    BOOST_TEST(data::fashion_mnist(data::split::train, arg.path()).get(0).label == 1);
    BOOST_TEST(data::fashion_mnist(data::split::train).get(2).label == 6);
    BOOST_TEST(data::fashion_mnist(data::split::test, arg.path()).get(1).label == 8);
    const auto s = data::fashion_mnist(data::split::train).get(1);
    BOOST_TEST(s.input.shape() == (shape_t{1, 2, 2}));
    BOOST_TEST(s.input.to_vector() == (std::vector<std::uint8_t>{5, 6, 7, 8}));
    ::unsetenv("XGRAD_DATA_DIR");
    BOOST_TEST(data::fashion_mnist(data::split::test, arg.path()).size() == 10000u);  // falls through to Debian's
}

BOOST_AUTO_TEST_CASE(idx_pair_errors) {
    temp_dir dir;
    write_pair(dir.path(), "train", {1, 2, 10}, false);
    auto msg = error_of([&] {
        data::idx_dataset(dir / "train-images-idx3-ubyte", dir / "train-labels-idx1-ubyte");
    });
    BOOST_TEST(contains(msg, "train-labels-idx1-ubyte: byte 10: label 10 is outside 0..9"));
    write_pair(dir.path(), "t10k", {1, 2}, false);
    msg = error_of([&] { data::idx_dataset(dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte"); });
    BOOST_TEST(contains(msg, "t10k-labels-idx1-ubyte: byte 4: 2 labels for 3 images"));
    msg = error_of([&] { data::idx_dataset(dir / "t10k-labels-idx1-ubyte", dir / "t10k-labels-idx1-ubyte"); });
    BOOST_TEST(contains(msg, "images of rank 1"));

    // nowhere to be found (the Debian directory left out of the search)
    temp_dir other;
    msg = error_of<xgrad::io_error>([&] { data::detail::fashion_mnist_in({other / "missing", other.path()}, data::split::test); });
    BOOST_TEST(contains(msg, "fashion_mnist: no t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] in"));
    BOOST_TEST(contains(msg, (other / "missing").string() + ", " + other.path().string()));
    // only one file of the pair
    write_file(other / "t10k-labels-idx1-ubyte", bytes{});
    msg = error_of<xgrad::io_error>([&] { data::detail::fashion_mnist_in({other.path()}, data::split::test); });
    BOOST_TEST(contains(msg, "no t10k-images"));
}
