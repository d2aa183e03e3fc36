#define BOOST_TEST_MODULE data_transforms
#include <boost/test/unit_test.hpp>

#include <xgrad/data/augment.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/data/transforms.hpp>

#include <cmath>
#include <vector>

namespace data = xgrad::data;
using xgrad::from_vector;
using xgrad::shape_t;

namespace {

/// Four 2x2 single-channel uint8 images: image i holds 10i, 10i+1, 10i+2, 10i+3; label i % 3.
data::tensor_dataset<std::uint8_t> tiny() {
    std::vector<std::uint8_t> px;
    for (int i = 0; i < 4; ++i)
        for (int k = 0; k < 4; ++k) px.push_back(static_cast<std::uint8_t>(10 * i + k));
    return {from_vector(px, {4, 1, 2, 2}), from_vector<std::int64_t>({0, 1, 2, 0}, {4})};
}

}  // namespace

BOOST_AUTO_TEST_CASE(tensor_dataset_basics) {
    const auto ds = tiny();
    BOOST_TEST(ds.size() == 4u);
    const auto s = ds.get(2);
    BOOST_TEST(s.input.shape() == (shape_t{1, 2, 2}));
    BOOST_TEST(s.input.to_vector() == (std::vector<std::uint8_t>{20, 21, 22, 23}));
    BOOST_TEST(s.label == 2);
    BOOST_CHECK_THROW(ds.get(4), xgrad::index_error);
    BOOST_CHECK_THROW(data::tensor_dataset<float>(xgrad::zeros<float>({3, 2}), xgrad::zeros<std::int64_t>({2})),
                      xgrad::shape_error);
    static_assert(data::dataset<data::tensor_dataset<float>>);
}

BOOST_AUTO_TEST_CASE(to_float_scales_exactly) {
    const auto ds = tiny() | data::to_float();
    const auto s = ds.get(3);
    static_assert(std::is_same_v<decltype(s.input), xgrad::tensor<float>>);
    const auto v = s.input.to_vector();
    for (int k = 0; k < 4; ++k) BOOST_TEST(v[static_cast<std::size_t>(k)] == static_cast<float>(30 + k) / 255.0f);
    BOOST_TEST(s.label == 0);
    xgrad::rng g(0);
    const auto full = data::to_float()(data::sample<std::uint8_t>{from_vector<std::uint8_t>({0, 255}, {2}), 1}, g);
    BOOST_TEST(full.input.to_vector() == (std::vector<float>{0.0f, 1.0f}));
}

BOOST_AUTO_TEST_CASE(normalize_per_channel) {
    xgrad::rng g(0);
    // {3, 1, 2}: three channels of two pixels
    data::sample<float> s{from_vector<float>({1, 3, 10, 20, -1, 1}, {3, 1, 2}), 0};
    const auto out = data::normalize({2, 15, 0}, {1, 5, 0.5f})(s, g);
    const std::vector<float> want{-1, 1, -1, 1, -2, 2};
    const auto got = out.input.to_vector();
    for (std::size_t i = 0; i < want.size(); ++i) BOOST_TEST(std::abs(got[i] - want[i]) < 1e-6f);
    // the source sample still holds its values: normalize copied a shared tensor
    BOOST_TEST(s.input.to_vector() == (std::vector<float>{1, 3, 10, 20, -1, 1}));
    // one statistic for every channel
    const auto one = data::normalize({1}, {2})(s, g).input.to_vector();
    BOOST_TEST(std::abs(one[3] - 9.5f) < 1e-6f);
    BOOST_CHECK_THROW(data::normalize({1, 2}, {1, 2, 3}), xgrad::value_error);
    BOOST_CHECK_THROW(data::normalize({1}, {0}), xgrad::value_error);
    BOOST_CHECK_THROW(data::normalize({1, 2}, {1, 1})(s, g), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(pipeline_leaves_dataset_storage_alone) {
    const auto base = tiny();
    const auto before = base.inputs().to_vector();
    const auto ds = base | data::to_float() | data::normalize({0.5f}, {0.25f}) | data::random_horizontal_flip(1.0);
    for (std::size_t i = 0; i < ds.size(); ++i) (void)ds.get(i);
    // flips and crops straight on the uint8 views must copy too
    const auto raw = base | data::random_horizontal_flip(1.0) | data::random_vertical_flip(1.0);
    const auto s = raw.get(1);
    BOOST_TEST(s.input.to_vector() == (std::vector<std::uint8_t>{13, 12, 11, 10}));
    BOOST_TEST(base.inputs().to_vector() == before);
    // normalize after to_float: (x / 255 - 0.5) / 0.25, flipped
    const auto v = ds.get(1).input.to_vector();
    BOOST_TEST(std::abs(v[0] - (11.0f / 255.0f - 0.5f) * 4.0f) < 1e-6f);
}

BOOST_AUTO_TEST_CASE(one_hot_labels) {
    const auto ds = tiny() | data::one_hot(3);
    const auto s = ds.get(2);
    static_assert(std::is_same_v<decltype(s.label), xgrad::tensor<float>>);
    BOOST_TEST(s.label.to_vector() == (std::vector<float>{0, 0, 1}));
    const auto bad = tiny() | data::one_hot(2);
    BOOST_CHECK_THROW(bad.get(2), xgrad::value_error);
    BOOST_CHECK_THROW(data::one_hot(0), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(composition_and_map) {
    // transform | transform is one transform; applying it equals applying both in turn
    const auto aug = data::to_float() | data::map([](data::sample<float> s) {
                         s.input = s.input.astype<float>();
                         s.input.data()[0] += 100;
                         return s;
                     });
    const auto a = (tiny() | aug).get(1);
    const auto b = (tiny() | data::to_float() | data::map([](data::sample<float> s) {
                        s.input.data()[0] += 100;
                        return s;
                    })).get(1);
    BOOST_TEST(a.input.to_vector() == b.input.to_vector());
    BOOST_TEST(a.input.to_vector()[0] == 100.0f + 10.0f / 255.0f);
    // a map may draw from the generator, and the same sample index draws the same numbers
    const auto noisy = tiny() | data::to_float() | data::map([](data::sample<float> s, xgrad::rng& g) {
                           s.label = static_cast<std::int64_t>(g.below(1000));
                           return s;
                       });
    BOOST_TEST(noisy.get(2).label == noisy.get(2).label);
    xgrad::rng g1(5), g2(5);
    BOOST_TEST(noisy.get(2, g1).label == noisy.get(2, g2).label);
    static_assert(data::transform<decltype(aug)>);
    static_assert(data::dataset<decltype(noisy)>);
}
