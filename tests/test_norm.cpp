#define BOOST_TEST_MODULE norm
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;
using xgrad_test::reference;

using real_types = boost::mpl::list<float, double>;

namespace {

template <class T>
void check_batch_norm_reference(const std::string& c, bool training) {
    const auto& ref = reference::get();
    const double rt = xgrad_test::rtol_for<T>(), at = xgrad_test::atol_for<T>() * 10;
    auto x = param(ref.as<T>(c + ".x"));
    auto gamma = param(ref.as<T>(c + ".gamma"));
    auto beta = param(ref.as<T>(c + ".beta"));
    auto rm = ref.as<T>(c + ".running_mean");
    auto rv = ref.as<T>(c + ".running_var");
    auto y = batch_norm(x, gamma, beta, rm, rv, {.training = training});
    check_close(eval(y), ref(c + ".y"), rt, at, c + ".y");
    backward(y, ref.as<T>(c + ".g"));
    check_close(x.grad(), ref(c + ".dx"), rt, at, c + ".dx");
    check_close(gamma.grad(), ref(c + ".dgamma"), rt, at, c + ".dgamma");
    check_close(beta.grad(), ref(c + ".dbeta"), rt, at, c + ".dbeta");
    // two passes over one node (eval, then backward) updated the running statistics once
    check_close(rm, ref(c + ".new_running_mean"), rt, at, c + ".running_mean");
    check_close(rv, ref(c + ".new_running_var"), rt, at, c + ".running_var");
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(batch_norm_matches_pytorch, T, real_types) {
    check_batch_norm_reference<T>("bn_train_4d", true);
    check_batch_norm_reference<T>("bn_train_2d", true);
    check_batch_norm_reference<T>("bn_eval_4d", false);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(layer_norm_matches_pytorch, T, real_types) {
    const auto& ref = reference::get();
    const double rt = xgrad_test::rtol_for<T>(), at = xgrad_test::atol_for<T>() * 10;
    auto x = param(ref.as<T>("ln.x"));
    auto gamma = param(ref.as<T>("ln.gamma"));
    auto beta = param(ref.as<T>("ln.beta"));
    auto y = layer_norm(x, {4, 5}, gamma, beta);
    check_close(eval(y), ref("ln.y"), rt, at, "ln.y");
    check_close(eval(layer_norm(x, 2, gamma, beta)), ref("ln.y"), rt, at, "ln.y (last 2 axes)");
    backward(y, ref.as<T>("ln.g"));
    check_close(x.grad(), ref("ln.dx"), rt, at, "ln.dx");
    check_close(gamma.grad(), ref("ln.dgamma"), rt, at, "ln.dgamma");
    check_close(beta.grad(), ref("ln.dbeta"), rt, at, "ln.dbeta");
}

BOOST_AUTO_TEST_CASE(batch_norm_gradcheck_random_shapes) {
    rng gen(31);
    for (const shape_t& s : {shape_t{2, 1}, shape_t{5, 3}, shape_t{1, 2, 3}, shape_t{3, 4, 1, 3}, shape_t{1, 3, 2, 5}}) {
        auto x = param(randn<double>(s, gen, 0.5, 2.0));
        auto g = param(uniform<double>({s[1]}, gen, 0.5, 1.5));
        auto b = param(randn<double>({s[1]}, gen));
        auto rm = zeros<double>({s[1]});
        auto rv = ones<double>({s[1]});
        const std::string n = to_string(s);
        xgrad_test::expect_gradcheck([&] { return batch_norm(x, g, b, rm, rv, {.training = true}); }, {x, g, b}, gen,
                                     "batch_norm train " + n);
        xgrad_test::expect_gradcheck([&] { return batch_norm(x, g, b, rm, rv); }, {x, g, b}, gen, "batch_norm eval " + n);
        // affine part given as plain tensors: only x gets a gradient
        xgrad_test::expect_gradcheck(
            [&] { return tanh(batch_norm(x * 2.0, ones<double>({s[1]}), zeros<double>({s[1]}), rm, rv, {.training = true})); },
            {x}, gen, "batch_norm no affine " + n);
    }
}

BOOST_AUTO_TEST_CASE(layer_norm_gradcheck_random_shapes) {
    rng gen(32);
    struct ln_case {
        shape_t x, normalized;
    };
    for (const auto& c : {ln_case{{1, 5}, {5}}, ln_case{{3, 1}, {1}}, ln_case{{4, 7}, {7}}, ln_case{{3, 2, 7}, {2, 7}},
                          ln_case{{1, 2, 3, 3}, {3}}}) {
        auto x = param(randn<double>(c.x, gen, 0.0, 1.5));
        auto g = param(uniform<double>(c.normalized, gen, 0.5, 1.5));
        auto b = param(randn<double>(c.normalized, gen));
        const std::string n = to_string(c.x) + " over " + to_string(c.normalized);
        xgrad_test::expect_gradcheck([&] { return layer_norm(x, c.normalized, g, b); }, {x, g, b}, gen, "layer_norm " + n);
        xgrad_test::expect_gradcheck([&] { return layer_norm(x * x, c.normalized, 1e-3); }, {x}, gen,
                                     "layer_norm no affine " + n);
    }
}

BOOST_AUTO_TEST_CASE(running_statistics_follow_pytorch_rules) {
    // one channel, values 1..4: batch mean 2.5, biased var 1.25, unbiased var 5/3
    tensor<double> x({4, 1}, {1, 2, 3, 4});
    auto rm = zeros<double>({1});
    auto rv = ones<double>({1});
    auto y = batch_norm(x, ones<double>({1}), zeros<double>({1}), rm, rv, {.training = true, .momentum = 0.5});
    const auto out = eval(y);
    BOOST_TEST(out(0, 0) == (1 - 2.5) / std::sqrt(1.25 + 1e-5), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(rm(0) == 0.5 * 2.5, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(rv(0) == 0.5 * 1 + 0.5 * 5.0 / 3.0, boost::test_tools::tolerance(1e-12));
    eval(y);  // the same node again: no second update
    BOOST_TEST(rm(0) == 1.25, boost::test_tools::tolerance(1e-12));
    // a new node is a new forward: it updates again
    eval(batch_norm(x, ones<double>({1}), zeros<double>({1}), rm, rv, {.training = true, .momentum = 0.5}));
    BOOST_TEST(rm(0) == 0.5 * 1.25 + 0.5 * 2.5, boost::test_tools::tolerance(1e-12));
    // evaluation mode reads the running statistics and leaves them alone
    const auto e = eval(batch_norm(x, ones<double>({1}), zeros<double>({1}), rm, rv));
    BOOST_TEST(e(3, 0) == (4 - rm(0)) / std::sqrt(rv(0) + 1e-5), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(rm(0) == 1.875, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(bad_shapes_and_values) {
    using xgrad_test::check_throws;
    tensor<float> x({4, 3, 2});
    auto c3 = ones<float>({3});
    check_throws<shape_error>([&] { batch_norm(x, ones<float>({2}), c3, c3, c3); }, {"batch_norm", "gamma", "{2}", "{4, 3, 2}"});
    check_throws<shape_error>([&] { batch_norm(x, c3, c3, ones<float>({4}), c3); }, {"batch_norm", "running_mean", "{4}"});
    check_throws<shape_error>([&] { batch_norm(tensor<float>({3}), c3, c3, c3, c3); }, {"batch_norm", "{N, C, ...}", "{3}"});
    check_throws<value_error>([&] { batch_norm(tensor<float>({1, 3}), c3, c3, c3, c3, {.training = true}); },
                              {"batch_norm", "more than one value per channel", "{1, 3}"});
    check_throws<value_error>([&] { batch_norm(x, c3, c3, c3, c3, {.eps = 0}); }, {"batch_norm", "eps"});
    check_throws<value_error>([&] { batch_norm(x, c3, c3, c3, c3, {.momentum = 2}); }, {"batch_norm", "momentum"});
    check_throws<shape_error>([&] { layer_norm(x, {3}, ones<float>({3}), zeros<float>({3})); },
                              {"layer_norm", "normalized_shape {3}", "{4, 3, 2}"});
    check_throws<shape_error>([&] { layer_norm(x, {3, 2}, ones<float>({2}), zeros<float>({3, 2})); },
                              {"layer_norm", "gamma of shape {2}"});
    check_throws<shape_error>([&] { layer_norm(x, 4, ones<float>({2}), zeros<float>({2})); }, {"layer_norm", "last 4"});
}

BOOST_AUTO_TEST_CASE(large_inputs_split_across_threads_agree_with_a_plain_loop) {
    rng gen(33);
    {
        const shape_t s{16, 4, 24, 24};  // channels shared between the pool's threads
        auto x = randn<double>(s, gen, 1.0, 2.0);
        auto rm = zeros<double>({4});
        auto rv = ones<double>({4});
        const auto y = eval(batch_norm(x, ones<double>({4}), zeros<double>({4}), rm, rv, {.training = true}));
        const auto l = detail::layout_along(s, 1);
        double worst = 0;
        for (std::size_t c = 0; c < 4; ++c) {
            double mu = 0, var = 0;
            for (std::size_t o = 0; o < l.outer; ++o)
                for (std::size_t k = 0; k < l.inner; ++k) mu += x.data()[(o * 4 + c) * l.inner + k];
            mu /= double(l.outer * l.inner);
            for (std::size_t o = 0; o < l.outer; ++o)
                for (std::size_t k = 0; k < l.inner; ++k) var += std::pow(x.data()[(o * 4 + c) * l.inner + k] - mu, 2);
            var /= double(l.outer * l.inner);
            for (std::size_t o = 0; o < l.outer; ++o)
                for (std::size_t k = 0; k < l.inner; ++k) {
                    const std::size_t i = (o * 4 + c) * l.inner + k;
                    worst = std::max(worst, std::fabs(y.data()[i] - (x.data()[i] - mu) / std::sqrt(var + 1e-5)));
                }
        }
        BOOST_TEST(worst < 1e-12);
    }
    {
        auto x = randn<double>({128, 300}, gen, -1.0, 3.0);
        const auto y = eval(layer_norm(x, {300}));
        double worst = 0;
        for (std::size_t r = 0; r < 128; ++r) {
            double mu = 0, var = 0;
            for (std::size_t j = 0; j < 300; ++j) mu += x(r, j) / 300;
            for (std::size_t j = 0; j < 300; ++j) var += std::pow(x(r, j) - mu, 2) / 300;
            for (std::size_t j = 0; j < 300; ++j)
                worst = std::max(worst, std::fabs(y(r, j) - (x(r, j) - mu) / std::sqrt(var + 1e-5)));
        }
        BOOST_TEST(worst < 1e-12);
    }
}
