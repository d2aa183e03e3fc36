// The device backend suite: every check computes the same expression on a reference device and
// on the device under test and compares values and gradients to float32 tolerance. Included by
// test_thrust_backend.cpp (reference: the CPU backend; thrust_omp, and thrust_cpp for the
// subset) and by cuda/test_cuda_backend.cu (reference: thrust_cpp, itself checked against the
// CPU backend by the former, which keeps the CPU's SIMD loops out of the nvcc build); the
// includer defines the Boost.Test module and, before including it:
//   device_suite::reference  the device results are compared with
//   device_suite::full       devices that run every check
//   device_suite::subset     devices that run the core checks
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <xgrad/device.hpp>

#include "device_test_support.hpp"

namespace device_suite {

using cpu = xgrad::device::cpu;
using xgrad::shape_t;

using device_test::expect_close;
using device_test::host;

/// Values in [lo, hi), kept at least 0.05 away from 0 when the range spans it (abs, relu, max
/// are not differentiable there).
template <class T = float>
xgrad::tensor<T> data(const shape_t& s, std::uint64_t seed, double lo = -2, double hi = 2) {
    xgrad::rng g(seed);
    auto t = xgrad::uniform<T>(s, g, T(lo), T(hi));
    if (lo < 0 && hi > 0)
        for (std::size_t i = 0; i < t.size(); ++i)
            if (std::abs(t.data()[i]) < T(0.05)) t.data()[i] += T(0.1);
    return t;
}

/// Tolerances of a comparison: elementwise results differ by a few ulp (scalar vs SIMD math);
/// sums of many terms also by the summation order, so they get an absolute term.
struct tolerance {
    double rtol = 2e-5, atol = 2e-6;
};
inline constexpr tolerance summed{1e-4, 5e-5};

/// eval(f(inputs...)) on the reference and on D agree.
template <class D, class F, class... H>
void compare_eval(const std::string& what, tolerance tol, F f, const H&... h) {
    const auto want = xgrad::eval(f(xgrad::to<reference>(h)...));
    const auto got = xgrad::eval(f(xgrad::to<D>(h)...));
    static_assert(std::is_same_v<typename decltype(got)::device_type, D>, "the result must stay on the device");
    BOOST_TEST_INFO(what);
    BOOST_TEST(got.shape() == want.shape());
    expect_close(host(got), host(want), what, tol.rtol, tol.atol);
}
template <class D, class F, class... H>
    requires std::invocable<F, const H&...>
void compare_eval(const std::string& what, F f, const H&... h) {
    compare_eval<D>(what, tolerance{}, f, h...);
}

/// backward(f(params...)) on the reference and on D agree: the value and every parameter's
/// gradient.
template <class D, class F, class... H>
void compare_backward(const std::string& what, F f, const H&... h) {
    auto pc = std::tuple{xgrad::param(xgrad::to<reference>(h.clone()))...};
    auto pd = std::tuple{xgrad::param(xgrad::to<D>(h))...};
    const double vc = std::apply([&](auto&... p) { return xgrad::backward(f(p...)); }, pc);
    const double vd = std::apply([&](auto&... p) { return xgrad::backward(f(p...)); }, pd);
    BOOST_TEST_INFO(what);
    BOOST_TEST(std::abs(vd - vc) <= 1e-4 + 1e-4 * std::abs(vc), what << ": value " << vd << ", want " << vc);
    std::apply(
        [&](auto&... c) {
            std::apply(
                [&](auto&... d) {
                    int i = 0;
                    ((expect_close(host(d.grad()), host(c.grad()), what + ": gradient " + std::to_string(i++), 1e-4,
                                   1e-5)),
                     ...);
                },
                pd);
        },
        pc);
}

/// Restores the host systems' parallel grain (tests lower it to split small loops into lanes).
struct grain_guard {
    std::size_t saved = xgrad::detail::thrust_backend::host_parallel_grain();
    ~grain_guard() { xgrad::detail::thrust_backend::host_parallel_grain() = saved; }
};

}  // namespace device_suite

// --- tensors --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(tensor_copies_views_and_fills, D, device_suite::subset) {
    using namespace device_suite;
    const auto h = xgrad::arange<float>(24).reshape({2, 3, 4});
    const auto t = xgrad::to<D>(h);
    BOOST_TEST(t.shape() == (shape_t{2, 3, 4}));
    BOOST_TEST(t.strides() == h.strides());
    BOOST_TEST(host(t) == h.to_vector());
    BOOST_TEST(host(xgrad::tensor<float, D>({2, 2}, {1, 2, 3, 4})) == (std::vector<float>{1, 2, 3, 4}));

    // views share storage and read like the host's views
    BOOST_TEST(host(t.transpose(0, 2)) == h.transpose(0, 2).to_vector());
    BOOST_TEST(host(t.permute({1, 2, 0})) == h.permute({1, 2, 0}).to_vector());
    BOOST_TEST(host(t.slice(2, 1, 4, 2)) == h.slice(2, 1, 4, 2).to_vector());
    BOOST_TEST(host(t.select(1, -1)) == h.select(1, -1).to_vector());
    BOOST_TEST(host(t.unsqueeze(1)) == h.unsqueeze(1).to_vector());
    BOOST_TEST(host(t.transpose(0, 1).reshape({-1})) == h.transpose(0, 1).reshape({-1}).to_vector());
    BOOST_TEST(t.select(0, 1).select(0, 2).select(0, 3).item() == 23.0f);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(tensor_in_place_and_conversions, D, device_suite::subset) {
    using namespace device_suite;
    auto t = xgrad::zeros<float, D>({3, 4});
    BOOST_TEST(host(t) == std::vector<float>(12, 0.0f));
    t.slice(1, 1, 3).fill(7);  // strided fill through a view
    BOOST_TEST(host(t) == (std::vector<float>{0, 7, 7, 0, 0, 7, 7, 0, 0, 7, 7, 0}));
    t.assign(xgrad::to<D>(xgrad::tensor<float>({4}, {1, 2, 3, 4})));  // broadcast rows
    BOOST_TEST(host(t) == (std::vector<float>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}));
    t.assign(t.transpose(0, 1).transpose(0, 1).slice(0, 0, 1));  // overlapping source
    BOOST_TEST(host(t) == (std::vector<float>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}));
    auto c = t.clone();
    c.fill(5);
    BOOST_TEST(host(t)[0] == 1.0f);
    auto v = t.reshape({2, 6});  // contiguous: a view sharing storage
    v.fill(9);
    BOOST_TEST(host(t)[11] == 9.0f);
    BOOST_TEST(host(t.template astype<int>()) == std::vector<int>(12, 9));
    BOOST_TEST(host(xgrad::ones<double, D>({2})) == (std::vector<double>{1, 1}));
    BOOST_TEST(host(xgrad::full<float, D>({2}, 2.5f)) == (std::vector<float>{2.5f, 2.5f}));
    BOOST_TEST((xgrad::full<float, D>({}, 3.0f).item()) == 3.0f);
    BOOST_TEST((xgrad::tensor<float, D>().size()) == 0u);
    BOOST_TEST(host(xgrad::zeros<float, D>({0, 3})).empty());

    std::ostringstream os;
    os << xgrad::tensor<float, D>({2}, {1, 2});
    BOOST_TEST(os.str() == std::string("tensor([1, 2], shape={2}, device=") + D::name + ")");

    BOOST_CHECK_THROW(t.item(), xgrad::shape_error);
    BOOST_CHECK_THROW(t.reshape({5, -1}), xgrad::shape_error);
    BOOST_CHECK_THROW(t.slice(0, 4, 5), xgrad::index_error);
    BOOST_CHECK_THROW((t.assign(xgrad::zeros<float, D>({2}))), xgrad::shape_error);
    BOOST_CHECK_THROW((xgrad::tensor<float, D>({2}, {1, 2, 3})), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(parameters_move_to_the_device, D, device_suite::subset) {
    using namespace device_suite;
    auto p = xgrad::param(xgrad::tensor<float>({2}, {1, 2}), "w");
    p.requires_grad(false);
    auto q = xgrad::to<D>(p);
    static_assert(std::is_same_v<decltype(q), typename xgrad::parameter<float, D>>, "to<D> gives a device parameter");
    BOOST_TEST(q.name() == "w");
    BOOST_TEST(!q.requires_grad());
    BOOST_TEST(host(q.value()) == (std::vector<float>{1, 2}));
    BOOST_TEST(host(q.grad()) == (std::vector<float>{0, 0}));
    BOOST_TEST(xgrad::to<D>(q).same(q));
    BOOST_TEST(xgrad::to<cpu>(q).value().to_vector() == p.value().to_vector());
}

// --- elementwise ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(every_unary_op_matches_the_cpu, D, device_suite::full) {
    using namespace device_suite;
    const auto x = data({3, 5, 7}, 1);
    const auto pos = data({3, 5, 7}, 2, 0.2, 3);
    const auto xt = x.transpose(0, 2);  // a strided view as input
    compare_eval<D>("neg", [](const auto& a) { return -a; }, x);
    compare_eval<D>("abs", [](const auto& a) { return xgrad::abs(a); }, x);
    compare_eval<D>("exp", [](const auto& a) { return xgrad::exp(a); }, x);
    compare_eval<D>("log", [](const auto& a) { return xgrad::log(a); }, pos);
    compare_eval<D>("sqrt", [](const auto& a) { return xgrad::sqrt(a); }, pos);
    compare_eval<D>("square", [](const auto& a) { return xgrad::square(a); }, x);
    compare_eval<D>("tanh", [](const auto& a) { return xgrad::tanh(a); }, xt);
    compare_eval<D>("sigmoid", [](const auto& a) { return xgrad::sigmoid(a); }, x);
    compare_eval<D>("relu", [](const auto& a) { return xgrad::relu(a); }, xt);
    compare_eval<D>("leaky_relu", [](const auto& a) { return xgrad::leaky_relu(a, 0.2); }, x);
    compare_eval<D>("gelu", [](const auto& a) { return xgrad::gelu(a); }, x);
    compare_eval<D>("pow", [](const auto& a) { return xgrad::pow(a, 2.5); }, pos);

    // and their derivatives, through the fused backward
    compare_backward<D>("d neg", [](auto& a) { return xgrad::sum(-a); }, x);
    compare_backward<D>("d abs", [](auto& a) { return xgrad::sum(xgrad::abs(a)); }, x);
    compare_backward<D>("d exp", [](auto& a) { return xgrad::sum(xgrad::exp(a)); }, x);
    compare_backward<D>("d log", [](auto& a) { return xgrad::sum(xgrad::log(a)); }, pos);
    compare_backward<D>("d sqrt", [](auto& a) { return xgrad::sum(xgrad::sqrt(a)); }, pos);
    compare_backward<D>("d square", [](auto& a) { return xgrad::sum(xgrad::square(a)); }, x);
    compare_backward<D>("d tanh", [](auto& a) { return xgrad::sum(xgrad::tanh(a)); }, x);
    compare_backward<D>("d sigmoid", [](auto& a) { return xgrad::sum(xgrad::sigmoid(a)); }, x);
    compare_backward<D>("d relu", [](auto& a) { return xgrad::sum(xgrad::relu(a)); }, x);
    compare_backward<D>("d leaky_relu", [](auto& a) { return xgrad::sum(xgrad::leaky_relu(a, 0.2)); }, x);
    compare_backward<D>("d gelu", [](auto& a) { return xgrad::sum(xgrad::gelu(a)); }, x);
    compare_backward<D>("d pow", [](auto& a) { return xgrad::sum(xgrad::pow(a, 2.5)); }, pos);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(every_binary_op_broadcasts_like_the_cpu, D, device_suite::full) {
    using namespace device_suite;
    const std::vector<std::pair<shape_t, shape_t>> shapes{
        {{4, 5}, {4, 5}}, {{4, 5}, {5}}, {{4, 1}, {1, 5}}, {{2, 3, 4}, {3, 1}}, {{}, {3}}, {{6}, {}}};
    std::uint64_t seed = 10;
    for (const auto& [sa, sb] : shapes) {
        const auto a = data(sa, ++seed);
        const auto b = data(sb, ++seed, 0.5, 2);  // keeps division away from 0
        const std::string s = " " + xgrad::to_string(sa) + " with " + xgrad::to_string(sb);
        compare_eval<D>("add" + s, [](const auto& x, const auto& y) { return x + y; }, a, b);
        compare_eval<D>("sub" + s, [](const auto& x, const auto& y) { return x - y; }, a, b);
        compare_eval<D>("mul" + s, [](const auto& x, const auto& y) { return x * y; }, a, b);
        compare_eval<D>("div" + s, [](const auto& x, const auto& y) { return x / y; }, a, b);
        compare_eval<D>("maximum" + s, [](const auto& x, const auto& y) { return xgrad::maximum(x, y); }, a, b);
        compare_eval<D>("minimum" + s, [](const auto& x, const auto& y) { return xgrad::minimum(x, y); }, b, a);
        compare_backward<D>("d add" + s, [](auto& x, auto& y) { return xgrad::sum(x + y); }, a, b);
        compare_backward<D>("d sub" + s, [](auto& x, auto& y) { return xgrad::sum(x - y); }, a, b);
        compare_backward<D>("d mul" + s, [](auto& x, auto& y) { return xgrad::sum(x * y); }, a, b);
        compare_backward<D>("d div" + s, [](auto& x, auto& y) { return xgrad::sum(x / y); }, a, b);
        compare_backward<D>("d maximum" + s, [](auto& x, auto& y) { return xgrad::sum(xgrad::maximum(x, y)); }, a, b);
        compare_backward<D>("d minimum" + s, [](auto& x, auto& y) { return xgrad::sum(xgrad::minimum(x, y)); }, a, b);
    }
    // numbers mix in, and ties split the gradient evenly
    const auto x = data({3, 4}, 30);
    compare_eval<D>("constants", [](const auto& v) { return 2.0f * v + 1 - v / 4.0f; }, x);
    const auto ties = xgrad::tensor<float>({4}, {1, 2, 3, 4});
    const auto other = xgrad::tensor<float>({4}, {1, 3, 3, 0});
    compare_backward<D>("ties", [](auto& u, auto& v) { return xgrad::sum(xgrad::maximum(u, v) * 3.0f); }, ties, other);
}

// --- reductions -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(reductions_match_the_cpu, D, device_suite::full) {
    using namespace device_suite;
    const auto x = data({4, 5, 6}, 40);
    compare_eval<D>("sum", summed, [](const auto& a) { return xgrad::sum(a); }, x);
    compare_eval<D>("mean", summed, [](const auto& a) { return xgrad::mean(a * a); }, x);
    compare_eval<D>("max", [](const auto& a) { return xgrad::max(xgrad::tanh(a)); }, x);
    compare_eval<D>("sum axis 0", summed, [](const auto& a) { return xgrad::sum(a, 0); }, x);
    compare_eval<D>("sum axis -1 keepdims", summed, [](const auto& a) { return xgrad::sum(a, -1, true); }, x);
    compare_eval<D>("mean axes {0, 2}", summed, [](const auto& a) { return xgrad::mean(a, {0, 2}); }, x);
    compare_eval<D>("max axis 1", [](const auto& a) { return xgrad::max(a, 1); }, x);
    compare_eval<D>("max axes {0, 2} keepdims", [](const auto& a) { return xgrad::max(a, {0, 2}, true); }, x);
    compare_eval<D>("sum of a strided view", summed, [](const auto& a) { return xgrad::sum(a, 1); }, x.transpose(0, 2));
    // reductions inside larger expressions are materialized and read back as leaves
    compare_eval<D>("centered", summed, [](const auto& a) { return a - xgrad::mean(a, -1, true); }, x);
    compare_eval<D>("normalized", summed, [](const auto& a) { return a / xgrad::sum(xgrad::abs(a)); }, x);

    compare_backward<D>("d mean", [](auto& a) { return xgrad::mean(xgrad::tanh(a)); }, x);
    compare_backward<D>("d max", [](auto& a) { return xgrad::max(a * 2.0f); }, x);
    compare_backward<D>("d sum axis", [](auto& a) { return xgrad::sum(xgrad::square(xgrad::sum(a, 1))); }, x);
    compare_backward<D>("d mean axes", [](auto& a) { return xgrad::sum(xgrad::exp(xgrad::mean(a, {0, 2}))); }, x);
    compare_backward<D>("d max axis", [](auto& a) { return xgrad::sum(xgrad::max(a, -1) * 3.0f); }, x);
    compare_backward<D>("d softmax-like",
                        [](auto& a) {
                            auto z = a - xgrad::max(a, -1, true);
                            return xgrad::sum(xgrad::log(xgrad::sum(xgrad::exp(z), -1)));
                        },
                        x);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(max_splits_the_gradient_among_ties, D, device_suite::full) {
    using namespace device_suite;
    auto x = xgrad::param(xgrad::to<D>(xgrad::tensor<float>({2, 4}, {1, 3, 3, 2, 5, 0, 5, 5})));
    BOOST_TEST(xgrad::backward(xgrad::max(x)) == 5.0f);
    expect_close(host(x.grad()), {0, 0, 0, 0, 1.0f / 3, 0, 1.0f / 3, 1.0f / 3}, "full max");
    x.zero_grad();
    xgrad::backward(xgrad::sum(xgrad::max(x, 1)));
    expect_close(host(x.grad()), {0, 0.5f, 0.5f, 0, 1.0f / 3, 0, 1.0f / 3, 1.0f / 3}, "max along rows");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(empty_and_scalar_shapes, D, device_suite::full) {
    using namespace device_suite;
    const auto e = xgrad::to<D>(xgrad::zeros<float>({0, 3}));
    BOOST_TEST(xgrad::eval(xgrad::exp(e)).shape() == (shape_t{0, 3}));
    BOOST_TEST(xgrad::eval(xgrad::sum(e)).item() == 0.0f);
    BOOST_TEST(std::isnan(xgrad::eval(xgrad::mean(e)).item()));
    BOOST_TEST(host(xgrad::eval(xgrad::sum(e, 0))) == std::vector<float>(3, 0.0f));
    auto pe = xgrad::param(e);
    BOOST_TEST(xgrad::backward(xgrad::sum(pe * 2.0f)) == 0.0f);
    BOOST_TEST(std::isnan(xgrad::backward(xgrad::mean(pe))));

    auto s = xgrad::param(xgrad::full<float, D>({}, 3.0f));
    BOOST_TEST(xgrad::backward(xgrad::sum(s * s)) == 9.0f);
    BOOST_TEST(s.grad().item() == 6.0f);
}

// --- backward ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(fused_backward_matches_the_cpu, D, device_suite::subset) {
    using namespace device_suite;
    const auto x = data({8, 6}, 50), w = data({8, 6}, 51);
    auto chain = [](auto& a, auto& b, auto& c) { return xgrad::sum(xgrad::tanh(a * b + c) * xgrad::sigmoid(a)); };
    // the bias broadcast as a scalar, along rows and along columns
    compare_backward<D>("chain, scalar bias", chain, x, w, data({1}, 52));
    compare_backward<D>("chain, row bias", chain, x, w, data({6}, 53));
    compare_backward<D>("chain, column bias", chain, x, w, data({8, 1}, 54));
    compare_backward<D>("mean root", [](auto& a, auto& b) { return xgrad::mean(a * b - xgrad::exp(b)); }, x, w);
    // one-element expressions that are not a plain sum: value and gradients through materialized nodes
    compare_backward<D>("arithmetic on reductions",
                        [](auto& a, auto& b) { return xgrad::sum(a) * xgrad::mean(b) + xgrad::max(a * b) * 2.0f; }, x,
                        w);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(gradients_accumulate_and_respect_frozen_leaves, D, device_suite::full) {
    using namespace device_suite;
    const auto xv = data({5, 7}, 60);
    auto x = xgrad::param(xgrad::to<D>(xv));
    auto b = xgrad::param(xgrad::to<D>(data({7}, 61)));
    auto loss = xgrad::sum(x * x + xgrad::exp(x) * b);  // x used twice: 2x + e^x b
    xgrad::backward(loss);
    auto g1 = host(x.grad()), gb1 = host(b.grad());
    xgrad::backward(loss);  // accumulates like PyTorch
    auto g2 = host(x.grad()), gb2 = host(b.grad());
    for (auto& v : g1) v *= 2;
    for (auto& v : gb1) v *= 2;
    expect_close(g2, g1, "accumulated x");
    expect_close(gb2, gb1, "accumulated bias");
    x.zero_grad();
    b.zero_grad();
    BOOST_TEST(host(b.grad()) == std::vector<float>(7, 0.0f));
    x.grad().fill(123);  // stale memory must not leak into the next pass after zero_grad
    x.zero_grad();
    b.requires_grad(false);
    xgrad::backward(loss);
    const auto xr = xgrad::to<reference>(xv);
    expect_close(host(x.grad()), host(xgrad::eval(2.0f * xr + xgrad::exp(xr) * xgrad::to<reference>(b.value()))),
                 "after zero_grad");
    BOOST_TEST(host(b.grad()) == std::vector<float>(7, 0.0f));

    x.zero_grad();
    xgrad::backward(xgrad::sum(xgrad::detach(x) * x));  // only the second factor carries gradient
    expect_close(host(x.grad()), xv.to_vector(), "detach");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(explicit_upstream_gradient, D, device_suite::full) {
    using namespace device_suite;
    auto x = xgrad::param(xgrad::to<D>(xgrad::tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})));
    auto b = xgrad::param(xgrad::to<D>(xgrad::tensor<float>({3}, {10, 20, 30})));
    xgrad::backward(x * b, xgrad::to<D>(xgrad::tensor<float>({3}, {1, 2, 3})));  // upstream broadcasts
    expect_close(host(x.grad()), {10, 40, 90, 10, 40, 90}, "x");
    expect_close(host(b.grad()), {5, 14, 27}, "b");
    BOOST_CHECK_THROW((xgrad::backward(x * b, xgrad::zeros<float, D>({4}))), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(large_loops_split_into_lanes, D, device_suite::full) {
    using namespace device_suite;
    grain_guard restore;
    xgrad::detail::thrust_backend::host_parallel_grain() = std::size_t{1} << 15;
    const auto x = data({512, 257}, 70), w = data({512, 257}, 71);
    auto chain = [](auto& a, auto& b, auto& c) { return xgrad::sum(xgrad::tanh(a * b + c) * xgrad::sigmoid(a)); };
    compare_backward<D>("large, scalar bias", chain, x, w, data({1}, 72));
    compare_backward<D>("large, row bias", chain, x, w, data({257}, 73));
    compare_eval<D>("large sum axis 0", summed, [](const auto& a) { return xgrad::sum(a, 0); }, x);
    compare_eval<D>("large max axis 1", [](const auto& a) { return xgrad::max(a, 1); }, x);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(double_precision, D, device_suite::full) {
    using namespace device_suite;
    const auto x = data<double>({6, 9}, 80), w = data<double>({9}, 81);
    auto f = [](const auto& a, const auto& b) { return xgrad::gelu(a) * b - xgrad::log(xgrad::abs(b)); };
    const auto want = xgrad::eval(f(xgrad::to<reference>(x), xgrad::to<reference>(w)));
    const auto got = xgrad::eval(f(xgrad::to<D>(x), xgrad::to<D>(w)));
    expect_close(host(got), host(want), "double eval", 1e-13, 1e-14);
    compare_backward<D>("double backward", [](auto& a, auto& b) { return xgrad::sum(xgrad::tanh(a * b) / b); }, x, w);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(shape_errors, D, device_suite::full) {
    using namespace device_suite;
    const auto a = xgrad::zeros<float, D>({2, 3});
    BOOST_CHECK_THROW((a + xgrad::zeros<float, D>({4})), xgrad::shape_error);
    const auto deep = xgrad::zeros<float, D>(shape_t(xgrad::max_rank + 1, 1));
    BOOST_CHECK_THROW(xgrad::eval(xgrad::exp(deep)), xgrad::shape_error);
}

// --- the same training source on every device ------------------------------------------------

namespace device_suite {
/// Fits y = 3 x0 - 2 x1 + 0.5 with SGD; only the device type differs between runs.
template <class Device>
std::vector<float> fit_linear(int steps) {
    const auto xh = data({64, 2}, 90);
    auto yh = xgrad::empty<float>({64});
    for (std::size_t i = 0; i < 64; ++i) yh(i) = 3 * xh(i, 0) - 2 * xh(i, 1) + 0.5f;
    const auto x = xgrad::to<Device>(xh);
    const auto y = xgrad::to<Device>(yh);
    auto w = xgrad::param(xgrad::zeros<float, Device>({2}));
    auto b = xgrad::param(xgrad::zeros<float, Device>({1}));
    std::vector<float> losses;
    for (int i = 0; i < steps; ++i) {
        w.zero_grad();
        b.zero_grad();
        auto pred = xgrad::sum(x * w, 1) + b;
        losses.push_back(xgrad::backward(xgrad::mean(xgrad::square(pred - y))));
        w.value().assign(xgrad::eval(w.value() - 0.2f * w.grad()));
        b.value().assign(xgrad::eval(b.value() - 0.2f * b.grad()));
    }
    return losses;
}
}  // namespace device_suite

BOOST_AUTO_TEST_CASE_TEMPLATE(the_same_training_source_runs_on_the_device, D, device_suite::subset) {
    using namespace device_suite;
    const auto on_reference = fit_linear<reference>(60);
    const auto on_device = fit_linear<D>(60);
    expect_close(on_device, on_reference, "losses", 1e-3, 1e-6);
    BOOST_TEST(on_device.back() < 1e-3 * on_device.front());
}
