#define BOOST_TEST_MODULE data_image
#include <boost/test/unit_test.hpp>

#include <xgrad/data/image.hpp>

#include <cmath>
#include <vector>

namespace data = xgrad::data;
using xgrad::from_vector;
using xgrad::shape_t;

namespace {
/// {2, 2, 3}: channel 0 holds 1..6, channel 1 holds 11..16.
xgrad::tensor<float> two_channels() { return from_vector<float>({1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16}, {2, 2, 3}); }

void check_close(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-5f) {
    BOOST_REQUIRE_EQUAL(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(std::abs(got[i] - want[i]) <= tol, "element " << i << ": " << got[i] << " vs " << want[i]);
}
}  // namespace

BOOST_AUTO_TEST_CASE(flips_do_not_touch_their_input) {
    const auto img = two_channels();
    BOOST_TEST(data::hflip(img).to_vector() == (std::vector<float>{3, 2, 1, 6, 5, 4, 13, 12, 11, 16, 15, 14}));
    BOOST_TEST(data::vflip(img).to_vector() == (std::vector<float>{4, 5, 6, 1, 2, 3, 14, 15, 16, 11, 12, 13}));
    BOOST_TEST(img.to_vector() == two_channels().to_vector());
    // rank 2 and odd heights
    const auto g = from_vector<std::uint8_t>({1, 2, 3, 4, 5, 6}, {3, 2});
    BOOST_TEST(data::vflip(g).to_vector() == (std::vector<std::uint8_t>{5, 6, 3, 4, 1, 2}));
}

BOOST_AUTO_TEST_CASE(crop_with_padding) {
    const auto img = two_channels();
    // window 2x2 at (0, 0) of the image padded by 1: one zero row and one zero column
    const auto c = data::crop(img, 0, 0, 2, 2, 1);
    BOOST_TEST(c.shape() == (shape_t{2, 2, 2}));
    BOOST_TEST(c.to_vector() == (std::vector<float>{0, 0, 0, 1, 0, 0, 0, 11}));
    // bottom-right corner of the padded 4x5 image
    const auto d = data::crop(img, 2, 2, 2, 3, 1);
    BOOST_TEST(d.to_vector() == (std::vector<float>{5, 6, 0, 0, 0, 0, 15, 16, 0, 0, 0, 0}));
    // no padding, interior
    BOOST_TEST(data::crop(img, 1, 1, 1, 2).to_vector() == (std::vector<float>{5, 6, 15, 16}));
    BOOST_CHECK_THROW(data::crop(img, 1, 0, 2, 2), xgrad::shape_error);
    BOOST_CHECK_THROW(data::crop(from_vector<float>({1, 2}, {2}), 0, 0, 1, 1), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(resize_half_pixel_centres) {
    // one row 0, 10 -> 4 columns: sources -0.25, 0.25, 0.75, 1.25 clamped to [0, 1]
    const auto r = data::resize(from_vector<float>({0, 10}, {1, 2}), 1, 4);
    check_close(r.to_vector(), {0, 2.5f, 7.5f, 10});
    // 2x2 -> 1x1 averages the four pixels
    check_close(data::resize(from_vector<float>({1, 2, 3, 4}, {1, 2, 2}), 1, 1).to_vector(), {2.5f});
    // same size is the identity
    const auto img = two_channels();
    check_close(data::resize(img, 2, 3).to_vector(), img.to_vector());
    // uint8 rounds to nearest: 2.5 -> 2 (ties to even), 7.5 -> 8
    const auto u = data::resize(from_vector<std::uint8_t>({0, 10}, {1, 2}), 1, 4);
    BOOST_TEST(u.to_vector() == (std::vector<std::uint8_t>{0, 2, 8, 10}));
}

BOOST_AUTO_TEST_CASE(rotate_quarter_turns) {
    const auto img = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3});
    // counter-clockwise: the right column becomes the top row
    check_close(data::rotate(img, 90).to_vector(), {3, 6, 9, 2, 5, 8, 1, 4, 7});
    check_close(data::rotate(img, -90).to_vector(), {7, 4, 1, 8, 5, 2, 9, 6, 3});
    check_close(data::rotate(img, 180).to_vector(), {9, 8, 7, 6, 5, 4, 3, 2, 1});
    check_close(data::rotate(img, 0).to_vector(), img.to_vector());
    // 45 degrees: the centre stays; corner (0, 0) samples source (x 1, y 1 - sqrt 2),
    // 0.414 of the way from the zero border to pixel 2
    const auto r = data::rotate(img, 45).to_vector();
    BOOST_TEST(r[4] == 5.0f);
    BOOST_TEST(std::abs(r[0] - 2 * (2 - std::sqrt(2.0f))) < 1e-5f);
}

BOOST_AUTO_TEST_CASE(scale_about_centre) {
    const auto img = from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
    check_close(data::scale(img, 1).to_vector(), img.to_vector());
    // halving: pixel (0, 0) samples source (-1, -1): only zeros; the centre stays
    const auto h = data::scale(img, 0.5).to_vector();
    BOOST_TEST(h[0] == 0.0f);
    BOOST_TEST(h[4] == 5.0f);
    // doubling: pixel (0, 1) samples source (0.5, 1): between 2 and 5
    const auto d = data::scale(img, 2).to_vector();
    BOOST_TEST(std::abs(d[1] - 3.5f) < 1e-5f);
    BOOST_CHECK_THROW(data::scale(img, 0), xgrad::value_error);
}
