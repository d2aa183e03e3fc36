#define BOOST_TEST_MODULE pool
#include <boost/test/unit_test.hpp>

#include <cmath>

#include "dense_reference.hpp"

using namespace xgrad;
using dense_test::check_close;
using dense_test::check_gradients;
using dense_test::check_throws;

namespace {

const dense_test::reference& ref() {
    static const dense_test::reference r("dense_pool.txt");
    return r;
}

template <class T>
void reference_cases() {
    using P = std::vector<parameter<T>>;
    const auto& r = ref();
    auto run = [&](const char* c, auto f) { dense_test::run_reference_case<T>(r, c, {"x"}, f); };
    run("max2", [](P& p) { return max_pool2d(p[0], 2); });
    run("max3_s2_p1", [](P& p) { return max_pool2d(p[0], 3, 2, 1); });
    run("max_3x2_s12_p10", [](P& p) { return max_pool2d(p[0], {3, 2}, {1, 2}, {1, 0}); });
    run("avg3_s2_p1", [](P& p) { return avg_pool2d(p[0], 3, 2, 1); });
    run("avg3_s2_p1_exclude_pad", [](P& p) { return avg_pool2d(p[0], 3, 2, 1, false); });
    run("avg2_unbatched", [](P& p) { return avg_pool2d(p[0], 2); });
    run("adaptive_3x4", [](P& p) { return adaptive_avg_pool2d(p[0], {3, 4}); });
    run("adaptive_5x9", [](P& p) { return adaptive_avg_pool2d(p[0], {5, 9}); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_pytorch_float64_and_float32) {
    dense_test::settings_guard guard;
    for (std::size_t threads : {1, 2}) {
        set_num_threads(threads);
        reference_cases<double>();
        reference_cases<float>();
    }
}

BOOST_AUTO_TEST_CASE(gradients_random_shapes) {
    rng g(41);
    auto x = param(randn<double>({2, 3, 7, 5}, g));
    auto x1 = param(randn<double>({1, 1, 5, 9}, g));
    auto x3 = param(randn<double>({3, 6, 6}, g));
    check_gradients("max 2", [&] { return max_pool2d(x, 2); }, {x}, g);
    check_gradients("max 3 s2 p1", [&] { return max_pool2d(x, 3, 2, 1); }, {x}, g);
    check_gradients("max {3, 2} s{1, 2} p{1, 1}", [&] { return max_pool2d(x, {3, 2}, {1, 2}, {1, 1}); }, {x}, g);
    check_gradients("max overlapping, batch 1", [&] { return max_pool2d(x1, 3, 1); }, {x1}, g);
    check_gradients("max unbatched", [&] { return max_pool2d(x3, 2, 1); }, {x3}, g);
    check_gradients("avg 2", [&] { return avg_pool2d(x, 2); }, {x}, g);
    check_gradients("avg 3 s2 p1", [&] { return avg_pool2d(x, 3, 2, 1); }, {x}, g);
    check_gradients("avg {2, 3} s1 p{1, 0} exclude pad", [&] { return avg_pool2d(x1, {2, 3}, 1, {1, 0}, false); }, {x1},
                    g);
    check_gradients("adaptive {3, 4}", [&] { return adaptive_avg_pool2d(x, {3, 4}); }, {x}, g);
    check_gradients("adaptive 1 (global average)", [&] { return adaptive_avg_pool2d(x, 1); }, {x}, g);
    check_gradients("adaptive {6, 11} upsampling", [&] { return adaptive_avg_pool2d(x1, {6, 11}); }, {x1}, g);
    check_gradients("in an expression", [&] { return xgrad::tanh(max_pool2d(x * x, 2) + avg_pool2d(x, 2)); }, {x}, g);
}

BOOST_AUTO_TEST_CASE(max_pool_ties_and_nan) {
    // ties: the gradient goes to the first maximum of the window only
    auto x = param(tensor<double>({1, 1, 2, 2}, {1, 3, 3, 2}));
    backward(sum(max_pool2d(x, 2)));
    const std::vector<double> want{0, 1, 0, 0};
    BOOST_TEST(x.grad().to_vector() == want, boost::test_tools::per_element());
    // a NaN in the window is the maximum (propagates, as PyTorch)
    auto y = eval(max_pool2d(tensor<float>({1, 1, 2, 2}, {1, NAN, 5, 2}), 2));
    BOOST_TEST(std::isnan(y.item()));
    // ... and receives the gradient (the first NaN when there are several)
    auto xn = param(tensor<float>({1, 1, 2, 2}, {1, NAN, NAN, 2}));
    backward(sum(max_pool2d(xn, 2)));
    const std::vector<float> wantn{0, 1, 0, 0};
    BOOST_TEST(xn.grad().to_vector() == wantn, boost::test_tools::per_element());
    // ties at the last elements of 2x2 windows, odd sizes (the last row and column are in no window)
    auto xt = param(tensor<float>({1, 1, 3, 5}, {0, 0, 1, 4, 9, 0, 2, 4, 1, 9, 9, 9, 9, 9, 9}));
    backward(sum(max_pool2d(xt, 2)));
    const std::vector<float> wantt{0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
    BOOST_TEST(xt.grad().to_vector() == wantt, boost::test_tools::per_element());
    // padding counts as -inf: an all-negative window keeps its maximum
    auto z = eval(max_pool2d(tensor<float>({1, 1, 2, 2}, {-4, -3, -2, -1}), 2, 1, 1));
    const std::vector<float> zw{-4, -3, -3, -2, -1, -1, -2, -1, -1};
    BOOST_TEST(z.to_vector() == zw, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(avg_pool_counts_padding_by_default) {
    auto x = ones<double>({1, 1, 3, 3});
    auto with_pad = eval(avg_pool2d(x, 3, 1, 1));
    BOOST_TEST(with_pad(0, 0, 0, 0) == 4.0 / 9.0);  // corner: 4 inputs, 5 zeros of padding
    BOOST_TEST(with_pad(0, 0, 1, 1) == 1.0);
    auto without = eval(avg_pool2d(x, 3, 1, 1, false));
    for (double v : without.to_vector()) BOOST_TEST(v == 1.0);
}

BOOST_AUTO_TEST_CASE(adaptive_windows_follow_pytorch_formula) {
    // 5 -> 3: windows [0, 2), [1, 4), [3, 5)
    auto x = tensor<double>({1, 1, 1, 5}, {1, 2, 3, 4, 5});
    auto y = eval(adaptive_avg_pool2d(x, {1, 3}));
    const std::vector<double> want{1.5, 3.0, 4.5};
    BOOST_TEST(y.to_vector() == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(bad_input_throws) {
    tensor<float> x({2, 3, 4, 4});
    check_throws<shape_error>([&] { max_pool2d(x, 5); }, {"max_pool2d", "kernel {5, 5}", "padded input 4x4", "{2, 3, 4, 4}"});
    check_throws<shape_error>([&] { avg_pool2d(x, {2, 7}, 1, {0, 1}); }, {"avg_pool2d", "{2, 7}", "4x6"});
    check_throws<value_error>([&] { max_pool2d(x, 2, 2, 2); }, {"max_pool2d", "padding {2, 2}", "half the kernel"});
    check_throws<value_error>([&] { avg_pool2d(x, 2, -1); }, {"avg_pool2d", "stride", "{-1, -1}"});
    check_throws<value_error>([&] { max_pool2d(x, 0); }, {"max_pool2d", "kernel", "{0, 0}"});
    check_throws<shape_error>([&] { max_pool2d(tensor<float>({4, 4}), 2); }, {"max_pool2d", "{4, 4}"});
    check_throws<shape_error>([&] { max_pool2d(tensor<float>({1, 1, 0, 4}), 1); }, {"max_pool2d", "empty"});
    check_throws<value_error>([&] { adaptive_avg_pool2d(x, {0, 2}); }, {"adaptive_avg_pool2d", "{0, 2}"});
    check_throws<shape_error>([&] { adaptive_avg_pool2d(tensor<float>({2, 4}), 2); }, {"adaptive_avg_pool2d", "{2, 4}"});
}
