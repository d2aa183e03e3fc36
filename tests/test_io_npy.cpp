#define BOOST_TEST_MODULE io_npy
#include <boost/test/unit_test.hpp>

#include <xgrad/io/npy.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;

namespace {

/// A version-1 .npy file with the given header dict (padded as numpy pads it) and data.
bytes npy_file(std::string dict, std::span<const std::byte> data, int major = 1) {
    const std::size_t prefix = major == 1 ? 10 : 12;
    dict.append(64 - (prefix + dict.size() + 1) % 64, ' ');
    dict.push_back('\n');
    bytes b = make_bytes({0x93, 'N', 'U', 'M', 'P', 'Y', major, 0});
    for (std::size_t i = 0; i < prefix - 8; ++i) b.push_back(static_cast<std::byte>((dict.size() >> (8 * i)) & 0xff));
    append(b, std::as_bytes(std::span(dict.data(), dict.size())));
    append(b, data);
    return b;
}

template <class T>
std::span<const std::byte> raw(const std::vector<T>& v) {
    return std::as_bytes(std::span(v));
}

}  // namespace

BOOST_AUTO_TEST_CASE(reads_numpy_layout) {
    const std::vector<std::int64_t> v{0, 1, 2, -3, 4, 5};
    const auto b = npy_file("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", raw(v));
    BOOST_TEST(b.size() == 128u + 48u);
    const auto t = std::get<xgrad::tensor<std::int64_t>>(io::parse_npy(b, "a.npy"));
    BOOST_TEST(t.shape() == (xgrad::shape_t{2, 3}));
    BOOST_TEST(t(1, 0) == -3);
    BOOST_TEST(t(1, 2) == 5);
}

BOOST_AUTO_TEST_CASE(header_variants) {
    const std::vector<double> v{1.25, -2.5, 3.0};
    // keys in another order, double quotes, no trailing comma, version 2
    const auto b = npy_file("{\"shape\": (3,), \"descr\": \"<f8\", \"fortran_order\": False}", raw(v), 2);
    const auto t = std::get<xgrad::tensor<double>>(io::parse_npy(b, "b.npy"));
    BOOST_TEST(t.to_vector() == v);
    // 0-d array
    const std::vector<float> one{7.5f};
    const auto s = std::get<xgrad::tensor<float>>(io::parse_npy(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", raw(one)), "s.npy"));
    BOOST_TEST(s.dim() == 0u);
    BOOST_TEST(s.item() == 7.5f);
    // uint8 with an empty first dimension
    const auto e = std::get<xgrad::tensor<std::uint8_t>>(
        io::parse_npy(npy_file("{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4), }", {}), "e.npy"));
    BOOST_TEST(e.shape() == (xgrad::shape_t{0, 4}));
}

template <class T>
void round_trip(const std::vector<T>& values, xgrad::shape_t shape) {
    temp_dir dir;
    const auto t = xgrad::from_vector(values, shape);
    io::write_npy(dir / "x.npy", t);
    const auto back = std::get<xgrad::tensor<T>>(io::read_npy(dir / "x.npy"));
    BOOST_TEST(back.shape() == shape);
    BOOST_TEST(back.to_vector() == values);
}

BOOST_AUTO_TEST_CASE(write_read_round_trip) {
    round_trip<float>({1.5f, -2, 3.25f, 4, 5, 6}, {2, 1, 3});
    round_trip<double>({0.1, 0.2, 0.3}, {3});
    round_trip<std::int64_t>({-9000000000LL, 7}, {2, 1});
    round_trip<std::uint8_t>({0, 255, 128, 1}, {2, 2});
    round_trip<float>({42.0f}, {});
}

BOOST_AUTO_TEST_CASE(writer_matches_numpy_header) {
    const auto b = io::to_npy(xgrad::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}));
    BOOST_TEST(b.size() == 128u + 24u);
    const std::string head(reinterpret_cast<const char*>(b.data()), 128);
    BOOST_TEST(head.substr(1, 5) == "NUMPY");
    BOOST_TEST(static_cast<int>(b[6]) == 1);
    BOOST_TEST(static_cast<int>(b[8]) == 118);
    BOOST_TEST(head.substr(10, 59) == "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    BOOST_TEST(head.back() == '\n');
    const auto one_d = io::to_npy(xgrad::from_vector<std::uint8_t>({1, 2}, {2}));
    const std::string h1(reinterpret_cast<const char*>(one_d.data()) + 10, 57);
    BOOST_TEST(h1 == "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }");
    // a strided view is written in C order
    const auto t = xgrad::from_vector<std::int64_t>({1, 2, 3, 4, 5, 6}, {2, 3}).t();
    const auto back = std::get<xgrad::tensor<std::int64_t>>(io::parse_npy(io::to_npy(t), "t"));
    BOOST_TEST(back.to_vector() == (std::vector<std::int64_t>{1, 4, 2, 5, 3, 6}));
}

BOOST_AUTO_TEST_CASE(read_as_converts) {
    temp_dir dir;
    io::write_npy(dir / "u.npy", xgrad::from_vector<std::uint8_t>({3, 250}, {2}));
    const auto f = io::read_npy_as<float>(dir / "u.npy");
    BOOST_TEST(f.to_vector() == (std::vector<float>{3, 250}));
}

BOOST_AUTO_TEST_CASE(rejects_other_dtypes_and_layouts) {
    const std::vector<float> v{1, 2};
    auto msg = error_of([&] { io::parse_npy(npy_file("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", raw(v)), "be.npy"); });
    BOOST_TEST(contains(msg, "be.npy: byte 10: unsupported dtype '>f4'"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", raw(v)), "i4.npy"); });
    BOOST_TEST(contains(msg, "unsupported dtype '<i4'"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", raw(v)), "f.npy"); });
    BOOST_TEST(contains(msg, "Fortran-order"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", raw(v)), "s.npy"); });
    BOOST_TEST(contains(msg, "s.npy: byte 20: expected a quoted string"));
}

BOOST_AUTO_TEST_CASE(rejects_bad_files) {
    const std::vector<float> v{1, 2, 3};
    const auto good = npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", raw(v));
    auto b = good;
    b[1] = std::byte{'X'};
    auto msg = error_of([&] { io::parse_npy(b, "m.npy"); });
    BOOST_TEST(contains(msg, "m.npy: byte 1: wrong magic"));
    b = good;
    b[6] = std::byte{4};
    msg = error_of([&] { io::parse_npy(b, "v.npy"); });
    BOOST_TEST(contains(msg, "v.npy: byte 6: unsupported .npy version 4"));
    b = good;
    b.pop_back();
    msg = error_of([&] { io::parse_npy(b, "t.npy"); });
    BOOST_TEST(contains(msg, "t.npy: byte 128: truncated: shape {3} needs 12 bytes of data, the file has 11"));
    b = good;
    b.push_back(std::byte{0});
    msg = error_of([&] { io::parse_npy(b, "l.npy"); });
    BOOST_TEST(contains(msg, "trailing bytes"));
    b = good;
    b.resize(40);
    msg = error_of([&] { io::parse_npy(b, "h.npy"); });
    BOOST_TEST(contains(msg, "h.npy: byte 10: truncated: the header needs 118 bytes, 30 left"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", raw(v)), "k.npy"); });
    BOOST_TEST(contains(msg, "unexpected or repeated key 'x'"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f4', 'shape': (3,)}", raw(v)), "k.npy"); });
    BOOST_TEST(contains(msg, "lacks"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1), }", raw(v)), "d.npy"); });
    BOOST_TEST(contains(msg, "expected a dimension"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", raw(v)), "big.npy"); });
    BOOST_TEST(contains(msg, "describes more than"));
    msg = error_of([&] { io::parse_npy(npy_file("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4294967296, 4294967296), }", {}), "zero.npy"); });
    BOOST_TEST(contains(msg, "describes more than"));
    msg = error_of<xgrad::io_error>([&] { io::read_npy("/nonexistent/dir/x.npy"); });
    BOOST_TEST(contains(msg, "/nonexistent/dir/x.npy"));
}
