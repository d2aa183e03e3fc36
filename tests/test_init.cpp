#define BOOST_TEST_MODULE init
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include <xgrad/nn/init.hpp>

namespace init = xgrad::nn::init;
using xgrad::rng;
using xgrad::shape_t;
using xgrad::tensor;

namespace {

struct moments {
    double mean = 0, var = 0, lo = 0, hi = 0;
    std::size_t n = 0;
};

template <class T>
moments stats(const tensor<T>& t) {
    const auto v = t.to_vector();
    moments m;
    m.n = v.size();
    double s = 0;
    for (T x : v) s += x;
    m.mean = s / static_cast<double>(m.n);
    double q = 0;
    for (T x : v) q += (x - m.mean) * (x - m.mean);
    m.var = q / static_cast<double>(m.n - 1);
    m.lo = *std::min_element(v.begin(), v.end());
    m.hi = *std::max_element(v.begin(), v.end());
    return m;
}

// Sample mean within 5 standard errors of the expected mean, sample variance within 5
// standard errors of the expected variance (var of s^2 is (mu4 - sigma^4) / n).
void check_uniform(const moments& m, double a, double b) {
    const double var = (b - a) * (b - a) / 12.0;
    const double mu4 = std::pow(b - a, 4) / 80.0;
    const double n = static_cast<double>(m.n);
    BOOST_TEST(std::fabs(m.mean - (a + b) / 2) <= 5 * std::sqrt(var / n));
    BOOST_TEST(std::fabs(m.var - var) <= 5 * std::sqrt((mu4 - var * var) / n));
    BOOST_TEST(m.lo >= a);
    BOOST_TEST(m.hi < b);
    // the sample reaches close to both bounds
    BOOST_TEST(m.lo <= a + (b - a) * 1e-3);
    BOOST_TEST(m.hi >= b - (b - a) * 1e-3);
}

void check_normal(const moments& m, double mean, double std) {
    const double var = std * std;
    const double n = static_cast<double>(m.n);
    BOOST_TEST(std::fabs(m.mean - mean) <= 5 * std / std::sqrt(n));
    BOOST_TEST(std::fabs(m.var - var) <= 5 * var * std::sqrt(2.0 / n));
    // with ~2^18 draws the extremes pass 4 sigma but stay within 7
    BOOST_TEST(m.hi > mean + 4 * std);
    BOOST_TEST(m.lo < mean - 4 * std);
    BOOST_TEST(m.hi < mean + 7 * std);
    BOOST_TEST(m.lo > mean - 7 * std);
}

const shape_t conv_shape{64, 32, 3, 3};  // fan_in 288, fan_out 576, 18432 elements
const shape_t big_shape{512, 512};       // fan_in = fan_out = 512, 262144 elements

}  // namespace

BOOST_AUTO_TEST_CASE(gains_match_pytorch) {
    using nl = init::nonlinearity;
    BOOST_TEST(init::calculate_gain(nl::linear) == 1.0);
    BOOST_TEST(init::calculate_gain(nl::conv) == 1.0);
    BOOST_TEST(init::calculate_gain(nl::sigmoid) == 1.0);
    BOOST_TEST(init::calculate_gain(nl::tanh) == 5.0 / 3.0);
    BOOST_TEST(init::calculate_gain(nl::relu) == std::sqrt(2.0));
    BOOST_TEST(init::calculate_gain(nl::leaky_relu) == std::sqrt(2.0 / (1 + 0.01 * 0.01)));
    BOOST_TEST(init::calculate_gain(nl::leaky_relu, 0.2) == std::sqrt(2.0 / 1.04));
    BOOST_TEST(init::calculate_gain(nl::leaky_relu, std::sqrt(5.0)) == std::sqrt(1.0 / 3.0), boost::test_tools::tolerance(1e-15));
    BOOST_TEST(init::calculate_gain(nl::selu) == 0.75);
}

BOOST_AUTO_TEST_CASE(fans) {
    auto [i1, o1] = init::calculate_fan_in_and_fan_out({10, 20});
    BOOST_TEST(i1 == 20u);
    BOOST_TEST(o1 == 10u);
    auto [i2, o2] = init::calculate_fan_in_and_fan_out(conv_shape);
    BOOST_TEST(i2 == 288u);
    BOOST_TEST(o2 == 576u);
    BOOST_CHECK_THROW(init::calculate_fan_in_and_fan_out({7}), xgrad::shape_error);
    rng gen(1);
    auto bias = xgrad::zeros<float>({7});
    BOOST_CHECK_THROW(init::xavier_uniform(bias, gen), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(uniform_and_normal) {
    rng gen(11);
    auto t = xgrad::empty<double>(big_shape);
    check_uniform(stats(init::uniform(t, gen, -0.5, 2.0)), -0.5, 2.0);
    check_normal(stats(init::normal(t, gen, 1.5, 0.25)), 1.5, 0.25);
    auto f = xgrad::empty<float>(big_shape);
    check_uniform(stats(init::uniform(f, gen)), 0.0, 1.0);
}

BOOST_AUTO_TEST_CASE(xavier) {
    rng gen(12);
    auto t = xgrad::empty<double>(big_shape);
    const double a = std::sqrt(6.0 / 1024);
    check_uniform(stats(init::xavier_uniform(t, gen)), -a, a);
    const double g = init::calculate_gain(init::nonlinearity::tanh);
    check_uniform(stats(init::xavier_uniform(t, gen, g)), -g * a, g * a);
    check_normal(stats(init::xavier_normal(t, gen)), 0.0, std::sqrt(2.0 / 1024));
    // conv weight: fan_in 288, fan_out 576
    auto w = xgrad::empty<float>(conv_shape);
    const double ac = std::sqrt(6.0 / (288 + 576));
    const auto m = stats(init::xavier_uniform(w, gen));
    BOOST_TEST(m.lo >= -ac);
    BOOST_TEST(m.hi < ac);
    BOOST_TEST(std::fabs(m.var - ac * ac / 3) <= 0.05 * ac * ac / 3);
}

BOOST_AUTO_TEST_CASE(kaiming) {
    rng gen(13);
    auto t = xgrad::empty<double>(big_shape);
    // default: leaky_relu with a = 0 -> gain sqrt(2), fan_in 512
    const double b = std::sqrt(2.0) * std::sqrt(3.0 / 512);
    check_uniform(stats(init::kaiming_uniform(t, gen)), -b, b);
    // PyTorch's linear/conv default: a = sqrt(5) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    const double b5 = 1.0 / std::sqrt(512.0);
    check_uniform(stats(init::kaiming_uniform(t, gen, {.a = std::sqrt(5.0)})), -b5, b5);
    check_normal(stats(init::kaiming_normal(t, gen, {.nonlinearity = init::nonlinearity::relu})), 0.0,
                 std::sqrt(2.0 / 512));
    // fan_out of a conv weight: 576
    auto w = xgrad::empty<double>({256, 128, 3, 3});  // fan_in 1152, fan_out 2304
    check_normal(stats(init::kaiming_normal(w, gen, {.mode = init::fan_mode::fan_out,
                                                     .nonlinearity = init::nonlinearity::relu})),
                 0.0, std::sqrt(2.0 / 2304));
    check_uniform(stats(init::kaiming_uniform(w, gen, {.mode = init::fan_mode::fan_out,
                                                       .nonlinearity = init::nonlinearity::tanh})),
                  -5.0 / 3.0 * std::sqrt(3.0 / 2304), 5.0 / 3.0 * std::sqrt(3.0 / 2304));
}

BOOST_AUTO_TEST_CASE(constant_zeros_ones_and_parameters) {
    auto p = xgrad::param(xgrad::empty<float>({3, 4}));
    init::constant(p, 2.5);
    for (float v : p.value().to_vector()) BOOST_TEST(v == 2.5f);
    init::zeros(p);
    for (float v : p.value().to_vector()) BOOST_TEST(v == 0.0f);
    init::ones(p);
    for (float v : p.value().to_vector()) BOOST_TEST(v == 1.0f);
    // a strided view is filled through its strides, leaving the rest alone
    auto base = xgrad::zeros<double>({4, 6});
    auto col = base.slice(1, 1, 6, 2);  // columns 1, 3, 5
    init::constant(col, 7.0);
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 6; ++j) BOOST_TEST(base(i, j) == (j % 2 == 1 ? 7.0 : 0.0));
}

BOOST_AUTO_TEST_CASE(seeded_and_reproducible) {
    rng a(42), b(42), c(43);
    auto x = xgrad::empty<float>({16, 16}), y = xgrad::empty<float>({16, 16}), z = xgrad::empty<float>({16, 16});
    init::kaiming_normal(x, a);
    init::kaiming_normal(y, b);
    init::kaiming_normal(z, c);
    BOOST_TEST(x.to_vector() == y.to_vector());
    BOOST_TEST(x.to_vector() != z.to_vector());
}

BOOST_AUTO_TEST_CASE(bad_hyper_parameters) {
    rng gen(0);
    auto t = xgrad::empty<double>({4, 4});
    BOOST_CHECK_THROW(init::normal(t, gen, 0.0, -1.0), xgrad::value_error);
    BOOST_CHECK_THROW(init::normal(t, gen, NAN, 1.0), xgrad::value_error);
    BOOST_CHECK_THROW(init::uniform(t, gen, 1.0, 0.0), xgrad::value_error);
    BOOST_CHECK_THROW(init::uniform(t, gen, 0.0, INFINITY), xgrad::value_error);
    BOOST_CHECK_THROW(init::xavier_uniform(t, gen, -1.0), xgrad::value_error);
    BOOST_CHECK_THROW(init::xavier_normal(t, gen, NAN), xgrad::value_error);
    BOOST_CHECK_THROW(init::kaiming_uniform(t, gen, {.a = NAN}), xgrad::value_error);
    // an empty tensor is left alone (no fan to divide by)
    auto e = xgrad::empty<double>({0, 5});
    BOOST_CHECK_NO_THROW(init::kaiming_uniform(e, gen));
}
