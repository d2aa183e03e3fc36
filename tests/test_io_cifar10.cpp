#define BOOST_TEST_MODULE io_cifar10
#include <boost/test/unit_test.hpp>

#include <xgrad/data/datasets.hpp>
#include <xgrad/io/cifar10.hpp>

#include <string>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;
namespace data = xgrad::data;

namespace {

/// Pixel value a test record holds at (channel, y, x): distinct per record and position.
std::uint8_t pixel(int record, int c, int y, int x) { return static_cast<std::uint8_t>(record * 31 + c * 7 + y * 3 + x); }

/// `n` records with labels first_label, first_label + 1, ... (mod 10), in CIFAR-10 layout.
bytes records(int n, int first_record = 0, int first_label = 0) {
    bytes b;
    for (int r = first_record; r < first_record + n; ++r) {
        b.push_back(static_cast<std::byte>((first_label + r - first_record) % 10));
        for (int c = 0; c < 3; ++c)
            for (int y = 0; y < 32; ++y)
                for (int x = 0; x < 32; ++x) b.push_back(static_cast<std::byte>(pixel(r, c, y, x)));
    }
    return b;
}

}  // namespace

BOOST_AUTO_TEST_CASE(decodes_records_channel_major) {
    const auto b = io::parse_cifar10(records(3, 0, 7), "batch");
    BOOST_TEST(b.images.shape() == (xgrad::shape_t{3, 3, 32, 32}));
    BOOST_TEST(b.labels.shape() == (xgrad::shape_t{3}));
    BOOST_TEST(b.labels(0) == 7);
    BOOST_TEST(b.labels(1) == 8);
    BOOST_TEST(b.labels(2) == 9);
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c)
            for (int y : {0, 5, 31})
                for (int x : {0, 17, 31}) BOOST_TEST(b.images(r, c, y, x) == pixel(r, c, y, x));
}

BOOST_AUTO_TEST_CASE(bad_content) {
    auto b = records(2);
    b.resize(b.size() - 100);
    auto msg = error_of([&] { io::parse_cifar10(b, "cut.bin"); });
    BOOST_TEST(contains(msg, "cut.bin: byte 3073: truncated record: 2973 of 3073 bytes"));

    b = records(3);
    b[2 * io::cifar10_record] = std::byte{10};
    msg = error_of([&] { io::parse_cifar10(b, "label.bin"); });
    BOOST_TEST(contains(msg, "label.bin: byte 6146: label 10 of record 2"));

    msg = error_of([&] { io::parse_cifar10(bytes{}, "empty.bin"); });
    BOOST_TEST(contains(msg, "empty.bin: byte 0: empty file"));
}

BOOST_AUTO_TEST_CASE(dataset_from_batch_files) {
    temp_dir dir;
    // train: five files of 2, 1, 3, 1, 2 records; test: one of 4
    const int sizes[] = {2, 1, 3, 1, 2};
    int at = 0;
    for (int f = 0; f < 5; ++f) {
        write_file(dir / ("data_batch_" + std::to_string(f + 1) + ".bin"), records(sizes[f], at, at));
        at += sizes[f];
    }
    write_file(dir / "test_batch.bin", records(4, 100, 3));

    const auto train = data::cifar10(dir.path(), data::split::train);
    BOOST_TEST(train.size() == 9u);
    for (std::size_t i = 0; i < 9; ++i) {
        const auto s = train.get(i);
        BOOST_TEST(s.label == static_cast<std::int64_t>(i % 10));
        BOOST_TEST(s.input.shape() == (xgrad::shape_t{3, 32, 32}));
        BOOST_TEST(s.input(2, 31, 30) == pixel(static_cast<int>(i), 2, 31, 30));
    }
    const auto test = data::cifar10(dir.path(), data::split::test);
    BOOST_TEST(test.size() == 4u);
    BOOST_TEST(test.get(3).label == 6);
    BOOST_TEST(test.get(3).input(1, 2, 3) == pixel(103, 1, 2, 3));
}

BOOST_AUTO_TEST_CASE(dataset_in_tarball_folder) {
    temp_dir dir;
    std::filesystem::create_directories(dir / "cifar-10-batches-bin");
    write_file(dir / "cifar-10-batches-bin" / "test_batch.bin", records(2, 0, 4));
    const auto test = data::cifar10(dir.path(), data::split::test);
    BOOST_TEST(test.size() == 2u);
    BOOST_TEST(test.get(1).label == 5);
}

BOOST_AUTO_TEST_CASE(dataset_errors) {
    temp_dir dir;
    write_file(dir / "data_batch_1.bin", records(1));
    auto msg = error_of<xgrad::io_error>([&] { data::cifar10(dir.path(), data::split::train); });
    BOOST_TEST(contains(msg, "data_batch_2.bin"));

    auto bad = records(2);
    bad[io::cifar10_record] = std::byte{200};
    write_file(dir / "test_batch.bin", bad);
    msg = error_of([&] { data::cifar10(dir.path(), data::split::test); });
    BOOST_TEST(contains(msg, "test_batch.bin: byte 3073: label 200"));
}
