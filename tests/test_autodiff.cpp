#define BOOST_TEST_MODULE autodiff
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include <xgrad/ops/fork.hpp>
#include <xgrad/xgrad.hpp>

namespace {
double seed_value_ref(const std::vector<float>& x, const std::vector<float>& w, float b) {
    double s = 0;
    for (std::size_t i = 0; i < x.size(); ++i) s += std::tanh(double(x[i]) * w[i] + b) / (1 + std::exp(-double(x[i])));
    return s;
}
/// float32 against a float64 reference: relative, with an absolute floor for values near 0
bool close(double a, double b) { return std::abs(a - b) <= 1e-5 + 1e-4 * std::abs(b); }
struct threads_guard {
    std::size_t saved = xgrad::num_threads();
    ~threads_guard() { xgrad::set_num_threads(saved); }
};
}  // namespace

BOOST_AUTO_TEST_CASE(backward_accumulates_like_pytorch) {
    xgrad::rng g(1);
    auto x = xgrad::param(xgrad::randn<double>({7}, g));
    auto loss = xgrad::sum(xgrad::square(x));  // d/dx = 2x
    BOOST_TEST(xgrad::backward(loss) == xgrad::eval(loss).item());
    xgrad::backward(loss);
    for (std::size_t i = 0; i < 7; ++i) BOOST_TEST(x.grad()(i) == 4 * x.value()(i), boost::test_tools::tolerance(1e-12));
    x.zero_grad();
    for (double v : x.grad().to_vector()) BOOST_TEST(v == 0.0);
    x.grad().fill(123.0);  // stale memory must not leak into the next pass after zero_grad
    x.zero_grad();
    xgrad::backward(loss);
    for (std::size_t i = 0; i < 7; ++i) BOOST_TEST(x.grad()(i) == 2 * x.value()(i), boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(a_leaf_used_twice_gets_both_contributions) {
    xgrad::rng g(2);
    auto x = xgrad::param(xgrad::randn<double>({100}, g));
    xgrad::backward(xgrad::sum(x * x + xgrad::exp(x)));  // 2x + e^x
    for (std::size_t i = 0; i < 100; ++i)
        BOOST_TEST(x.grad()(i) == 2 * x.value()(i) + std::exp(x.value()(i)), boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(frozen_and_detached_leaves_get_no_gradient) {
    xgrad::rng g(3);
    auto a = xgrad::param(xgrad::randn<double>({5}, g));
    auto b = xgrad::param(xgrad::randn<double>({5}, g));
    b.requires_grad(false);
    xgrad::backward(xgrad::sum(a * b));
    for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(a.grad()(i) == b.value()(i));
    for (double v : b.grad().to_vector()) BOOST_TEST(v == 0.0);
    a.zero_grad();
    xgrad::backward(xgrad::sum(xgrad::detach(a) * a));  // only the second factor carries gradient
    for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(a.grad()(i) == a.value()(i));
}

BOOST_AUTO_TEST_CASE(upstream_gradient_and_broadcast_leaf) {
    auto x = xgrad::param(xgrad::tensor<double>({2, 3}, {1, 2, 3, 4, 5, 6}));
    auto b = xgrad::param(xgrad::tensor<double>({3}, {10, 20, 30}));
    auto up = xgrad::tensor<double>({2, 3}, {1, 1, 1, 2, 2, 2});
    xgrad::backward(x * b, up);
    BOOST_TEST((b.grad().to_vector() == std::vector<double>{1 + 8, 2 + 10, 3 + 12}));
    BOOST_TEST((x.grad().to_vector() == std::vector<double>{10, 20, 30, 20, 40, 60}));
    BOOST_CHECK_THROW(xgrad::backward(x * b, xgrad::ones<double>({4})), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(seed_expression_matches_a_scalar_reference_on_one_and_two_threads) {
    threads_guard guard;
    xgrad::rng g(4);
    const std::size_t n = (1u << 17) + 13;  // large enough to split, odd tail
    auto xt = xgrad::randn<float>({n}, g), wt = xgrad::randn<float>({n}, g);
    const double ref = seed_value_ref(xt.to_vector(), wt.to_vector(), 0.25f);
    std::vector<float> gx1, gb1;
    for (std::size_t threads : {1u, 2u}) {
        xgrad::set_num_threads(threads);
        auto x = xgrad::param(xt), w = xgrad::param(wt);
        auto b = xgrad::param(xgrad::full<float>({1}, 0.25f));
        const float v = xgrad::backward(xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)));
        BOOST_TEST(v == ref, boost::test_tools::tolerance(1e-4));
        double gb = 0;
        for (std::size_t i = 0; i < n; i += 997) {
            const double xi = xt(i), wi = wt(i), t = std::tanh(xi * wi + 0.25), s = 1 / (1 + std::exp(-xi));
            BOOST_TEST(close(x.grad()(i), (1 - t * t) * s * wi + t * s * (1 - s)));
            BOOST_TEST(close(w.grad()(i), (1 - t * t) * s * xi));
        }
        for (std::size_t i = 0; i < n; ++i) {
            const double xi = xt(i), t = std::tanh(xi * wt(i) + 0.25);
            gb += (1 - t * t) / (1 + std::exp(-xi));
        }
        BOOST_TEST(b.grad().item() == gb, boost::test_tools::tolerance(1e-4));
    }
}

BOOST_AUTO_TEST_CASE(fused_backward_allocates_no_intermediates) {
    xgrad::rng g(5);
    auto x = xgrad::param(xgrad::randn<float>({4096}, g));
    auto w = xgrad::param(xgrad::randn<float>({4096}, g));
    auto b = xgrad::param(xgrad::zeros<float>({1}));
    auto count = [] { return xgrad::detail::allocation_count().load(); };
    auto short_chain = xgrad::sum(x * w);
    auto long_chain = xgrad::sum(xgrad::tanh(xgrad::exp(x * w + b) / (xgrad::sigmoid(x) + 1.0f)) * xgrad::gelu(w) - x);
    xgrad::backward(short_chain);  // first pass may zero-fill
    xgrad::backward(long_chain);
    auto c0 = count();
    xgrad::backward(short_chain);
    auto c1 = count();
    xgrad::backward(long_chain);
    auto c2 = count();
    // one scalar for the value; nothing per node of the chain
    BOOST_TEST(c1 - c0 == 1u);
    BOOST_TEST(c2 - c1 == 1u);
}

BOOST_AUTO_TEST_CASE(views_are_read_in_place) {
    auto m = xgrad::arange<double>(12).reshape({3, 4});
    auto t = m.transpose(0, 1);  // {4, 3}, strided
    auto v = xgrad::eval(t * 2.0 + xgrad::tensor<double>({3}, {0, 100, 200}));
    BOOST_TEST((v.shape() == xgrad::shape_t{4, 3}));
    BOOST_TEST(v(1, 2) == 2 * 9.0 + 200);
    auto p = xgrad::param(t);  // a parameter over a view: gradient is contiguous
    xgrad::backward(xgrad::sum(p * p));
    BOOST_TEST(p.grad()(3, 1) == 2 * 7.0);
}

BOOST_AUTO_TEST_CASE(expressions_kept_in_auto_variables_do_not_dangle) {
    auto make = [] {
        xgrad::rng g(6);
        auto p = xgrad::param(xgrad::ones<double>({3}));
        auto e = xgrad::sum(xgrad::square(p * 2.0) + xgrad::randn<double>({3}, g) * 0.0);  // temporaries
        return std::make_pair(p, e);
    };
    auto [p, e] = make();
    BOOST_TEST(xgrad::backward(e) == 12.0);
    BOOST_TEST((p.grad().to_vector() == std::vector<double>{8, 8, 8}));
    // an expression re-evaluated after its parameters changed sees the new values
    p.value().fill(3.0);
    BOOST_TEST(xgrad::eval(e).item() == 108.0);
}

BOOST_AUTO_TEST_CASE(incompatible_shapes_name_both_shapes_and_the_op) {
    auto a = xgrad::zeros<float>({2, 3});
    auto b = xgrad::zeros<float>({4});
    BOOST_CHECK_EXCEPTION(a + b, xgrad::shape_error, [](const xgrad::shape_error& e) {
        const std::string m = e.what();
        return m.find("add") != std::string::npos && m.find("{2, 3}") != std::string::npos &&
               m.find("{4}") != std::string::npos;
    });
    BOOST_CHECK_EXCEPTION(xgrad::sum(a, 2), xgrad::index_error,
                          [](const auto& e) { return std::string(e.what()).find("axis 2") != std::string::npos; });
    BOOST_CHECK_THROW(xgrad::mean(a, {0, -2}), xgrad::index_error);  // repeated axis
}

// Gradient-ready hooks (autodiff/hooks.hpp): once per pass per reached parameter, after its
// last contribution, the last layer's parameters before the first layer's.
BOOST_AUTO_TEST_CASE(gradient_ready_hooks_fire_once_after_the_last_contribution) {
    xgrad::rng g(3);
    auto x = xgrad::randn<float>({6, 5}, g);
    auto y = xgrad::tensor<std::int64_t>::uninitialized({6});
    for (std::size_t i = 0; i < 6; ++i) y(i) = static_cast<std::int64_t>(i % 3);
    auto w1 = xgrad::param(xgrad::randn<float>({4, 5}, g), "w1"), b1 = xgrad::param(xgrad::randn<float>({4}, g), "b1");
    auto w2 = xgrad::param(xgrad::randn<float>({3, 4}, g), "w2"), b2 = xgrad::param(xgrad::randn<float>({3}, g), "b2");
    auto unused = xgrad::param(xgrad::ones<float>({2}), "unused");
    const std::vector<xgrad::parameter<float>> ps{w1, b1, w2, b2, unused};
    std::vector<std::size_t> order;
    std::vector<std::vector<float>> at_fire(ps.size());
    auto h = xgrad::on_gradient_ready(ps, [&](std::size_t i) {
        order.push_back(i);
        at_fire[i] = ps[i].grad().to_vector();  // must already be the final gradient
    });
    auto loss = [&] { return xgrad::cross_entropy(xgrad::linear(xgrad::tanh(xgrad::linear(x, w1, b1)), w2, b2), y); };
    for (int pass = 0; pass < 2; ++pass) {  // the second pass accumulates onto the first
        order.clear();
        xgrad::backward(loss());
        BOOST_TEST_REQUIRE(order.size() == 4u);  // `unused` is not reached: no call
        BOOST_TEST(std::set<std::size_t>(order.begin(), order.end()) == (std::set<std::size_t>{0, 1, 2, 3}));
        const auto pos = [&](std::size_t i) { return std::find(order.begin(), order.end(), i) - order.begin(); };
        BOOST_TEST(std::max(pos(2), pos(3)) < std::min(pos(0), pos(1)));  // layer 2 before layer 1
        for (std::size_t i = 0; i < 4; ++i) BOOST_TEST(at_fire[i] == ps[i].grad().to_vector(), boost::test_tools::per_element());
    }
    // a weight used twice (tied): one call, after both contributions
    auto t = xgrad::param(xgrad::randn<float>({5, 5}, g), "tied");
    std::vector<float> tied_at_fire;
    int tied_calls = 0;
    auto ht = xgrad::on_gradient_ready(std::vector{t}, [&](std::size_t) {
        ++tied_calls;
        tied_at_fire = t.grad().to_vector();
    });
    xgrad::backward(xgrad::sum(xgrad::matmul(xgrad::tanh(xgrad::matmul(x, t)), t) * t.value().slice(0, 0, 1)));
    BOOST_TEST(tied_calls == 1);
    BOOST_TEST(tied_at_fire == t.grad().to_vector(), boost::test_tools::per_element());
    // an elementwise use and a barrier use of the same parameter in one expression
    t.zero_grad();
    tied_calls = 0;
    xgrad::backward(xgrad::sum(xgrad::matmul(x, t)) + xgrad::sum(xgrad::square(t)));
    BOOST_TEST(tied_calls == 1);
    BOOST_TEST(tied_at_fire == t.grad().to_vector(), boost::test_tools::per_element());
    // behind a fork: the handles push into the shared subgraph once
    t.zero_grad();
    tied_calls = 0;
    {
        auto [a1, a2] = xgrad::fork<2>(xgrad::matmul(x, t));
        xgrad::backward(xgrad::sum(xgrad::tanh(std::move(a1)) * std::move(a2)));
    }
    BOOST_TEST(tied_calls == 1);
    BOOST_TEST(tied_at_fire == t.grad().to_vector(), boost::test_tools::per_element());
    // removed hooks are not called
    h.reset();
    ht.reset();
    order.clear();
    tied_calls = 0;
    xgrad::backward(loss() + xgrad::sum(t));
    BOOST_TEST(order.empty());
    BOOST_TEST(tied_calls == 0);
    BOOST_CHECK_THROW((void)xgrad::on_gradient_ready(ps, {}), xgrad::value_error);
}
