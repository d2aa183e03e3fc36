#define BOOST_TEST_MODULE dropout
#include <boost/test/unit_test.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;

BOOST_AUTO_TEST_CASE(evaluation_is_the_identity) {
    rng gen(61);
    auto x = randn<float>({5, 9}, gen);
    const auto y = eval(dropout(x, 0.5, false, gen));
    BOOST_TEST(y.to_vector() == x.to_vector());
    // p = 0 in training is the identity too
    BOOST_TEST(eval(dropout(x, 0.0, true, gen)).to_vector() == x.to_vector());
    // and neither drew random numbers
    rng probe(61);
    randn<float>({5, 9}, probe);
    BOOST_TEST(gen() == probe());
}

BOOST_AUTO_TEST_CASE(training_drops_about_p_and_scales_survivors) {
    rng gen(62);
    const double p = 0.3;
    auto x = uniform<double>({100, 100}, gen, 1.0, 2.0);  // never 0, so a 0 output means dropped
    const auto y = eval(dropout(x, p, true, gen));
    std::size_t dropped = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (y.data()[i] == 0.0)
            ++dropped;
        else
            BOOST_TEST(y.data()[i] == x.data()[i] * (1.0 / (1.0 - p)));
    }
    // binomial(10000, 0.3): standard deviation 46, allow 5 of them
    BOOST_TEST(dropped > 3000u - 230u);
    BOOST_TEST(dropped < 3000u + 230u);
}

BOOST_AUTO_TEST_CASE(seeded_and_one_mask_per_call) {
    auto x = ones<float>({64});
    rng g1(7), g2(7), g3(8);
    const auto a = eval(dropout(x, 0.5, true, g1)).to_vector();
    const auto b = eval(dropout(x, 0.5, true, g2)).to_vector();
    const auto c = eval(dropout(x, 0.5, true, g3)).to_vector();
    BOOST_TEST(a == b);  // same seed, same mask
    BOOST_TEST(a != c);
    const auto d = eval(dropout(x, 0.5, true, g1)).to_vector();
    BOOST_TEST(a != d);  // a new call draws a new mask
}

BOOST_AUTO_TEST_CASE(forward_and_backward_share_the_mask) {
    rng gen(63);
    auto x = param(uniform<double>({7, 11}, gen, 1.0, 2.0));
    auto y = dropout(x, 0.4, true, gen);
    const auto out1 = eval(y);
    const auto out2 = eval(y);  // the same node: the same mask
    BOOST_TEST(out1.to_vector() == out2.to_vector());
    backward(sum(y * 3.0));
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double expected = out1.data()[i] == 0.0 ? 0.0 : 3.0 / 0.6;
        BOOST_TEST(x.grad().data()[i] == expected, boost::test_tools::tolerance(1e-12));
    }
    // gradcheck of the captured node (its mask stays fixed across evaluations)
    for (const shape_t& s : {shape_t{1}, shape_t{5, 3}, shape_t{2, 3, 4}}) {
        auto z = param(randn<double>(s, gen));
        auto d = dropout(tanh(z), 0.5, true, gen);
        xgrad_test::expect_gradcheck([&] { return d * z; }, {z}, gen, "dropout " + to_string(s));
    }
}

BOOST_AUTO_TEST_CASE(fuses_with_its_neighbours) {
    rng gen(64);
    auto x = param(randn<float>({4, 4}, gen));
    // an elementwise node, not a barrier: it joins the loop of whatever surrounds it
    using node = decltype(dropout(x, 0.5, true, gen));
    static_assert(std::is_same_v<node, binary_node<ops::mul, param_node<float>, tensor_node<float>>>);
    static_assert(detail::full_sum_root<decltype(mean(relu(dropout(x, 0.5, true, gen))))>::value);
}

BOOST_AUTO_TEST_CASE(p_outside_zero_one) {
    rng gen(65);
    tensor<float> x({3});
    for (double p : {-0.1, 1.0, 1.5, std::nan("")})
        xgrad_test::check_throws<value_error>([&] { dropout(x, p, true, gen); }, {"dropout", "p must be in [0, 1)"});
}
