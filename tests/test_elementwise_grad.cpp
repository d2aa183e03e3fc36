#define BOOST_TEST_MODULE elementwise_grad
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <functional>

#include <xgrad/xgrad.hpp>

// Every elementwise op and reduction goes through the one generic checker (float64 central
// differences) on random shapes: plain, broadcasting, size-1 and size-0 dimensions.

namespace {

using P = xgrad::parameter<double>;

xgrad::shape_t random_shape(xgrad::rng& g, std::size_t max_rank = 3, std::size_t max_extent = 5) {
    xgrad::shape_t s(g.below(max_rank) + 1);
    for (auto& d : s) d = 1 + g.below(max_extent);
    return s;
}

/// A shape that broadcasts against s: some dims set to 1, maybe leading dims dropped.
xgrad::shape_t broadcast_partner(xgrad::rng& g, const xgrad::shape_t& s) {
    xgrad::shape_t t(s.begin() + static_cast<std::ptrdiff_t>(g.below(s.size())), s.end());
    for (auto& d : t)
        if (g.below(2) == 0) d = 1;
    return t;
}

/// Values kept away from kinks and singularities of the op under test.
P make_param(xgrad::rng& g, const xgrad::shape_t& s, double lo, double hi) {
    auto t = xgrad::uniform<double>(s, g, lo, hi);
    if (lo < 0 && hi > 0)  // keep |x| >= 0.05 so abs/relu/max are differentiable at the samples
        for (std::size_t i = 0; i < t.size(); ++i)
            if (std::abs(t.data()[i]) < 0.05) t.data()[i] += 0.1;
    return xgrad::param(t);
}

void expect_ok(const xgrad::gradcheck_result& r, const std::string& what) {
    BOOST_TEST_INFO(what);
    BOOST_TEST(r.ok, r.report);
    BOOST_TEST(r.checked > 0u);
}

template <class F>
void check_unary(const std::string& name, F f, double lo, double hi) {
    xgrad::rng g(std::hash<std::string>{}(name));
    for (int trial = 0; trial < 4; ++trial) {
        auto x = make_param(g, random_shape(g), lo, hi);
        expect_ok(xgrad::gradcheck([&] { return f(x); }, {x}, g), name + " shape " + xgrad::to_string(x.shape()));
    }
}

template <class F>
void check_binary(const std::string& name, F f, double lo, double hi, double blo, double bhi) {
    xgrad::rng g(std::hash<std::string>{}(name));
    for (int trial = 0; trial < 6; ++trial) {
        auto s = random_shape(g);
        auto t = trial % 2 ? broadcast_partner(g, s) : s;
        // alternate which side broadcasts
        auto a = make_param(g, trial % 3 == 2 ? t : s, lo, hi);
        auto b = make_param(g, trial % 3 == 2 ? s : t, blo, bhi);
        expect_ok(xgrad::gradcheck([&] { return f(a, b); }, {a, b}, g),
                  name + " shapes " + xgrad::to_string(a.shape()) + " and " + xgrad::to_string(b.shape()));
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(unary_ops) {
    check_unary("neg", [](auto& x) { return -x; }, -2, 2);
    check_unary("neg_fn", [](auto& x) { return xgrad::neg(x); }, -2, 2);
    check_unary("abs", [](auto& x) { return xgrad::abs(x); }, -2, 2);
    check_unary("exp", [](auto& x) { return xgrad::exp(x); }, -2, 2);
    check_unary("log", [](auto& x) { return xgrad::log(x); }, 0.2, 3);
    check_unary("sqrt", [](auto& x) { return xgrad::sqrt(x); }, 0.2, 3);
    check_unary("square", [](auto& x) { return xgrad::square(x); }, -2, 2);
    check_unary("tanh", [](auto& x) { return xgrad::tanh(x); }, -2, 2);
    check_unary("sigmoid", [](auto& x) { return xgrad::sigmoid(x); }, -3, 3);
    check_unary("relu", [](auto& x) { return xgrad::relu(x); }, -2, 2);
    check_unary("leaky_relu", [](auto& x) { return xgrad::leaky_relu(x, 0.2); }, -2, 2);
    check_unary("gelu", [](auto& x) { return xgrad::gelu(x); }, -3, 3);
    check_unary("pow", [](auto& x) { return xgrad::pow(x, 2.5); }, 0.2, 2);
}

BOOST_AUTO_TEST_CASE(binary_ops_with_broadcasting) {
    check_binary("add", [](auto& a, auto& b) { return a + b; }, -2, 2, -2, 2);
    check_binary("sub", [](auto& a, auto& b) { return a - b; }, -2, 2, -2, 2);
    check_binary("mul", [](auto& a, auto& b) { return a * b; }, -2, 2, -2, 2);
    check_binary("div", [](auto& a, auto& b) { return a / b; }, -2, 2, 0.5, 2);
    check_binary("maximum", [](auto& a, auto& b) { return xgrad::maximum(a, b); }, -2, 2, -2, 2);
    check_binary("minimum", [](auto& a, auto& b) { return xgrad::minimum(a, b); }, -2, 2, -2, 2);
}

BOOST_AUTO_TEST_CASE(scalar_operands) {
    check_unary("scalar_right", [](auto& x) { return (x * 3.0 - 1.0) / 2.0 + 0.5; }, -2, 2);
    check_unary("scalar_left", [](auto& x) { return 2.0 / x + 3.0 * x - 1.0 - x; }, 0.5, 2);
}

BOOST_AUTO_TEST_CASE(reductions_over_all_and_axes) {
    xgrad::rng g(11);
    for (int trial = 0; trial < 4; ++trial) {
        xgrad::shape_t s = {2 + g.below(3), 1 + g.below(4), 3};
        auto x = make_param(g, s, -2, 2);
        auto w = make_param(g, {3}, -2, 2);
        expect_ok(xgrad::gradcheck([&] { return xgrad::sum(x * w); }, {x, w}, g), "sum all");
        expect_ok(xgrad::gradcheck([&] { return xgrad::mean(xgrad::tanh(x) + w); }, {x, w}, g), "mean all");
        expect_ok(xgrad::gradcheck([&] { return xgrad::max(x * w); }, {x, w}, g), "max all");
        expect_ok(xgrad::gradcheck([&] { return xgrad::sum(x * w, 0); }, {x, w}, g), "sum axis 0");
        expect_ok(xgrad::gradcheck([&] { return xgrad::sum(x, {0, 2}, true) * w; }, {x, w}, g), "sum keepdims");
        expect_ok(xgrad::gradcheck([&] { return xgrad::mean(x, -1) * 2.0; }, {x}, g), "mean last axis");
        expect_ok(xgrad::gradcheck([&] { return xgrad::max(x, 1); }, {x}, g), "max axis 1");
        expect_ok(xgrad::gradcheck([&] { return xgrad::max(x, {0, 1}, true) + x; }, {x}, g), "max keepdims");
    }
}

BOOST_AUTO_TEST_CASE(composite_chains_and_reused_leaves) {
    xgrad::rng g(5);
    auto x = make_param(g, {4, 3}, -2, 2);
    auto w = make_param(g, {4, 3}, -2, 2);
    auto b = make_param(g, {1}, -1, 1);
    auto c = make_param(g, {3}, -1, 1);
    // the seed expression, with x used twice
    expect_ok(xgrad::gradcheck([&] { return xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)); }, {x, w, b}, g),
              "seed chain");
    expect_ok(xgrad::gradcheck([&] { return x * x * x + c; }, {x, c}, g), "x*x*x");
    // reductions nested inside elementwise work, and elementwise work after a reduction
    expect_ok(xgrad::gradcheck([&] { return xgrad::exp(xgrad::sum(x * c, 1) / 4.0) * xgrad::mean(w, 1); }, {x, c, w}, g),
              "nested reductions");
    expect_ok(xgrad::gradcheck([&] { return xgrad::sum(x) * xgrad::sum(x * w); }, {x, w}, g), "product of sums");
}

BOOST_AUTO_TEST_CASE(size_one_and_size_zero_dimensions) {
    xgrad::rng g(9);
    auto x = make_param(g, {1, 1}, -2, 2);
    auto y = make_param(g, {3, 1}, -2, 2);
    expect_ok(xgrad::gradcheck([&] { return xgrad::tanh(x) * y; }, {x, y}, g), "size-1 dims");

    auto e = xgrad::param(xgrad::zeros<double>({0, 3}));
    auto c = xgrad::param(xgrad::ones<double>({3}));
    auto r = xgrad::eval(e * c);
    BOOST_TEST((r.shape() == xgrad::shape_t{0, 3}));
    BOOST_TEST(xgrad::backward(xgrad::sum(e * c)) == 0.0);
    for (double v : c.grad().to_vector()) BOOST_TEST(v == 0.0);  // empty sum: zero gradient
    BOOST_TEST(e.grad().size() == 0u);
    auto s = xgrad::eval(xgrad::sum(e, 0));
    BOOST_TEST((s.to_vector() == std::vector<double>{0, 0, 0}));
    BOOST_TEST(std::isnan(xgrad::eval(xgrad::mean(e)).item()));
    BOOST_CHECK_THROW(xgrad::max(e), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(float32_matches_float64) {
    xgrad::rng g(21);
    auto xd = xgrad::randn<double>({1000}, g);
    auto xf = xd.astype<float>();
    auto pd = xgrad::param(xd);
    auto pf = xgrad::param(xf);
    const double vd = xgrad::backward(xgrad::sum(xgrad::gelu(pd) * xgrad::sigmoid(pd)));
    const float vf = xgrad::backward(xgrad::sum(xgrad::gelu(pf) * xgrad::sigmoid(pf)));
    BOOST_TEST(vf == vd, boost::test_tools::tolerance(1e-4));
    for (std::size_t i = 0; i < 1000; ++i)
        BOOST_TEST(static_cast<double>(pf.grad()(i)) == pd.grad()(i), boost::test_tools::tolerance(1e-4));
}
