#define BOOST_TEST_MODULE softmax
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;
using xgrad_test::reference;

using real_types = boost::mpl::list<float, double>;

namespace {

/// y and dx of softmax (Log = false) or log_softmax against the PyTorch record `c`.
template <class T, bool Log>
void check_reference(const std::string& c, std::ptrdiff_t axis) {
    const auto& ref = reference::get();
    auto x = param(ref.as<T>(c + ".x"));
    auto f = [&] {
        if constexpr (Log)
            return log_softmax(x, axis);
        else
            return softmax(x, axis);
    };
    check_close(eval(f()), ref(c + ".y"), xgrad_test::rtol_for<T>(), xgrad_test::atol_for<T>(), c + ".y");
    backward(f(), ref.as<T>(c + ".g"));
    check_close(x.grad(), ref(c + ".dx"), xgrad_test::rtol_for<T>(), xgrad_test::atol_for<T>() * 10, c + ".dx");
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(softmax_matches_pytorch, T, real_types) {
    check_reference<T, false>("softmax_2d_axis1", 1);
    check_reference<T, false>("softmax_2d_axis0", 0);
    check_reference<T, false>("softmax_3d_axis1", 1);
    check_reference<T, false>("softmax_wide", -1);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(log_softmax_matches_pytorch, T, real_types) {
    check_reference<T, true>("log_softmax_2d_axis1", 1);
    check_reference<T, true>("log_softmax_2d_axis0", 0);
    check_reference<T, true>("log_softmax_3d_axis1", 1);
    check_reference<T, true>("log_softmax_wide", -1);
}

BOOST_AUTO_TEST_CASE(gradcheck_random_shapes_every_axis) {
    rng gen(11);
    for (const shape_t& s : {shape_t{1, 1}, shape_t{1, 7}, shape_t{3, 19}, shape_t{2, 5, 3}, shape_t{4, 1, 6},
                             shape_t{2, 3, 2, 5}}) {
        auto x = param(randn<double>(s, gen));
        for (std::ptrdiff_t a = -static_cast<std::ptrdiff_t>(s.size()); a < static_cast<std::ptrdiff_t>(s.size()); ++a) {
            const std::string where = to_string(s) + " axis " + std::to_string(a);
            xgrad_test::expect_gradcheck([&] { return softmax(x, a); }, {x}, gen, "softmax " + where);
            xgrad_test::expect_gradcheck([&] { return log_softmax(x, a); }, {x}, gen, "log_softmax " + where);
        }
    }
}

BOOST_AUTO_TEST_CASE(gradcheck_inside_fused_expressions) {
    rng gen(12);
    auto x = param(randn<double>({3, 5}, gen));
    auto w = param(randn<double>({5}, gen));
    // elementwise work on both sides of the barrier, and a reduction over its output
    xgrad_test::expect_gradcheck([&] { return tanh(softmax(x * w + 0.5, 1)) * x; }, {x, w}, gen, "softmax in chain");
    xgrad_test::expect_gradcheck([&] { return sum(log_softmax(x * w, 0) * x, 1); }, {x, w}, gen, "log_softmax in chain");
}

BOOST_AUTO_TEST_CASE(rows_sum_to_one_and_large_inputs_stay_finite) {
    // exp(1000) overflows; subtracting the maximum first keeps everything finite
    tensor<double> x({2, 3}, {1000, 1000, -1000, -5e4, 0, 5e4});
    const auto y = eval(softmax(x, 1));
    BOOST_TEST(y(0, 0) == 0.5);
    BOOST_TEST(y(0, 1) == 0.5);
    BOOST_TEST(y(0, 2) == 0.0);
    BOOST_TEST(y(1, 2) == 1.0);
    const auto ly = eval(log_softmax(x, 1));
    BOOST_TEST(ly(0, 0) == -std::log(2.0), boost::test_tools::tolerance(1e-15));
    BOOST_TEST(ly(1, 0) == -1e5);
    BOOST_TEST(ly(1, 2) == 0.0);

    rng gen(13);
    const auto z = eval(softmax(randn<float>({4, 33}, gen), 1));
    for (std::size_t r = 0; r < 4; ++r) {
        double s = 0;
        for (std::size_t c = 0; c < 33; ++c) s += z(r, c);
        BOOST_TEST(s == 1.0, boost::test_tools::tolerance(1e-6));
    }
}

BOOST_AUTO_TEST_CASE(bad_axis_and_rank) {
    tensor<float> x({2, 3});
    xgrad_test::check_throws<index_error>([&] { softmax(x, 2); }, {"softmax", "axis 2", "rank 2"});
    xgrad_test::check_throws<index_error>([&] { log_softmax(x, -3); }, {"log_softmax", "axis -3"});
    xgrad_test::check_throws<shape_error>([&] { softmax(full<float>({}, 1.f)); }, {"softmax", "shape {}"});
}

BOOST_AUTO_TEST_CASE(large_inputs_split_across_threads_agree_with_a_plain_loop) {
    // big enough that the rows are shared between the pool's threads
    rng gen(14);
    for (const auto& [s, axis] : {std::pair{shape_t{96, 700}, std::size_t{1}}, std::pair{shape_t{4, 50, 300}, std::size_t{1}}}) {
        auto x = param(randn<double>(s, gen, 0.0, 3.0));
        const auto g = randn<double>(s, gen);
        const auto y = eval(softmax(x, static_cast<std::ptrdiff_t>(axis)));
        backward(softmax(x, static_cast<std::ptrdiff_t>(axis)), g);
        const auto l = detail::layout_along(s, axis);
        double worst_y = 0, worst_dx = 0;
        for (std::size_t o = 0; o < l.outer; ++o)
            for (std::size_t k = 0; k < l.inner; ++k) {
                auto at = [&](std::size_t i) { return (o * l.extent + i) * l.inner + k; };
                double m = -1e300, z = 0, gy = 0;
                for (std::size_t i = 0; i < l.extent; ++i) m = std::max(m, x.value().data()[at(i)]);
                for (std::size_t i = 0; i < l.extent; ++i) z += std::exp(x.value().data()[at(i)] - m);
                for (std::size_t i = 0; i < l.extent; ++i) gy += g.data()[at(i)] * std::exp(x.value().data()[at(i)] - m) / z;
                for (std::size_t i = 0; i < l.extent; ++i) {
                    const double p = std::exp(x.value().data()[at(i)] - m) / z;
                    worst_y = std::max(worst_y, std::fabs(y.data()[at(i)] - p));
                    worst_dx = std::max(worst_dx, std::fabs(x.grad().data()[at(i)] - p * (g.data()[at(i)] - gy)));
                }
            }
        BOOST_TEST(worst_y < 1e-14, to_string(s) << ": y off by " << worst_y);
        BOOST_TEST(worst_dx < 1e-13, to_string(s) << ": dx off by " << worst_dx);
    }
}
