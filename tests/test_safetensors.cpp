#define BOOST_TEST_MODULE safetensors
#include <boost/test/unit_test.hpp>

#include <xgrad/io/safetensors.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;
using xgrad::tensor;

namespace {

/// A file made of an explicit JSON header (no padding added) and raw data bytes.
bytes st_file(const std::string& json, const bytes& data = {}) {
    bytes b;
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::byte>((json.size() >> (8 * i)) & 0xff));
    append(b, std::as_bytes(std::span(json.data(), json.size())));
    append(b, data);
    return b;
}

bytes zeros(std::size_t n) { return bytes(n, std::byte{0}); }

std::string text_of(const bytes& b, std::size_t from, std::size_t n) {
    return std::string(reinterpret_cast<const char*>(b.data()) + from, n);
}

/// The reason a buffer is rejected.
std::string reject(const bytes& b) {
    return error_of([&] { io::parse_safetensors(b, "bad.safetensors"); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(writes_the_reference_layout) {
    // what safetensors.torch.save_file writes for {"a": tensor([1., 2.])}
    const auto b = io::to_safetensors({{"a", xgrad::from_vector<float>({1.f, 2.f}, {2}), ""}});
    const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    BOOST_TEST(json.size() == 54u);
    BOOST_TEST(b.size() == 8u + 56u + 8u);
    BOOST_TEST(static_cast<int>(b[0]) == 56);
    for (int i = 1; i < 8; ++i) BOOST_TEST(static_cast<int>(b[i]) == 0);
    BOOST_TEST(text_of(b, 8, 56) == json + "  ");  // padded with spaces to a multiple of 8
    float v[2];
    std::memcpy(v, b.data() + 64, 8);
    BOOST_TEST(v[0] == 1.f);
    BOOST_TEST(v[1] == 2.f);
}

BOOST_AUTO_TEST_CASE(metadata_comes_first_and_larger_elements_first) {
    const auto b = io::to_safetensors({{"u", xgrad::from_vector<std::uint8_t>({7}, {1}), ""},
                                       {"d", xgrad::from_vector<double>({0.5}, {1}), ""},
                                       {"i", xgrad::from_vector<std::int32_t>({-3}, {1}), ""}},
                                      {{"format", "pt"}});
    const std::size_t n = static_cast<std::size_t>(b[0]);
    BOOST_TEST(n % 8 == 0u);
    const std::string h = text_of(b, 8, n);
    BOOST_TEST(h.rfind(R"({"__metadata__":{"format":"pt"},"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},)"
                       R"("i":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},)"
                       R"("u":{"dtype":"U8","shape":[1],"data_offsets":[12,13]}})",
                       0) == 0u);
    BOOST_TEST(b.size() == 8 + n + 13);
}

BOOST_AUTO_TEST_CASE(round_trip_every_dtype) {
    auto f32 = xgrad::from_vector<float>({1.5f, -2.f, 0.f, 3.25f, 1e-30f, -7.f}, {2, 3});
    auto f64 = xgrad::from_vector<double>({1e300, -0.125}, {2});
    auto i64 = xgrad::from_vector<std::int64_t>({std::numeric_limits<std::int64_t>::min(), 42}, {2, 1});
    auto i32 = xgrad::from_vector<std::int32_t>({-1, 2, 3}, {3});
    auto i16 = xgrad::from_vector<std::int16_t>({-32768, 32767}, {2});
    auto i8 = xgrad::from_vector<std::int8_t>({-128, 5}, {1, 2});
    auto u8 = xgrad::from_vector<std::uint8_t>({0, 255, 9}, {3});
    auto scalar = xgrad::from_vector<float>({9.f}, {});
    auto empty = tensor<float>::uninitialized({0, 4});
    auto transposed = f32.transpose(0, 1);  // not contiguous: written in logical order
    const std::vector<io::named_tensor> in{{"f32", f32, ""},     {"f64", f64, ""}, {"i64", i64, ""},
                                           {"i32", i32, ""},     {"i16", i16, ""}, {"i8", i8, ""},
                                           {"u8", u8, ""},       {"scalar", scalar, ""}, {"empty", empty, ""},
                                           {"layer.0.weight_T", transposed, ""}};
    const auto f = io::parse_safetensors(io::to_safetensors(in, {{"k", "v"}, {"epoch", "3"}}), "mem");
    BOOST_TEST(f.tensors.size() == in.size());
    BOOST_TEST(f.metadata.size() == 2u);
    BOOST_TEST(f.metadata.at("epoch") == "3");
    BOOST_TEST(f.find("f32")->dtype == "F32");
    BOOST_TEST(f.find("u8")->dtype == "U8");
    BOOST_TEST(f.get<float>("f32").to_vector() == f32.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<float>("f32").shape() == (xgrad::shape_t{2, 3}));
    BOOST_TEST(f.get<double>("f64").to_vector() == f64.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<std::int64_t>("i64").to_vector() == i64.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<std::int32_t>("i32").to_vector() == i32.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<std::int16_t>("i16").to_vector() == i16.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<std::int8_t>("i8").to_vector() == i8.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<std::uint8_t>("u8").to_vector() == u8.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.get<float>("scalar").dim() == 0u);
    BOOST_TEST(f.get<float>("scalar").item() == 9.f);
    BOOST_TEST(f.get<float>("empty").shape() == (xgrad::shape_t{0, 4}));
    const auto t = f.get<float>("layer.0.weight_T");
    BOOST_TEST(t.shape() == (xgrad::shape_t{3, 2}));
    BOOST_TEST(t(2, 1) == -7.f);
    BOOST_TEST(t(0, 1) == 3.25f);
    BOOST_TEST(t(2, 0) == 0.f);
    // get<T> converts when the stored type differs
    BOOST_TEST(f.get<float>("i32").to_vector() == (std::vector<float>{-1.f, 2.f, 3.f}), boost::test_tools::per_element());
    BOOST_TEST(contains(error_of<xgrad::index_error>([&] { f.get<float>("nope"); }), "mem: no tensor named 'nope'"));
}

BOOST_AUTO_TEST_CASE(names_and_metadata_with_escapes_and_unicode) {
    const std::string name = "blocks.\"quoted\"\\.\t\xc3\xa9\xf0\x9f\x98\x80";
    const auto b = io::to_safetensors({{name, xgrad::from_vector<float>({1.f}, {1}), ""}}, {{"note", "line\nnext"}});
    const auto f = io::parse_safetensors(b, "mem");
    BOOST_TEST(f.tensors.at(0).name == name);
    BOOST_TEST(f.metadata.at("note") == "line\nnext");
    // \u escapes, including a surrogate pair, decode to UTF-8
    const auto g = io::parse_safetensors(
        st_file(R"({"\u00e9\ud83d\ude00\/":{"dtype":"U8","shape":[],"data_offsets":[0,1]}})", {std::byte{3}}), "mem");
    BOOST_TEST(g.tensors.at(0).name == "\xc3\xa9\xf0\x9f\x98\x80/");
}

BOOST_AUTO_TEST_CASE(reads_files_laid_out_differently) {
    // whitespace, metadata last, header order differs from data order
    const std::vector<float> a{1.f, 2.f};
    const std::vector<std::int64_t> c{-5};
    bytes data = zeros(16);
    std::memcpy(data.data(), c.data(), 8);
    std::memcpy(data.data() + 8, a.data(), 8);
    const auto f = io::parse_safetensors(
        st_file("{ \"a\" : {\"shape\": [2], \"dtype\": \"F32\", \"data_offsets\": [8, 16]},\n"
                "  \"c\": {\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},\n"
                "  \"__metadata__\": {\"format\": \"np\"} }\n  ",
                data),
        "mem");
    BOOST_TEST(f.tensors.at(0).name == "a");
    BOOST_TEST(f.tensors.at(1).name == "c");
    BOOST_TEST(f.get<float>("a").to_vector() == a, boost::test_tools::per_element());
    BOOST_TEST(f.get<std::int64_t>("c").item() == -5);
    BOOST_TEST(f.metadata.at("format") == "np");
    // empty file: just "{}"
    BOOST_TEST(io::parse_safetensors(st_file("{}"), "mem").tensors.empty());
}

BOOST_AUTO_TEST_CASE(half_precision_conversions) {
    using io::detail::float_to_bf16;
    using io::detail::float_to_half;
    using io::detail::half_to_float;
    BOOST_TEST(float_to_half(1.f) == 0x3C00);
    BOOST_TEST(float_to_half(-2.f) == 0xC000);
    BOOST_TEST(float_to_half(65504.f) == 0x7BFF);             // largest half
    BOOST_TEST(float_to_half(65519.f) == 0x7BFF);             // rounds down
    BOOST_TEST(float_to_half(65520.f) == 0x7C00);             // ties to even: infinity
    BOOST_TEST(float_to_half(0.1f) == 0x2E66);
    BOOST_TEST(float_to_half(std::ldexp(1.f, -24)) == 0x0001);  // smallest subnormal
    BOOST_TEST(float_to_half(std::ldexp(1.f, -25)) == 0x0000);  // tie to even: zero
    BOOST_TEST(float_to_half(std::ldexp(3.f, -26)) == 0x0001);
    BOOST_TEST(float_to_half(std::ldexp(1023.5f, -24)) == 0x0400);  // rounds up into the normals
    BOOST_TEST(float_to_half(1.f + std::ldexp(1.f, -11)) == 0x3C00);  // tie to even
    BOOST_TEST(float_to_half(1.f + std::ldexp(3.f, -11)) == 0x3C02);  // tie to even (up)
    BOOST_TEST(float_to_half(std::numeric_limits<float>::infinity()) == 0x7C00);
    BOOST_TEST((float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7C00) == 0x7C00);
    BOOST_TEST((float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x03FF) != 0);
    BOOST_TEST(half_to_float(0x3C00) == 1.f);
    BOOST_TEST(half_to_float(0x7BFF) == 65504.f);
    BOOST_TEST(half_to_float(0x0001) == std::ldexp(1.f, -24));
    BOOST_TEST(half_to_float(0x8400) == -std::ldexp(1.f, -14));
    BOOST_TEST(std::isinf(half_to_float(0xFC00)));
    BOOST_TEST(std::isnan(half_to_float(0x7E00)));
    // every half, NaN payloads included, survives half -> float -> half
    for (unsigned h = 0; h < 0x10000; ++h)
        BOOST_TEST_REQUIRE(float_to_half(half_to_float(static_cast<std::uint16_t>(h))) == h);
    for (unsigned b = 0; b < 0x10000; ++b)
        BOOST_TEST_REQUIRE(float_to_bf16(io::detail::bf16_to_float(static_cast<std::uint16_t>(b))) == b);
    BOOST_TEST(float_to_half(std::bit_cast<float>(0x7F800001u)) == 0x7E00);  // payload below half's bits
    BOOST_TEST(float_to_bf16(std::bit_cast<float>(0x7F800001u)) == 0x7FC0);
    BOOST_TEST(float_to_bf16(1.f) == 0x3F80);
    BOOST_TEST(float_to_bf16(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie to even: down
    BOOST_TEST(float_to_bf16(std::bit_cast<float>(0x3F818000u)) == 0x3F82);  // tie to even: up
    BOOST_TEST(float_to_bf16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
    BOOST_TEST(io::detail::bf16_to_float(0xC0A0) == -5.f);
}

BOOST_AUTO_TEST_CASE(f16_bf16_and_bool_files) {
    const auto x = xgrad::from_vector<float>({1.f, -0.5f, 0.1f, 70000.f}, {4});
    const auto mask = xgrad::from_vector<std::uint8_t>({1, 0, 1}, {3});
    const auto b = io::to_safetensors({{"h", x, "F16"}, {"b", x, "BF16"}, {"m", mask, "BOOL"}});
    const auto f = io::parse_safetensors(b, "mem");
    BOOST_TEST(f.find("h")->dtype == "F16");
    BOOST_TEST(f.find("b")->dtype == "BF16");
    BOOST_TEST(f.find("m")->dtype == "BOOL");
    const auto h = f.get<float>("h").to_vector();
    BOOST_TEST(h[0] == 1.f);
    BOOST_TEST(h[1] == -0.5f);
    BOOST_TEST(h[2] == io::detail::half_to_float(0x2E66));
    BOOST_TEST(std::isinf(h[3]));
    const auto bf = f.get<float>("b").to_vector();
    BOOST_TEST(bf[2] == std::bit_cast<float>(0x3DCD0000u));  // 0.1f = 0x3DCCCCCD rounds up
    BOOST_TEST(bf[3] == 70144.f);
    BOOST_TEST(f.get<std::uint8_t>("m").to_vector() == (std::vector<std::uint8_t>{1, 0, 1}), boost::test_tools::per_element());
    const std::string header = text_of(b, 8, static_cast<std::size_t>(b[0]));
    BOOST_TEST(contains(header, R"("h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]})"));

    // a BOOL byte other than 0 or 1 is malformed; a uint8 tensor holding 2 cannot be stored as BOOL
    BOOST_TEST(contains(reject(st_file(R"({"m":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
                                       {std::byte{1}, std::byte{2}})),
                        "bad.safetensors: byte 64: tensor 'm': BOOL element holds 2"));
    BOOST_TEST(contains(error_of<xgrad::value_error>([] {
                            io::to_safetensors({{"m", xgrad::from_vector<std::uint8_t>({2}, {1}), "BOOL"}});
                        }),
                        "holds 2"));
}

BOOST_AUTO_TEST_CASE(writer_rejects_bad_requests) {
    const auto x = xgrad::from_vector<float>({1.f}, {1});
    auto msg = [&](std::vector<io::named_tensor> t) { return error_of<xgrad::value_error>([&] { io::to_safetensors(t); }); };
    BOOST_TEST(contains(msg({{"w", x, ""}, {"w", x, ""}}), "'w' appears twice"));
    BOOST_TEST(contains(msg({{"__metadata__", x, ""}}), "reserved"));
    BOOST_TEST(contains(msg({{"bad\xff", x, ""}}), "not valid UTF-8"));
    BOOST_TEST(contains(msg({{"w", x, "I32"}}), "holds F32 and cannot be stored as 'I32'"));
    BOOST_TEST(contains(msg({{"w", xgrad::from_vector<double>({1.0}, {1}), "F16"}}), "holds F64"));
    BOOST_TEST(contains(msg({{"w", x, "Q4"}}), "cannot be stored as 'Q4'"));
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { io::to_safetensors({{"w", x, ""}}, {{"k", "\xc0\x80"}}); }),
                        "metadata entry 'k'"));
}

BOOST_AUTO_TEST_CASE(rejects_bad_prefix_and_header_length) {
    BOOST_TEST(contains(reject(bytes{}), "bad.safetensors: byte 0: truncated"));
    BOOST_TEST(contains(reject(zeros(7)), "truncated"));
    bytes huge = zeros(16);
    huge[3] = std::byte{0x10};  // 0x10000000 > 100 MB
    BOOST_TEST(contains(reject(huge), "exceeds the limit of 100000000 bytes"));
    bytes all_ones(16, std::byte{0xff});  // 2^64 - 1: no overflow in "8 + n"
    BOOST_TEST(contains(reject(all_ones), "exceeds the limit"));
    bytes longer = st_file("{}");
    longer[0] = std::byte{3};
    BOOST_TEST(contains(reject(longer), "truncated: header length 3 but only 2 bytes follow"));
    BOOST_TEST(contains(reject(st_file("")), "too short"));
    BOOST_TEST(contains(reject(st_file(" {}")), "byte 8: the header must start with '{'"));
    BOOST_TEST(contains(reject(st_file("[]")), "must start with '{'"));
}

BOOST_AUTO_TEST_CASE(rejects_malformed_json) {
    const std::string t = R"("dtype":"U8","shape":[1],"data_offsets":[0,1])";
    const bytes one{std::byte{1}};
    auto why = [&](const std::string& json) { return reject(st_file(json, one)); };
    BOOST_TEST(contains(why("{\"a\":{" + t + "},}"), "expected a string key"));       // trailing comma
    BOOST_TEST(contains(why("{\"a\":{" + t + "}"), "expected '}' or ','"));           // unclosed
    BOOST_TEST(contains(why("{\"a\":{" + t + "}} x"), "unexpected text after"));
    BOOST_TEST(contains(why("{\"a:{" + t + "}}"), "expected ':'"));
    BOOST_TEST(contains(why("{\"a"), "unterminated JSON string"));
    BOOST_TEST(contains(why("{\"a\\q\":{" + t + "}}"), "invalid escape"));
    BOOST_TEST(contains(why("{\"a\\ud800\":{" + t + "}}"), "unpaired surrogate"));
    BOOST_TEST(contains(why("{\"a\\udc00\":{" + t + "}}"), "unpaired surrogate"));
    BOOST_TEST(contains(why("{\"a\\u12g4\":{" + t + "}}"), "four hex digits"));
    BOOST_TEST(contains(why("{\"a\x01\":{" + t + "}}"), "control character"));
    BOOST_TEST(contains(why("{\"a\xc3\":{" + t + "}}"), "UTF-8"));
    BOOST_TEST(contains(why("{\"a\xc0\x80\":{" + t + "}}"), "invalid UTF-8"));          // overlong
    BOOST_TEST(contains(why("{\"a\xed\xa0\x80\":{" + t + "}}"), "invalid UTF-8"));      // encoded surrogate
    BOOST_TEST(contains(why("{\"a\xf4\x90\x80\x80\":{" + t + "}}"), "invalid UTF-8"));  // > U+10FFFF
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"x\":tru}}"), "unexpected character"));
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"x\":01}}"), "expected '}' or ','"));  // leading zero
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"x\":1.}}"), "digits must follow '.'"));
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"x\":1e}}"), "digits must follow the exponent"));
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"x\":NaN}}"), "unexpected character"));
    BOOST_TEST(contains(why("{\"a\":{" + t + "},\"a\":{" + t + "}}"), "duplicate key \"a\""));
    BOOST_TEST(contains(why("{\"a\":{" + t + ",\"dtype\":\"U8\"}}"), "duplicate key \"dtype\""));
    // nesting is bounded (this would otherwise recurse once per bracket)
    const std::string deep = "{\"__metadata__\":" + std::string(5000, '[') + std::string(5000, ']') + "}";
    BOOST_TEST(contains(reject(st_file(deep)), "nested deeper than 64"));
}

BOOST_AUTO_TEST_CASE(rejects_schema_violations) {
    const bytes four = zeros(4);
    auto why = [&](const std::string& json, const bytes& d) { return reject(st_file(json, d)); };
    BOOST_TEST(contains(why(R"({"a":[1]})", {}), "tensor 'a' must be an object"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1]}})", four), "lacks one of"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", four),
                        "unknown field \"extra\""));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", four),
                        "unsupported dtype 'F8_E4M3'"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", four), "dtype must be a string"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", four), "shape must be an array"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four), "non-negative integers"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", four), "non-negative integers"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}})", four), "non-negative integers"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}})", four),
                        "non-negative integers"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", four),
                        "more than 2^48 elements"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four), "[begin, end]"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}})", four), "non-negative integers"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four), "begin 4 > end 0"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", four),
                        "end 8 is past the data area (4 bytes)"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", four),
                        "span 4 bytes but F32 shape {2} needs 8"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[0,5],"data_offsets":[0,4]}})", four), "needs 0"));
    BOOST_TEST(contains(why(R"({"__metadata__":{"n":1}})", {}), "__metadata__ value for \"n\" must be a string"));
    BOOST_TEST(contains(why(R"({"__metadata__":"x"})", {}), "__metadata__ must be an object"));
}

BOOST_AUTO_TEST_CASE(rejects_overlaps_gaps_and_stray_bytes) {
    auto why = [&](const std::string& json, std::size_t n) { return reject(st_file(json, zeros(n))); };
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                            6),
                        "tensor 'b' (data_offsets [2, 6]) overlaps"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                            4),
                        "overlaps"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
                        "gap in the data area: no tensor covers bytes [0, 4)"));
    BOOST_TEST(contains(why(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 7),
                        "3 bytes after the last tensor belong to no tensor"));
    BOOST_TEST(contains(why("{}", 1), "1 bytes after the last tensor"));
    // empty tensors may sit anywhere, even between others
    const auto f = io::parse_safetensors(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                                 R"("e":{"dtype":"F64","shape":[0],"data_offsets":[4,4]},)"
                                                 R"("b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}})",
                                                 zeros(5)),
                                         "mem");
    BOOST_TEST(f.tensors.size() == 3u);
}

BOOST_AUTO_TEST_CASE(every_truncation_of_a_valid_file_is_rejected) {
    const auto b = io::to_safetensors({{"w", xgrad::from_vector<float>({1.f, 2.f, 3.f}, {3}), ""},
                                       {"b", xgrad::from_vector<std::int64_t>({4}, {1}), ""}},
                                      {{"format", "pt"}});
    for (std::size_t n = 0; n < b.size(); ++n) {
        const bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
        BOOST_CHECK_THROW(io::parse_safetensors(cut, "cut"), xgrad::format_error);
    }
    // flipping any single header byte either still parses or throws format_error, never crashes
    const std::size_t n = static_cast<std::size_t>(b[0]);
    for (std::size_t i = 0; i < 8 + n; ++i) {
        bytes c = b;
        c[i] ^= std::byte{0x5a};
        try {
            io::parse_safetensors(c, "flip");
        } catch (const xgrad::format_error&) {
        }
    }
}

BOOST_AUTO_TEST_CASE(save_and_load_files) {
    temp_dir dir;
    const auto path = dir / "model.safetensors";
    const auto w = xgrad::from_vector<float>({0.25f, -1.f, 3.f, 4.f}, {2, 2});
    io::save_safetensors(path, {{"0.weight", w, ""}}, {{"format", "pt"}});
    auto f = io::load_safetensors(path);
    BOOST_TEST(f.source == path.string());
    BOOST_TEST(f.get<float>("0.weight").to_vector() == w.to_vector(), boost::test_tools::per_element());
    BOOST_TEST(f.metadata.at("format") == "pt");
    BOOST_TEST(io::inspect_safetensors(path).tensors.at(0).shape == (xgrad::shape_t{2, 2}));
    // overwrite in place; no temporary files are left behind
    io::save_safetensors(path, {{"0.weight", w.transpose(0, 1), ""}, {"0.bias", xgrad::zeros<float>({2}), ""}});
    f = io::load_safetensors(path);
    BOOST_TEST(f.get<float>("0.weight")(0, 1) == 3.f);
    BOOST_TEST(f.metadata.empty());
    std::size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        (void)e;
        ++files;
    }
    BOOST_TEST(files == 1u);
    BOOST_TEST(contains(error_of<xgrad::io_error>([&] { io::load_safetensors(dir / "missing.safetensors"); }),
                        "missing.safetensors: cannot open"));
    BOOST_TEST(contains(error_of<xgrad::io_error>([&] { io::save_safetensors(dir / "no/such/dir/x.safetensors", {}); }),
                        "cannot create a temporary file"));
    // a bad request fails before anything is written
    BOOST_CHECK_THROW(io::save_safetensors(path, {{"a", w, ""}, {"a", w, ""}}), xgrad::value_error);
    BOOST_TEST(io::load_safetensors(path).tensors.size() == 2u);
    // errors while loading name the file
    write_file(dir / "bad.safetensors", st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", zeros(4)));
    BOOST_TEST(contains(error_of([&] { io::load_safetensors(dir / "bad.safetensors"); }),
                        (dir / "bad.safetensors").string() + ": byte "));
    auto cut = io::to_safetensors({{"w", w, ""}});
    cut.resize(cut.size() - 1);
    write_file(dir / "short.safetensors", cut);
    BOOST_TEST(contains(error_of([&] { io::load_safetensors(dir / "short.safetensors"); }), "past the data area"));
}

namespace {
int hook_pipe = -1;
// Runs inside the child: once 2 MiB are on disk, tell the parent and wait to be killed.
void stop_mid_save(std::size_t written) {
    if (written < (std::size_t{2} << 20)) return;
    const char c = 'x';
    if (::write(hook_pipe, &c, 1) != 1) ::_exit(3);
    for (;;) ::pause();
}
}  // namespace

BOOST_AUTO_TEST_CASE(a_process_killed_mid_save_leaves_the_old_checkpoint) {
    temp_dir dir;
    const auto path = dir / "ckpt.safetensors";
    const auto old_w = xgrad::from_vector<float>({1.f, 2.f, 3.f}, {3});
    io::save_safetensors(path, {{"w", old_w, ""}}, {{"step", "1"}});
    const auto before = xgrad::io::detail::read_file(path);

    int fds[2];
    BOOST_TEST_REQUIRE(::pipe(fds) == 0);
    const pid_t child = ::fork();
    BOOST_TEST_REQUIRE(child >= 0);
    if (child == 0) {
        ::close(fds[0]);
        hook_pipe = fds[1];
        io::detail::safetensors_write_hook = stop_mid_save;
        try {
            io::save_safetensors(path, {{"w", xgrad::full<float>({std::size_t{1} << 21}, 7.f), ""}}, {{"step", "2"}});
        } catch (...) {
        }
        ::_exit(2);  // only reached if the hook never fired
    }
    ::close(fds[1]);
    char c = 0;
    const auto got = ::read(fds[0], &c, 1);
    ::close(fds[0]);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    BOOST_TEST_REQUIRE(got == 1);
    BOOST_TEST(WIFSIGNALED(status));
    BOOST_TEST(WTERMSIG(status) == SIGKILL);

    // the checkpoint is byte-for-byte the old one; the partial write sits in a temporary file
    BOOST_TEST((xgrad::io::detail::read_file(path) == before));
    const auto f = io::load_safetensors(path);
    BOOST_TEST(f.metadata.at("step") == "1");
    BOOST_TEST(f.get<float>("w").to_vector() == old_w.to_vector(), boost::test_tools::per_element());
    std::size_t partial = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
        const auto name = e.path().filename().string();
        if (name.rfind(".ckpt.safetensors.tmp-", 0) == 0) {
            ++partial;
            BOOST_TEST(std::filesystem::file_size(e.path()) >= (std::uint64_t{2} << 20));
            BOOST_TEST(std::filesystem::file_size(e.path()) < (std::uint64_t{8} << 20) + 8);
        }
    }
    BOOST_TEST(partial == 1u);
    // the next save still succeeds
    io::save_safetensors(path, {{"w", xgrad::full<float>({2}, 5.f), ""}}, {{"step", "3"}});
    BOOST_TEST(io::load_safetensors(path).metadata.at("step") == "3");
}
