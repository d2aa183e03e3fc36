#define BOOST_TEST_MODULE io_idx
#include <boost/test/unit_test.hpp>

#include <xgrad/io/idx.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;

namespace {

/// A {2, 2, 3} uint8 image stack holding 0, 10, 20, ... 110.
bytes small_u8() {
    bytes payload;
    for (int i = 0; i < 12; ++i) payload.push_back(static_cast<std::byte>(i * 10));
    return make_idx(0x08, {2, 2, 3}, payload);
}

}  // namespace

BOOST_AUTO_TEST_CASE(plain_uint8) {
    const auto a = io::parse_idx(small_u8(), "mem");
    const auto& t = std::get<xgrad::tensor<std::uint8_t>>(a);
    BOOST_TEST(t.shape() == (xgrad::shape_t{2, 2, 3}));
    BOOST_TEST(t(0, 0, 0) == 0);
    BOOST_TEST(t(0, 1, 2) == 50);
    BOOST_TEST(t(1, 0, 1) == 70);
    BOOST_TEST(t(1, 1, 2) == 110);
}

BOOST_AUTO_TEST_CASE(big_endian_element_types) {
    // int32 {2}: 0x01020304 and -2
    auto i32 = io::parse_idx(make_idx(0x0C, {2}, make_bytes({1, 2, 3, 4, 0xff, 0xff, 0xff, 0xfe})), "i32");
    auto t = std::get<xgrad::tensor<std::int32_t>>(i32);
    BOOST_TEST(t(0) == 0x01020304);
    BOOST_TEST(t(1) == -2);
    // int16 {1}: -3
    auto i16 = std::get<xgrad::tensor<std::int16_t>>(io::parse_idx(make_idx(0x0B, {1}, make_bytes({0xff, 0xfd})), "i16"));
    BOOST_TEST(i16(0) == -3);
    // float32 {1}: 1.5 = 0x3fc00000
    auto f32 = std::get<xgrad::tensor<float>>(io::parse_idx(make_idx(0x0D, {1}, make_bytes({0x3f, 0xc0, 0, 0})), "f32"));
    BOOST_TEST(f32(0) == 1.5f);
    // float64 {1}: -2.0 = 0xc000000000000000
    auto f64 = std::get<xgrad::tensor<double>>(
        io::parse_idx(make_idx(0x0E, {1}, make_bytes({0xc0, 0, 0, 0, 0, 0, 0, 0})), "f64"));
    BOOST_TEST(f64(0) == -2.0);
    // int8 {2}: -1, 5
    auto i8 = std::get<xgrad::tensor<std::int8_t>>(io::parse_idx(make_idx(0x09, {2}, make_bytes({0xff, 5})), "i8"));
    BOOST_TEST(i8(0) == -1);
    BOOST_TEST(i8(1) == 5);
}

BOOST_AUTO_TEST_CASE(gzip_matches_plain) {
    const auto plain = small_u8();
    const auto a = std::get<xgrad::tensor<std::uint8_t>>(io::parse_idx(gzip(plain), "mem.gz"));
    const auto b = std::get<xgrad::tensor<std::uint8_t>>(io::parse_idx(plain, "mem"));
    BOOST_TEST(a.shape() == b.shape());
    BOOST_TEST(a.to_vector() == b.to_vector());
}

BOOST_AUTO_TEST_CASE(gzip_concatenated_members) {
    const auto plain = small_u8();
    const std::span<const std::byte> all(plain);
    auto gz = gzip(all.first(10));
    append(gz, gzip(all.subspan(10)));
    const auto t = std::get<xgrad::tensor<std::uint8_t>>(io::parse_idx(gz, "two-members.gz"));
    BOOST_TEST(t(1, 1, 2) == 110);
}

BOOST_AUTO_TEST_CASE(files_plain_and_gz) {
    temp_dir dir;
    write_file(dir / "a-idx3-ubyte", small_u8());
    write_file(dir / "a-idx3-ubyte.gz", gzip(small_u8()));
    for (const char* name : {"a-idx3-ubyte", "a-idx3-ubyte.gz"}) {
        const auto t = io::idx_get<std::uint8_t>(io::read_idx(dir / name), name);
        BOOST_TEST(t.size() == 12u);
        BOOST_TEST(t(1, 0, 0) == 60);
    }
}

BOOST_AUTO_TEST_CASE(missing_file_is_io_error) {
    temp_dir dir;
    const auto msg = error_of<xgrad::io_error>([&] { io::read_idx(dir / "nope"); });
    BOOST_TEST(contains(msg, "nope"));
}

BOOST_AUTO_TEST_CASE(wrong_type_requested) {
    const auto msg = error_of([&] { io::idx_get<float>(io::parse_idx(small_u8(), "imgs"), "imgs"); });
    BOOST_TEST(contains(msg, "imgs: byte 2"));
    BOOST_TEST(contains(msg, "uint8"));
}

BOOST_AUTO_TEST_CASE(bad_headers) {
    auto b = small_u8();
    b[1] = std::byte{1};
    auto msg = error_of([&] { io::parse_idx(b, "f"); });
    BOOST_TEST(contains(msg, "f: byte 0: wrong magic"));

    b = small_u8();
    b[2] = std::byte{0x07};
    msg = error_of([&] { io::parse_idx(b, "f"); });
    BOOST_TEST(contains(msg, "f: byte 2: unknown IDX element type code 7"));

    b = small_u8();
    b[3] = std::byte{0};
    msg = error_of([&] { io::parse_idx(b, "f"); });
    BOOST_TEST(contains(msg, "f: byte 3: rank 0"));

    // header cut inside the second dimension
    b = small_u8();
    b.resize(10);
    msg = error_of([&] { io::parse_idx(b, "f"); });
    BOOST_TEST(contains(msg, "f: byte 8: truncated"));

    msg = error_of([&] { io::parse_idx(bytes{}, "empty"); });
    BOOST_TEST(contains(msg, "empty: byte 0: truncated"));
}

BOOST_AUTO_TEST_CASE(dimensions_disagree_with_size) {
    auto b = small_u8();
    b.pop_back();  // one data byte short
    auto msg = error_of([&] { io::parse_idx(b, "short"); });
    BOOST_TEST(contains(msg, "short: byte 27: truncated"));
    BOOST_TEST(contains(msg, "need 12 bytes"));

    b = small_u8();
    b.push_back(std::byte{0});
    msg = error_of([&] { io::parse_idx(b, "long"); });
    BOOST_TEST(contains(msg, "long: byte 28: 1 bytes beyond"));

    // dimensions whose product exceeds the 4 GiB cap, with almost no data
    const auto huge = make_idx(0x0E, {65536, 65536, 2}, make_bytes({1, 2, 3}));
    msg = error_of([&] { io::parse_idx(huge, "huge"); });
    BOOST_TEST(contains(msg, "huge: byte"));
    BOOST_TEST(contains(msg, "more than"));

    // an empty array whose other extents are absurd (found by fuzzing): still rejected
    const auto empty_huge = make_idx(0x08, {0, 0x810140ffu, 0xfff61008u}, {});
    msg = error_of([&] { io::parse_idx(empty_huge, "zero"); });
    BOOST_TEST(contains(msg, "zero: byte 12: dimensions describe more than"));
    // a plain empty array is fine
    const auto e = io::parse_idx(make_idx(0x08, {0, 28, 28}, {}), "empty");
    BOOST_TEST(std::get<xgrad::tensor<std::uint8_t>>(e).shape() == (xgrad::shape_t{0, 28, 28}));
}

BOOST_AUTO_TEST_CASE(gzip_errors) {
    const auto gz = gzip(small_u8());
    // truncated compressed stream
    bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() - 6));
    auto msg = error_of([&] { io::parse_idx(cut, "cut.gz"); });
    BOOST_TEST(contains(msg, "cut.gz"));

    // corrupt the CRC-32 in the trailer
    bytes bad = gz;
    bad[bad.size() - 6] ^= std::byte{0xff};
    msg = error_of([&] { io::parse_idx(bad, "crc.gz"); });
    BOOST_TEST(contains(msg, "crc.gz: byte"));
    BOOST_TEST(contains(msg, "corrupt gzip"));

    // trailing garbage after the member
    bad = gz;
    append(bad, make_bytes({1, 2, 3, 4}));
    msg = error_of([&] { io::parse_idx(bad, "tail.gz"); });
    BOOST_TEST(contains(msg, "tail.gz: byte"));

    // more data than the dimensions describe
    auto longer = small_u8();
    longer.push_back(std::byte{7});
    msg = error_of([&] { io::parse_idx(gzip(longer), "long.gz"); });
    BOOST_TEST(contains(msg, "exceeds the limit of 28 bytes"));

    // fewer
    auto shorter = small_u8();
    shorter.pop_back();
    msg = error_of([&] { io::parse_idx(gzip(shorter), "short.gz"); });
    BOOST_TEST(contains(msg, "short.gz (decompressed): byte 27: truncated"));
}

BOOST_AUTO_TEST_CASE(gzip_bomb_is_bounded) {
    // 1 MiB of zeros after a header that claims 2^31 bytes: rejected from the header
    // alone (deflate cannot expand this little input that far), nothing allocated.
    bytes b = make_idx(0x08, {32768, 65536}, {});
    b.resize(b.size() + (1u << 20));
    const auto gz = gzip(b);
    BOOST_TEST(gz.size() < 4096u);
    const auto msg = error_of([&] { io::parse_idx(gz, "bomb.gz"); });
    BOOST_TEST(contains(msg, "compressed bytes can hold"));
}

BOOST_AUTO_TEST_CASE(fashion_mnist_files) {
    const std::string dir = "/usr/share/datasets/fashion-mnist/";
    const auto train = io::idx_get<std::uint8_t>(io::read_idx(dir + "train-images-idx3-ubyte.gz"), "train");
    BOOST_TEST(train.shape() == (xgrad::shape_t{60000, 28, 28}));
    const auto test = io::idx_get<std::uint8_t>(io::read_idx(dir + "t10k-images-idx3-ubyte.gz"), "test");
    BOOST_TEST(test.shape() == (xgrad::shape_t{10000, 28, 28}));
    // the first training image (an ankle boot)
    unsigned sum = 0;
    for (std::size_t i = 0; i < 784; ++i) sum += train.data()[i];
    BOOST_TEST(sum == 76247u);
    BOOST_TEST(train(0, 14, 12) == 0xed);

    const auto labels = io::idx_get<std::uint8_t>(io::read_idx(dir + "train-labels-idx1-ubyte.gz"), "labels");
    BOOST_TEST(labels.shape() == (xgrad::shape_t{60000}));
    const std::array<int, 12> first{9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    for (std::size_t i = 0; i < first.size(); ++i) BOOST_TEST(labels(i) == first[i]);
    std::array<int, 10> counts{};
    for (std::size_t i = 0; i < labels.size(); ++i) {
        BOOST_REQUIRE(labels(i) < 10);
        ++counts[labels(i)];
    }
    for (int c : counts) BOOST_TEST(c == 6000);
}

BOOST_AUTO_TEST_CASE(gunzip_modes) {
    bytes text;
    for (int i = 0; i < 10000; ++i) text.push_back(static_cast<std::byte>(i % 251));
    const auto gz = gzip(text);
    BOOST_TEST(io::is_gzip(gz));
    BOOST_TEST(!io::is_gzip(text));
    BOOST_TEST((io::gunzip(gz, "g", 10000) == text));
    BOOST_TEST((io::gunzip(gz, "g", 1u << 20) == text));
    BOOST_TEST((io::gunzip(gz, "g", 10000, io::gunzip_mode::exact) == text));
    const auto head = io::gunzip(gz, "g", 300, io::gunzip_mode::prefix);
    BOOST_TEST((head == bytes(text.begin(), text.begin() + 300)));
    const auto msg = error_of([&] { io::gunzip(gz, "g", 9999); });
    BOOST_TEST(contains(msg, "g: byte"));
    BOOST_TEST(contains(msg, "exceeds the limit of 9999 bytes"));
}
