#define BOOST_TEST_MODULE data_augment
#include <boost/test/unit_test.hpp>

#include <xgrad/data/augment.hpp>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

namespace data = xgrad::data;
using xgrad::from_vector;
using xgrad::shape_t;

namespace {

/// {1, n, n} holding 1, 2, ... n*n.
xgrad::tensor<float> ramp(std::size_t n) {
    std::vector<float> v(n * n);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i + 1);
    return from_vector(v, {1, n, n});
}

template <class T>
data::sample<float> apply(const T& t, const xgrad::tensor<float>& img, std::uint64_t seed) {
    xgrad::rng g(seed);
    return t(data::sample<float>{img, 3}, g);
}

}  // namespace

BOOST_AUTO_TEST_CASE(flip_probability) {
    const auto img = ramp(3);
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        BOOST_TEST(apply(data::random_horizontal_flip(0.0), img, seed).input.to_vector() == img.to_vector());
        BOOST_TEST(apply(data::random_horizontal_flip(1.0), img, seed).input.to_vector() == data::hflip(img).to_vector());
        BOOST_TEST(apply(data::random_vertical_flip(1.0), img, seed).input.to_vector() == data::vflip(img).to_vector());
    }
    // p = 0.5: the draw decides, the same generator decides the same way
    int flipped = 0;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        const bool want = xgrad::rng(seed).uniform() < 0.5;
        const auto out = apply(data::random_horizontal_flip(), img, seed).input.to_vector();
        BOOST_TEST(out == (want ? data::hflip(img) : img).to_vector());
        flipped += want;
    }
    BOOST_TEST(flipped > 60);
    BOOST_TEST(flipped < 140);
    BOOST_CHECK_THROW(data::random_horizontal_flip(1.5), xgrad::value_error);
    BOOST_TEST(apply(data::random_horizontal_flip(1.0), img, 0).label == 3);
}

BOOST_AUTO_TEST_CASE(crop_positions) {
    const auto img = ramp(2);
    std::set<std::pair<std::size_t, std::size_t>> seen;
    for (std::uint64_t seed = 0; seed < 100; ++seed) {
        xgrad::rng g(seed);
        const std::size_t top = g.below(3), left = g.below(3);
        seen.insert({top, left});
        const auto out = apply(data::random_crop(2, 1), img, seed).input;
        BOOST_TEST(out.shape() == (shape_t{1, 2, 2}));
        BOOST_TEST(out.to_vector() == data::crop(img, top, left, 2, 2, 1).to_vector());
    }
    BOOST_TEST(seen.size() == 9u);  // every window of the padded 4x4 image occurs
    // Fashion-MNIST style: 28 with padding 4 keeps the size
    BOOST_TEST(apply(data::random_crop(28, 4), ramp(28), 1).input.shape() == (shape_t{1, 28, 28}));
    BOOST_CHECK_THROW(apply(data::random_crop(5, 1), img, 0), xgrad::shape_error);
    BOOST_CHECK_THROW(data::random_crop(0), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(rotation_and_scale_draws) {
    const auto img = ramp(5);
    BOOST_TEST(apply(data::random_rotation(0), img, 4).input.to_vector() == img.to_vector());
    for (std::uint64_t seed = 0; seed < 10; ++seed) {
        const double angle = xgrad::rng(seed).uniform(-30, 30);
        BOOST_TEST(std::abs(angle) <= 30.0);
        BOOST_TEST(apply(data::random_rotation(30), img, seed).input.to_vector() == data::rotate(img, angle).to_vector());
        const double f = xgrad::rng(seed).uniform(0.8, 1.2);
        BOOST_TEST(apply(data::random_scale(0.8, 1.2), img, seed).input.to_vector() == data::scale(img, f).to_vector());
    }
    BOOST_CHECK_THROW(data::random_rotation(-1), xgrad::value_error);
    BOOST_CHECK_THROW(data::random_scale(2, 1), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(resized_crop) {
    const auto img = ramp(4);
    // the whole image at aspect 1: the identity
    const data::random_resized_crop whole(4, {1.0, 1.0}, {1.0, 1.0});
    BOOST_TEST(apply(whole, img, 9).input.to_vector() == img.to_vector());
    // a ratio the square cannot hold: ten failed tries, then a centre crop 4 wide, 2 high
    const data::random_resized_crop wide(3, {1.0, 1.0}, {2.0, 2.0});
    const auto got = apply(wide, img, 2).input;
    BOOST_TEST(got.shape() == (shape_t{1, 3, 3}));
    BOOST_TEST(got.to_vector() == data::resize(data::crop(img, 1, 0, 2, 4), 3, 3).to_vector());
    // default ranges: always the requested size, values within the input's range
    for (std::uint64_t seed = 0; seed < 30; ++seed) {
        const auto out = apply(data::random_resized_crop(6), ramp(10), seed).input.to_vector();
        BOOST_TEST(out.size() == 36u);
        for (float v : out) BOOST_TEST((v >= 1.0f && v <= 100.0f));
    }
    BOOST_CHECK_THROW(data::random_resized_crop(4, {0.5, 0.2}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(uint8_images) {
    const auto img = from_vector<std::uint8_t>({0, 50, 100, 150, 200, 250, 0, 0, 255}, {1, 3, 3});
    xgrad::rng g(1);
    const auto pipeline = data::random_horizontal_flip(1.0) | data::random_crop(3, 1) | data::random_rotation(10);
    const auto out = pipeline(data::sample<std::uint8_t>{img, 0}, g).input;
    BOOST_TEST(out.shape() == (shape_t{1, 3, 3}));
    BOOST_TEST(img.to_vector() == (std::vector<std::uint8_t>{0, 50, 100, 150, 200, 250, 0, 0, 255}));
}
