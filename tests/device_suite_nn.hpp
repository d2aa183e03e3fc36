// The device suite of the line and window barrier ops: pooling, softmax/log_softmax, the
// class losses, dropout, batch_norm/layer_norm, embedding, the LSTM/GRU stacks and cells,
// attention (masked_softmax, multihead_attention) and the attention layers (multi-head
// attention, transformer encoder layer, positional embeddings). Each check builds the same op
// on a reference device and on the device under test and compares the values and every
// gradient to float32 tolerance; dropout, whose device mask is not the CPU's, is checked by
// its properties. Included by test_thrust_nn.cpp (reference: the CPU backend; every check on
// thrust_omp, the core ones on thrust_cpp) and by cuda/test_cuda_nn.cu (reference: thrust_cpp,
// which the former checks against the CPU, so no CPU SIMD loop enters the nvcc build). The
// includer defines the Boost.Test module and, before including it:
//   nn_suite::reference  the device results are compared with
//   nn_suite::full       devices that run every check
//   nn_suite::subset     devices that run the core checks
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <xgrad/device.hpp>
#include <xgrad/nn/attention.hpp>

#include "device_test_support.hpp"

namespace nn_suite {

using cpu = xgrad::device::cpu;
using xgrad::shape_t;

/// Names a device inside the generic lambdas of a check: f(on<D>{}, operands...).
template <class D>
struct on {
    using type = D;
};

using device_test::expect_close;
using device_test::host;

/// Uniform values in [lo, hi) on the host.
template <class T = float>
xgrad::tensor<T> data(const shape_t& s, std::uint64_t seed, double lo = -2, double hi = 2) {
    xgrad::rng g(seed);
    return xgrad::uniform<T>(s, g, T(lo), T(hi));
}

/// Integer labels in [0, classes) on the host.
inline xgrad::tensor<std::int64_t> labels(const shape_t& s, std::int64_t classes, std::uint64_t seed) {
    xgrad::rng g(seed);
    auto t = xgrad::tensor<std::int64_t>::uninitialized(s);
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<std::int64_t>(g.below(static_cast<std::uint64_t>(classes)));
    return t;
}

// Options spelled with their type: nvcc's front end finds a designated initializer list that
// leaves out .reduction ambiguous between the mean, sum and none overloads.
template <class T>
using ce_mean = xgrad::cross_entropy_options<xgrad::reduction::mean_t, T>;
template <class T>
using nll_mean = xgrad::nll_loss_options<xgrad::reduction::mean_t, T>;

template <class T>
constexpr double rtol = std::is_same_v<T, double> ? 1e-11 : 1e-4;
template <class T>
constexpr double atol = std::is_same_v<T, double> ? 1e-12 : 2e-5;

/// The op f(on<Dv>, parameters on Dv...) on the reference and on D: its value elementwise,
/// then backward with the same pseudo-random upstream gradient (so every output element's
/// gradient counts, with its own weight), and every parameter's gradient.
template <class D, class F, class T, class... H>
void compare_op(const std::string& what, F f, const xgrad::tensor<T>& h0, const H&... h) {
    auto pr = std::tuple{xgrad::param(xgrad::to<reference>(h0.clone())), xgrad::param(xgrad::to<reference>(h.clone()))...};
    auto pd = std::tuple{xgrad::param(xgrad::to<D>(h0.clone())), xgrad::param(xgrad::to<D>(h.clone()))...};
    const auto er = std::apply([&](auto&... p) { return f(on<reference>{}, p...); }, pr);
    const auto ed = std::apply([&](auto&... p) { return f(on<D>{}, p...); }, pd);
    const auto want = xgrad::eval(er);
    const auto got = xgrad::eval(ed);
    static_assert(std::is_same_v<typename decltype(got)::device_type, D>, "the result must stay on the device");
    BOOST_TEST_INFO(what);
    BOOST_TEST_REQUIRE(got.shape() == want.shape());
    expect_close(host(got), host(want), what + ": value", rtol<T>, atol<T>);
    const auto up = data<T>(want.shape(), 77, 0.5, 1.5);
    xgrad::backward(er, xgrad::to<reference>(up));
    xgrad::backward(ed, xgrad::to<D>(up));
    std::apply(
        [&](auto&... r) {
            std::apply(
                [&](auto&... d) {
                    int i = 0;
                    ((expect_close(host(d.grad()), host(r.grad()), what + ": gradient " + std::to_string(i++), rtol<T>,
                                   atol<T>)),
                     ...);
                },
                pd);
        },
        pr);
}


/// What a dropout's output y and its input's gradient g (upstream gradient 1) show: the kept
/// fraction, whether the survivors are x / (1 - p) = x * keep and the rest 0, and whether the
/// gradient is the forward's mask.
struct dropout_seen {
    double kept_fraction = 0;
    bool values_ok = true, same_mask = true;
};
template <class Y, class G, class X>
dropout_seen inspect_dropout(const Y& y, const G& g, const X& x, float keep) {
    dropout_seen r;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const bool k = y[i] != 0;
        kept += k;
        r.values_ok = r.values_ok && (k ? std::abs(y[i] - x[i] * keep) <= 1e-6f * std::abs(y[i]) : y[i] == 0.0f);
        r.same_mask = r.same_mask && g[i] == (k ? keep : 0.0f);
    }
    r.kept_fraction = double(kept) / double(x.size());
    return r;
}
}  // namespace nn_suite

// --- pooling ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(max_pool2d_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    struct config {
        shape_t shape;
        xgrad::size2 kernel, stride, padding;
    };
    const std::vector<config> configs{{{2, 3, 8, 8}, 2, 0, 0},
                                      {{2, 2, 7, 9}, 3, 2, 1},
                                      {{3, 5, 6}, {2, 3}, {1, 2}, {1, 1}},
                                      {{1, 2, 5, 5}, 3, 1, 0}};  // overlapping windows
    std::uint64_t seed = 100;
    for (const auto& c : configs)
        compare_op<D>("max_pool2d " + xgrad::to_string(c.shape) + " kernel " + xgrad::to_string(c.kernel),
                      [&](auto, auto& a) { return xgrad::max_pool2d(a, c.kernel, c.stride, c.padding); },
                      data(c.shape, ++seed));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(max_pool2d_sends_the_gradient_to_the_first_maximum, D, nn_suite::full) {
    using namespace nn_suite;
    // ties everywhere: each window's gradient goes to its first element, as on the CPU
    auto x = xgrad::param(xgrad::to<D>(xgrad::ones<float>({1, 1, 4, 4})));
    xgrad::backward(xgrad::sum(xgrad::max_pool2d(x, 2)));
    BOOST_TEST(host(x.grad()) == (std::vector<float>{1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0}),
               boost::test_tools::per_element());
    // overlapping windows sharing a maximum add up at it; a NaN is the maximum
    const float nan = std::numeric_limits<float>::quiet_NaN();
    auto y = xgrad::param(xgrad::to<D>(xgrad::tensor<float>({1, 3, 3}, {0, 1, 0, 1, 9, 1, nan, 1, 0})));
    const auto out = host(xgrad::eval(xgrad::max_pool2d(y, 2, 1)));
    BOOST_TEST(out[0] == 9.0f);
    BOOST_TEST(out[1] == 9.0f);
    BOOST_TEST(std::isnan(out[2]));
    BOOST_TEST(out[3] == 9.0f);
    xgrad::backward(xgrad::sum(xgrad::max_pool2d(y, 2, 1) * xgrad::to<D>(xgrad::tensor<float>({1, 2, 2}, {1, 2, 4, 8}))));
    BOOST_TEST(host(y.grad()) == (std::vector<float>{0, 0, 0, 0, 11, 0, 4, 0, 0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(avg_pool2d_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    struct config {
        shape_t shape;
        xgrad::size2 kernel, stride, padding;
        bool include_pad;
    };
    const std::vector<config> configs{{{2, 3, 8, 8}, 2, 0, 0, true},
                                      {{2, 2, 7, 9}, 3, 2, 1, true},
                                      {{2, 2, 7, 9}, 3, 2, 1, false},
                                      {{3, 5, 6}, {2, 3}, {1, 2}, {1, 1}, false},
                                      {{1, 2, 6, 5}, 3, 1, 1, true}};
    std::uint64_t seed = 200;
    for (const auto& c : configs)
        compare_op<D>("avg_pool2d " + xgrad::to_string(c.shape) + " kernel " + xgrad::to_string(c.kernel) +
                          (c.include_pad ? "" : " excluding padding"),
                      [&](auto, auto& a) { return xgrad::avg_pool2d(a, c.kernel, c.stride, c.padding, c.include_pad); },
                      data(c.shape, ++seed));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(adaptive_avg_pool2d_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    const std::vector<std::pair<shape_t, xgrad::size2>> configs{
        {{2, 3, 7, 5}, {3, 2}}, {{2, 3, 7, 5}, {4, 4}}, {{2, 2, 6, 6}, {1, 1}}, {{3, 4, 4}, {6, 5}}, {{1, 2, 9, 10}, {4, 3}}};
    std::uint64_t seed = 300;
    for (const auto& [shape, size] : configs)
        compare_op<D>("adaptive_avg_pool2d " + xgrad::to_string(shape) + " to " + xgrad::to_string(size),
                      [&, size = size](auto, auto& a) { return xgrad::adaptive_avg_pool2d(a, size); }, data(shape, ++seed));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(pooling_errors_are_the_cpus, D, nn_suite::full) {
    const auto x = xgrad::zeros<float, D>({2, 3, 4, 4});
    BOOST_CHECK_THROW(xgrad::max_pool2d(x, 0), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::avg_pool2d(x, 2, 1, 2), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::max_pool2d(x, 5), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::max_pool2d(xgrad::zeros<float, D>({4, 4}), 2), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::adaptive_avg_pool2d(x, {0, 2}), xgrad::value_error);
}

// --- softmax ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(softmax_along_every_axis_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    const auto x = data({3, 4, 5}, 400, -6, 6);
    for (std::ptrdiff_t axis : {0, 1, 2, -1}) {
        const std::string s = " axis " + std::to_string(axis);
        compare_op<D>("softmax" + s, [&](auto, auto& a) { return xgrad::softmax(a, axis); }, x);
        compare_op<D>("log_softmax" + s, [&](auto, auto& a) { return xgrad::log_softmax(a, axis); }, x);
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(softmax_is_stable_and_runs_in_double, D, nn_suite::full) {
    using namespace nn_suite;
    // logits far beyond exp's range: the maximum is subtracted first
    const auto big = xgrad::to<D>(xgrad::tensor<float>({2, 3}, {1000, 1001, 1002, -1000, -1000, -1000}));
    const auto p = host(xgrad::eval(xgrad::softmax(big)));
    BOOST_TEST(p[2] == 1.0f / (1.0f + std::exp(-1.0f) + std::exp(-2.0f)), boost::test_tools::tolerance(1e-6f));
    BOOST_TEST(p[4] == 1.0f / 3, boost::test_tools::tolerance(1e-6f));
    const auto lp = host(xgrad::eval(xgrad::log_softmax(big)));
    for (float v : lp) BOOST_TEST(std::isfinite(v));

    const auto xd = data<double>({4, 6, 3}, 410, -3, 3);
    for (std::ptrdiff_t axis : {0, 1, 2})
        compare_op<D>("log_softmax double axis " + std::to_string(axis),
                      [&](auto, auto& a) { return xgrad::log_softmax(a, axis); }, xd);
}

// --- class losses ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(cross_entropy_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    namespace red = xgrad::reduction;
    const auto x = data({6, 5}, 500, -3, 3);
    auto y = labels({6}, 5, 501);
    y.data()[2] = -100;  // ignored by default
    auto y3 = y.clone();
    y3.data()[2] = 3;
    y3.data()[4] = 3;
    const auto w = data({5}, 502, 0.5, 2);
    using opts_mean = ce_mean<float>;
    auto check = [&](const std::string& what, auto opt) {
        const auto& lab = opt.ignore_index == 3 ? y3 : y;
        compare_op<D>("cross_entropy " + what,
                      [&](auto dv, auto& a) {
                          using Dv = typename decltype(dv)::type;
                          return xgrad::cross_entropy(a, xgrad::to<Dv>(lab), opt);
                      },
                      x);
    };
    check("mean", opts_mean{});
    check("mean, smoothing", opts_mean{.label_smoothing = 0.2});
    check("mean, weights", opts_mean{.weight = w});
    check("mean, smoothing and weights", opts_mean{.label_smoothing = 0.15, .weight = w});
    check("ignore_index 3", opts_mean{.label_smoothing = 0.1, .ignore_index = 3});
    check("sum, smoothing and weights",
          xgrad::cross_entropy_options<red::sum_t, float>{.reduction = red::sum, .label_smoothing = 0.1, .weight = w});
    check("none, smoothing and weights", xgrad::cross_entropy_options<red::none_t, float>{
                                             .reduction = red::none, .label_smoothing = 0.3, .weight = w});
}

BOOST_AUTO_TEST_CASE_TEMPLATE(class_losses_over_spatial_positions_and_in_double, D, nn_suite::full) {
    using namespace nn_suite;
    namespace red = xgrad::reduction;
    // {N, C, d1, d2}: the classes are strided
    const auto x = data({2, 4, 3, 5}, 510, -3, 3);
    const auto y = labels({2, 3, 5}, 4, 511);
    const auto w = data({4}, 512, 0.5, 2);
    compare_op<D>("cross_entropy spatial",
                  [&](auto dv, auto& a) {
                      using Dv = typename decltype(dv)::type;
                      return xgrad::cross_entropy(a, xgrad::to<Dv>(y), ce_mean<float>{.label_smoothing = 0.1, .weight = w});
                  },
                  x);
    compare_op<D>("nll_loss spatial, sum",
                  [&](auto dv, auto& a) {
                      using Dv = typename decltype(dv)::type;
                      return xgrad::nll_loss(xgrad::log_softmax(a, 1), xgrad::to<Dv>(y),
                                             xgrad::nll_loss_options<red::sum_t, float>{.reduction = red::sum, .weight = w});
                  },
                  x);
    auto y2 = labels({7}, 4, 514);
    y2.data()[4] = 2;
    compare_op<D>("nll_loss mean, weights, ignore_index 2",
                  [&](auto dv, auto& a) {
                      using Dv = typename decltype(dv)::type;
                      return xgrad::nll_loss(a, xgrad::to<Dv>(y2), nll_mean<float>{.weight = w, .ignore_index = 2});
                  },
                  data({7, 4}, 515, -3, 3));
    compare_op<D>("nll_loss none",
                  [&](auto dv, auto& a) {
                      using Dv = typename decltype(dv)::type;
                      return xgrad::nll_loss(a, xgrad::to<Dv>(y2),
                                             xgrad::nll_loss_options<red::none_t, float>{.reduction = red::none});
                  },
                  data({7, 6}, 513, -3, 3));
    const auto xd = data<double>({5, 7}, 517, -3, 3);
    const auto yd = labels({5}, 7, 518);
    compare_op<D>("cross_entropy double",
                  [&](auto dv, auto& a) {
                      using Dv = typename decltype(dv)::type;
                      return xgrad::cross_entropy(a, xgrad::to<Dv>(yd), ce_mean<double>{.label_smoothing = 0.2});
                  },
                  xd);
    // every label ignored: the mean is 0/0 = NaN on every device
    const auto all_ignored = xgrad::full<std::int64_t>({5}, -100);
    const auto v = xgrad::eval(xgrad::cross_entropy(xgrad::to<D>(xd), xgrad::to<D>(all_ignored))).item();
    BOOST_TEST(std::isnan(v));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(class_loss_errors_are_the_cpus, D, nn_suite::full) {
    using namespace nn_suite;
    const auto x = xgrad::to<D>(data({3, 4}, 520));
    const auto bad = xgrad::to<D>(xgrad::tensor<std::int64_t>({3}, {0, 4, 1}));
    BOOST_CHECK_THROW(xgrad::cross_entropy(x, bad), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::nll_loss(x, xgrad::to<D>(xgrad::tensor<std::int64_t>({3}, {0, -1, 1}))), xgrad::value_error);
    try {
        (void)xgrad::cross_entropy(x, bad);
        BOOST_ERROR("a label out of range must throw");
    } catch (const xgrad::value_error& e) {
        const std::string m = e.what();
        BOOST_TEST(m.find("label 4 at position 1") != std::string::npos, m);
        BOOST_TEST(m.find("4 classes") != std::string::npos, m);
    }
    // the ignored label is not checked
    BOOST_CHECK_NO_THROW(xgrad::cross_entropy(x, xgrad::to<D>(xgrad::tensor<std::int64_t>({3}, {0, 7, 1})),
                                              ce_mean<float>{.ignore_index = 7}));
    BOOST_CHECK_THROW(xgrad::cross_entropy(x, xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {0, 1}))), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::cross_entropy(x, xgrad::to<D>(xgrad::tensor<std::int64_t>({3}, {0, 1, 2})),
                                           ce_mean<float>{.weight = xgrad::ones<float>({3})}),
                      xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::cross_entropy(x, xgrad::to<D>(xgrad::tensor<std::int64_t>({3}, {0, 1, 2})),
                                           ce_mean<float>{.label_smoothing = 1.5}),
                      xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::cross_entropy(xgrad::to<D>(data({4}, 521)), xgrad::to<D>(xgrad::tensor<std::int64_t>({4}))),
                      xgrad::shape_error);
}

// --- dropout ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(dropout_keeps_one_minus_p_and_scales_the_survivors, D, nn_suite::subset) {
    using namespace nn_suite;
    const std::size_t n = 1 << 16;
    const auto xh = data({n}, 600, 1, 2);  // nonzero everywhere
    const auto xv = xh.to_vector();
    for (double p : {0.1, 0.5, 0.8}) {
        xgrad::rng gen(601);
        auto x = xgrad::param(xgrad::to<D>(xh));
        auto e = xgrad::dropout(x, p, true, gen);
        const auto y = host(xgrad::eval(e));
        xgrad::backward(xgrad::sum(e));
        const auto g = host(x.grad());
        const auto seen = inspect_dropout(y, g, xv, static_cast<float>(1.0 / (1.0 - p)));
        // binomial: 5 standard deviations of the kept fraction at n = 2^16 is at most 0.01
        BOOST_TEST(std::abs(seen.kept_fraction - (1 - p)) < 0.01, "p " << p << ": kept " << seen.kept_fraction);
        BOOST_TEST(seen.values_ok, "p " << p << ": survivors are x / (1 - p), the rest 0");
        BOOST_TEST(seen.same_mask, "p " << p << ": the gradient is the forward's mask");
        // evaluating the expression again gives the same mask
        BOOST_TEST(host(xgrad::eval(e)) == y);
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(dropout_seeds_evaluation_and_edge_cases, D, nn_suite::full) {
    using namespace nn_suite;
    const auto x = xgrad::to<D>(data({64, 33}, 610, 1, 2));
    xgrad::rng a(5), b(5);
    const auto ya = host(xgrad::eval(xgrad::dropout(x, 0.5, true, a)));
    const auto yb = host(xgrad::eval(xgrad::dropout(x, 0.5, true, b)));
    BOOST_TEST(ya == yb);  // the same generator state, the same mask
    const auto yc = host(xgrad::eval(xgrad::dropout(x, 0.5, true, a)));
    BOOST_TEST(ya != yc);  // a new call draws a new mask
    xgrad::rng g(7);
    BOOST_TEST(host(xgrad::eval(xgrad::dropout(x, 0.5, false, g))) == host(x));  // evaluation: identity
    BOOST_TEST(host(xgrad::eval(xgrad::dropout(x, 0.0, true, g))) == host(x));   // p = 0: identity
    BOOST_CHECK_THROW(xgrad::dropout(x, 1.0, true, g), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::dropout(x, -0.1, true, g), xgrad::value_error);
    // rows of the mask are not copies of each other (the hash mixes the element index)
    const auto m = host(xgrad::eval(xgrad::dropout(xgrad::ones<float, D>({4, 256}), 0.5, true, g)));
    BOOST_TEST(!std::equal(m.begin(), m.begin() + 256, m.begin() + 256));
}

// --- normalization ---------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(batch_norm_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    std::uint64_t seed = 700;
    for (const shape_t& s : {shape_t{8, 3}, shape_t{4, 3, 5, 6}, shape_t{2, 4, 7}}) {
        const std::size_t C = s[1];
        const auto x = data(s, ++seed, -1, 3);
        const auto gamma = data({C}, ++seed, 0.5, 1.5), beta = data({C}, ++seed);
        const auto rm0 = data({C}, ++seed), rv0 = data({C}, ++seed, 0.5, 2);
        for (bool training : {true, false}) {
            const std::string what = std::string(training ? "batch_norm training " : "batch_norm eval ") + xgrad::to_string(s);
            auto rm_r = xgrad::to<reference>(rm0.clone()), rv_r = xgrad::to<reference>(rv0.clone());
            auto rm_d = xgrad::to<D>(rm0), rv_d = xgrad::to<D>(rv0);
            compare_op<D>(what,
                          [&](auto dv, auto& a, auto& g, auto& b) {
                              using Dv = typename decltype(dv)::type;
                              const xgrad::batch_norm_options opt{.training = training, .momentum = 0.3};
                              if constexpr (std::is_same_v<Dv, D>)
                                  return xgrad::batch_norm(a, g, b, rm_d, rv_d, opt);
                              else
                                  return xgrad::batch_norm(a, g, b, rm_r, rv_r, opt);
                          },
                          x, gamma, beta);
            // the running statistics were updated once (forward and backward passes run the
            // op twice), like the reference's
            expect_close(host(rm_d), host(rm_r), what + ": running_mean", 1e-5, 1e-6);
            expect_close(host(rv_d), host(rv_r), what + ": running_var", 1e-5, 1e-6);
            if (training)
                BOOST_TEST(host(rm_d) != rm0.to_vector());
            else
                BOOST_TEST(host(rm_d) == rm0.to_vector());
        }
    }
    BOOST_CHECK_THROW(xgrad::batch_norm(xgrad::zeros<float, D>({1, 3}), xgrad::ones<float, D>({3}),
                                        xgrad::zeros<float, D>({3}), xgrad::zeros<float, D>({3}),
                                        xgrad::ones<float, D>({3}), {.training = true}),
                      xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::batch_norm(xgrad::zeros<float, D>({2, 3}), xgrad::ones<float, D>({2}),
                                        xgrad::zeros<float, D>({3}), xgrad::zeros<float, D>({3}), xgrad::ones<float, D>({3})),
                      xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(layer_norm_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    const auto x = data({4, 3, 10}, 800, -1, 3);
    compare_op<D>("layer_norm last 1", [&](auto, auto& a, auto& g, auto& b) { return xgrad::layer_norm(a, 1, g, b); }, x,
                  data({10}, 801, 0.5, 1.5), data({10}, 802));
    compare_op<D>("layer_norm last 2",
                  [&](auto, auto& a, auto& g, auto& b) { return xgrad::layer_norm(a, shape_t{3, 10}, g, b, 1e-3); }, x,
                  data({3, 10}, 804, 0.5, 1.5), data({3, 10}, 805));
    compare_op<D>("layer_norm without affine", [&](auto, auto& a) { return xgrad::layer_norm(a, shape_t{10}); }, x);
    compare_op<D>("layer_norm double", [&](auto, auto& a, auto& g, auto& b) { return xgrad::layer_norm(a, 1, g, b); },
                  data<double>({5, 8}, 808), data<double>({8}, 810), data<double>({8}, 811));
    BOOST_CHECK_THROW(xgrad::layer_norm(xgrad::zeros<float, D>({2, 5}), shape_t{4}), xgrad::shape_error);
}

// --- embedding -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(embedding_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    const auto w = data({10, 6}, 900);
    // repeated indices: their upstream rows add up in the same row of the gradient
    const auto idx = xgrad::tensor<std::int64_t>({3, 4}, {1, 3, 1, 9, 0, 3, 3, 5, 9, 1, 2, 1});
    const auto many = labels({300}, 7, 902);
    for (const auto* ids : {&idx, &many})
        compare_op<D>("embedding " + xgrad::to_string(ids->shape()),
                      [&](auto dv, auto& a) {
                          using Dv = typename decltype(dv)::type;
                          return xgrad::embedding(xgrad::to<Dv>(*ids), a);
                      },
                      ids == &idx ? w : data({7, 5}, 904));
    const auto wd = xgrad::to<D>(w);
    BOOST_CHECK_THROW(xgrad::embedding(xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {3, 10})), wd), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::embedding(xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {-1, 0})), wd), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::embedding(xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {0, 1})), xgrad::zeros<float, D>({4})),
                      xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(embedding_bag_matches_the_reference, D, nn_suite::subset) {
    using namespace nn_suite;
    // an empty bag (offsets 3, 3), repeated rows, per-sample weights, fixed-size 2-D bags
    const auto idx = xgrad::tensor<std::int64_t>({9}, {3, 0, 3, 7, 1, 1, 6, 3, 2});
    const auto off = xgrad::tensor<std::int64_t>({4}, {0, 3, 3, 5});
    const auto many = labels({400}, 11, 912);
    const auto many_off = xgrad::tensor<std::int64_t>({5}, {0, 7, 100, 100, 390});
    for (auto mode : {xgrad::bag_mode::sum, xgrad::bag_mode::mean}) {
        const std::string m = mode == xgrad::bag_mode::sum ? " sum" : " mean";
        compare_op<D>("embedding_bag" + m, [&](auto dv, auto& a) {
            using Dv = typename decltype(dv)::type;
            return xgrad::embedding_bag(xgrad::to<Dv>(idx), xgrad::to<Dv>(off), a, mode);
        }, data({8, 5}, 910));
        compare_op<D>("embedding_bag many" + m, [&](auto dv, auto& a) {
            using Dv = typename decltype(dv)::type;
            return xgrad::embedding_bag(xgrad::to<Dv>(many), xgrad::to<Dv>(many_off), a, mode);
        }, data({11, 6}, 913));
    }
    compare_op<D>("embedding_bag weighted", [&](auto dv, auto& a, auto& p) {
        using Dv = typename decltype(dv)::type;
        return xgrad::embedding_bag(xgrad::to<Dv>(idx), xgrad::to<Dv>(off), a, p);
    }, data({8, 5}, 914), data({9}, 915));
    compare_op<D>("embedding_bag 2-D mean", [&](auto dv, auto& a) {
        using Dv = typename decltype(dv)::type;
        return xgrad::embedding_bag(xgrad::to<Dv>(xgrad::tensor<std::int64_t>({2, 3}, {1, 4, 4, 0, 7, 2})), a,
                                    xgrad::bag_mode::mean);
    }, data({8, 5}, 916));
    const auto wd = xgrad::to<D>(data({8, 5}, 910));
    BOOST_CHECK_THROW(xgrad::embedding_bag(xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {3, 8})),
                                           xgrad::to<D>(xgrad::tensor<std::int64_t>({1}, {0})), wd),
                      xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::embedding_bag(xgrad::to<D>(idx), xgrad::to<D>(xgrad::tensor<std::int64_t>({2}, {0, 10})), wd),
                      xgrad::value_error);
}

// --- recurrent stacks and attention ------------------------------------------------------

namespace nn_suite {

/// An LSTM/GRU stack (the node behind nn::lstm / nn::gru) on the reference and on D from the
/// same host values: every output's value, then, from a pseudo-random upstream gradient of
/// that output, the gradients of x, h0, c0 and every weight and bias.
template <class D, class T>
void compare_rnn(xgrad::rnn_kind kind, std::size_t layers, bool bidirectional, bool batch_first, bool with_lengths,
                 std::uint64_t seed) {
    xgrad::rnn_spec s;
    s.kind = kind;
    s.input_size = 3;
    s.hidden_size = 4;
    s.num_layers = layers;
    s.bidirectional = bidirectional;
    s.batch_first = batch_first;
    const std::size_t Tn = 5, B = 3, H = s.hidden_size, G = s.gates() * H, Dn = s.dirs();
    std::vector<xgrad::tensor<T>> values{data<T>(batch_first ? shape_t{B, Tn, 3} : shape_t{Tn, B, 3}, seed),
                                       data<T>({layers * Dn, B, H}, seed + 1, -1, 1),
                                       data<T>({layers * Dn, B, H}, seed + 2, -1, 1)};
    for (std::size_t k = 0; k < layers * Dn; ++k) {
        const std::size_t in = k / Dn == 0 ? s.input_size : Dn * H;
        for (const shape_t& w : {shape_t{G, in}, shape_t{G, H}, shape_t{G}, shape_t{G}})
            values.push_back(data<T>(w, seed + 10 + values.size(), -0.6, 0.6));
    }
    std::optional<xgrad::tensor<std::int64_t>> len;
    if (with_lengths) len = xgrad::tensor<std::int64_t>({B}, {3, 5, 1});
    const std::string name = std::string(s.name()) + " layers " + std::to_string(layers) +
                             (bidirectional ? " bidirectional" : "") + (batch_first ? " batch_first" : "") +
                             (with_lengths ? " with lengths" : "") + (std::is_same_v<T, double> ? " double" : " float");
    auto outputs = [&](auto dv, auto& p) {
        using Dv = typename decltype(dv)::type;
        std::vector<xgrad::parameter<T, Dv>> w(p.begin() + 3, p.end());
        return xgrad::detail::make_rnn<T>(s, xgrad::as_expr(p[0]), xgrad::as_expr(p[1]), xgrad::as_expr(p[2]), w, len,
                                          0, false, nullptr);
    };
    for (std::size_t which = 0; which < (kind == xgrad::rnn_kind::lstm ? 3u : 2u); ++which) {
        const std::string what = name + " output " + std::to_string(which);
        std::vector<xgrad::parameter<T, reference>> pr;
        std::vector<xgrad::parameter<T, D>> pd;
        for (const auto& h : values) {
            pr.push_back(xgrad::param(xgrad::to<reference>(h.clone())));
            pd.push_back(xgrad::param(xgrad::to<D>(h.clone())));
        }
        const auto er = outputs(on<reference>{}, pr)[which];
        const auto ed = outputs(on<D>{}, pd)[which];
        const auto want = xgrad::eval(er);
        const auto got = xgrad::eval(ed);
        static_assert(std::is_same_v<typename decltype(got)::device_type, D>, "the result must stay on the device");
        BOOST_TEST_INFO(what);
        BOOST_TEST_REQUIRE(got.shape() == want.shape());
        expect_close(host(got), host(want), what + ": value", rtol<T>, atol<T>);
        const auto up = data<T>(want.shape(), seed + 99, 0.5, 1.5);
        xgrad::backward(er, xgrad::to<reference>(up));
        xgrad::backward(ed, xgrad::to<D>(up));
        for (std::size_t i = 0; i < pr.size(); ++i)
            expect_close(host(pd[i].grad()), host(pr[i].grad()), what + ": gradient " + std::to_string(i), rtol<T>, atol<T>);
    }
}

/// A key padding mask {B, Sk}: item b hides its last pads[b] keys.
inline xgrad::tensor<std::uint8_t> padding(std::size_t Sk, const std::vector<std::size_t>& pads) {
    auto m = xgrad::zeros<std::uint8_t>({pads.size(), Sk});
    for (std::size_t b = 0; b < pads.size(); ++b)
        for (std::size_t j = Sk - pads[b]; j < Sk; ++j) m.data()[b * Sk + j] = 1;
    return m;
}

}  // namespace nn_suite

BOOST_AUTO_TEST_CASE_TEMPLATE(lstm_two_bidirectional_layers_with_lengths_match_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    compare_rnn<D, float>(xgrad::rnn_kind::lstm, 2, true, false, true, 1000);
    compare_rnn<D, double>(xgrad::rnn_kind::lstm, 2, true, true, true, 1100);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(gru_and_lstm_configurations_match_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    compare_rnn<D, float>(xgrad::rnn_kind::gru, 2, true, true, true, 1200);
    compare_rnn<D, double>(xgrad::rnn_kind::gru, 2, true, false, true, 1300);
    compare_rnn<D, float>(xgrad::rnn_kind::gru, 1, false, false, false, 1400);
    compare_rnn<D, float>(xgrad::rnn_kind::lstm, 1, false, true, false, 1500);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(lstm_and_gru_modules_move_to_the_device, D, nn_suite::full) {
    using namespace nn_suite;
    namespace nn = xgrad::nn;
    const auto len = xgrad::tensor<std::int64_t>({3}, {5, 2, 4});
    // outputs, then x's and every parameter's gradient of sum(output * up) + sum(h_n)
    auto run = [&]<class M>(M model, const auto& xh, const auto& up) {
        using Dv = typename M::device_type;
        using T = typename M::value_type;
        auto x = xgrad::param(xgrad::to<Dv>(xh));
        auto out = model.forward(x, len);
        std::vector<std::vector<T>> r{host(xgrad::eval(out.output)), host(xgrad::eval(out.h_n))};
        xgrad::backward(xgrad::sum(out.output * xgrad::to<Dv>(up)) + xgrad::sum(out.h_n));
        r.push_back(host(x.grad()));
        model.for_each_member([&](const char*, auto& p) { r.push_back(host(p.grad())); });
        return r;
    };
    auto compare = [&](const auto& cpu_model, const auto& xh, const auto& up, const std::string& what, double rt, double at) {
        const auto want = run(xgrad::to<reference>(cpu_model), xh, up);
        const auto got = run(xgrad::to<D>(cpu_model), xh, up);
        BOOST_TEST_REQUIRE(got.size() == want.size());
        for (std::size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], what + " result " + std::to_string(i), rt, at);
    };
    xgrad::rng gen(2100);
    // dropout between the layers: both copies draw the masks from the same generator state
    nn::lstm<float> lstm(3, 4, {.num_layers = 2, .bidirectional = true, .batch_first = true, .dropout = 0.4}, gen);
    lstm.train();
    static_assert(std::is_same_v<typename decltype(xgrad::to<D>(lstm))::device_type, D>);
    compare(lstm, data({3, 5, 3}, 2101), data({3, 5, 8}, 2102, 0.5, 1.5), "nn::lstm", nn_suite::rtol<float>,
            nn_suite::atol<float>);
    nn::gru<double> gru(3, 4, {.num_layers = 2}, gen);
    compare(gru, data<double>({5, 3, 3}, 2103), data<double>({5, 3, 4}, 2104, 0.5, 1.5), "nn::gru double", nn_suite::rtol<double>,
            nn_suite::atol<double>);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(lstm_and_gru_cells_match_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    const std::size_t B = 3, I = 5, H = 4;
    auto cells = [&]<class T>(T, std::uint64_t seed) {
        const std::string t = std::is_same_v<T, double> ? " double" : " float";
        for (int out = 0; out < 2; ++out)
            compare_op<D>("lstm_cell " + std::string(out ? "c" : "h") + t,
                          [&](auto, auto& x, auto& h, auto& c, auto& wi, auto& wh, auto& bi, auto& bh) {
                              auto s = xgrad::lstm_cell(x, h, c, wi, wh, bi, bh);
                              return out ? s.c : s.h;
                          },
                          data<T>({B, I}, seed), data<T>({B, H}, seed + 1), data<T>({B, H}, seed + 2),
                          data<T>({4 * H, I}, seed + 3, -0.6, 0.6), data<T>({4 * H, H}, seed + 4, -0.6, 0.6),
                          data<T>({4 * H}, seed + 5), data<T>({4 * H}, seed + 6));
        compare_op<D>("gru_cell" + t,
                      [&](auto, auto& x, auto& h, auto& wi, auto& wh, auto& bi, auto& bh) {
                          return xgrad::gru_cell(x, h, wi, wh, bi, bh);
                      },
                      data<T>({B, I}, seed + 7), data<T>({B, H}, seed + 8), data<T>({3 * H, I}, seed + 9, -0.6, 0.6),
                      data<T>({3 * H, H}, seed + 10, -0.6, 0.6), data<T>({3 * H}, seed + 11), data<T>({3 * H}, seed + 12));
    };
    cells(float{}, 1600);
    cells(double{}, 1700);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(masked_softmax_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    // item 1 hides every key: its rows are zeros, with zero gradient
    const auto pad = padding(6, {2, 6, 0});
    for (bool causal : {false, true}) {
        const std::string c = causal ? " causal" : "";
        compare_op<D>("masked_softmax key padding" + c,
                      [&](auto, auto& a) { return xgrad::masked_softmax(a, xgrad::attention_mask::key_padding(pad, causal), 0.7); },
                      data({3, 2, 5, 6}, 1800, -6, 6));
        compare_op<D>("masked_softmax double key padding" + c,
                      [&](auto, auto& a) { return xgrad::masked_softmax(a, xgrad::attention_mask::key_padding(pad, causal), 0.7); },
                      data<double>({3, 2, 5, 6}, 1801, -6, 6));
    }
    compare_op<D>("masked_softmax causal only", [&](auto, auto& a) {
        return xgrad::masked_softmax(a, xgrad::attention_mask::causal_mask(), 1.3);
    }, data({4, 7, 7}, 1802, -6, 6));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(multihead_attention_with_masks_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    const std::size_t B = 3, S = 5, E = 8, heads = 2;
    const auto pad = padding(S, {0, 2, 4});
    auto packed = [&]<class T>(T, bool causal, bool batch_first, std::uint64_t seed) {
        xgrad::attention_options o;
        o.mask = xgrad::attention_mask::key_padding(pad, causal);
        o.batch_first = batch_first;
        compare_op<D>(std::string("multihead_attention packed") + (causal ? " causal" : "") + (batch_first ? "" : " seq-first") +
                          (std::is_same_v<T, double> ? " double" : " float"),
                      [&](auto, auto& qkv) { return xgrad::multihead_attention(qkv, heads, o); },
                      data<T>(batch_first ? shape_t{B, S, 3 * E} : shape_t{S, B, 3 * E}, seed));
    };
    packed(float{}, true, true, 1900);
    packed(float{}, false, true, 1901);
    packed(float{}, true, false, 1902);
    packed(double{}, true, true, 1903);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(multihead_attention_separate_inputs_and_dropout, D, nn_suite::full) {
    using namespace nn_suite;
    const std::size_t B = 2, Sq = 3, Sk = 6, E = 12, heads = 3;
    xgrad::attention_options o;
    o.mask = xgrad::attention_mask::key_padding(padding(Sk, {1, 3}));
    auto qkv = [&]<class T>(T, const xgrad::attention_options& opt, const std::string& what, std::uint64_t seed) {
        compare_op<D>(what + (std::is_same_v<T, double> ? " double" : " float"),
                      [&](auto, auto& q, auto& k, auto& v) { return xgrad::multihead_attention(q, k, v, heads, opt); },
                      data<T>({B, Sq, E}, seed), data<T>({B, Sk, E}, seed + 1), data<T>({B, Sk, E}, seed + 2));
    };
    qkv(float{}, o, "multihead_attention q, k, v key padding", 2000);
    qkv(double{}, o, "multihead_attention q, k, v key padding", 2010);
    // dropout on the weights: the device draws the CPU's mask from the seed
    o.training = true;
    o.dropout = 0.3;
    o.seed = 17;
    qkv(float{}, o, "multihead_attention q, k, v dropout", 2020);
    auto x = xgrad::to<D>(data({B, Sq, E}, 2030));
    const auto k = xgrad::to<D>(data({B, Sk, E}, 2031));
    BOOST_CHECK_THROW(xgrad::multihead_attention(x, k, k, 5, o), xgrad::shape_error);  // 12 % 5
    o.mask = xgrad::attention_mask::key_padding(padding(Sk + 1, {1, 3}));
    BOOST_CHECK_THROW(xgrad::multihead_attention(x, k, k, heads, o), xgrad::shape_error);
}

// --- attention layers ------------------------------------------------------------------------

namespace nn_suite {

/// sinusoidal + learned positions -> transformer encoder layer -> a linear head on every
/// position: every attention layer in one model, so one instantiation per (T, Act, device).
template <class T, class Act, class Dv>
struct tiny_encoder {
    using value_type = T;
    using device_type = Dv;
    xgrad::nn::sinusoidal_positional_encoding<T, Dv> sin_pos;
    xgrad::nn::learned_positional_embedding<T, Dv> pos;
    xgrad::nn::transformer_encoder_layer<T, Act, Dv> enc;
    xgrad::nn::linear<T, Dv> head;

    tiny_encoder(const xgrad::nn::transformer_encoder_layer_options& o, xgrad::rng& gen)
        : sin_pos(6, 8), pos(6, 8, gen), enc(8, 2, o, gen), head(8, 3, {}, gen) {}
    /// The model on Dv, each layer moved with xgrad::to<Dv>.
    template <class From>
    explicit tiny_encoder(const tiny_encoder<T, Act, From>& o)
        : sin_pos(xgrad::to<Dv>(o.sin_pos)), pos(xgrad::to<Dv>(o.pos)), enc(xgrad::to<Dv>(o.enc)), head(xgrad::to<Dv>(o.head)) {}

    template <class X>
    auto forward(X&& x, const xgrad::attention_mask& m) {
        return head.forward(enc.forward(pos.forward(sin_pos.forward(std::forward<X>(x))), m));
    }
    XGRAD_MODULE(pos, enc, head)
};

/// Every parameter of a host model set to random values (PyTorch's zero biases and unit
/// gammas would hide mistakes in their paths).
template <class M>
void randomize(M& model, std::uint64_t seed) {
    for (auto& [name, p] : xgrad::nn::named_parameters(model)) {
        using T = typename std::remove_cvref_t<decltype(p.value())>::value_type;
        p.value().assign(data<T>(p.shape(), ++seed, -0.7, 0.7));
    }
}

/// {name, values}: the model's output for input xh (a parameter on the model's device), then,
/// from backward with a pseudo-random upstream gradient, the input's gradient and every
/// parameter's.
template <class M, class T, class... A>
std::vector<std::pair<std::string, std::vector<T>>> layer_results(M& model, const xgrad::tensor<T>& xh, const A&... a) {
    using Dv = typename M::device_type;
    auto x = xgrad::param(xgrad::to<Dv>(xh));
    auto out = model.forward(x, a...);
    const auto y = xgrad::eval(out);
    std::vector<std::pair<std::string, std::vector<T>>> r{{"output", host(y)}};
    xgrad::backward(out, xgrad::to<Dv>(data<T>(y.shape(), 77, 0.5, 1.5)));
    r.emplace_back("input gradient", host(x.grad()));
    for (auto& [name, p] : xgrad::nn::named_parameters(model)) r.emplace_back(name + " gradient", host(p.grad()));
    return r;
}

template <class T>
void expect_results_close(const std::vector<std::pair<std::string, std::vector<T>>>& got,
                          const std::vector<std::pair<std::string, std::vector<T>>>& want, const std::string& what,
                          double rt = rtol<T>, double at = atol<T>) {
    BOOST_TEST_REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        BOOST_TEST(got[i].first == want[i].first);
        expect_close(got[i].second, want[i].second, what + ": " + got[i].first, rt, at);
    }
}

}  // namespace nn_suite

BOOST_AUTO_TEST_CASE_TEMPLATE(transformer_encoder_layers_match_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    namespace nn = xgrad::nn;
    const std::size_t B = 3, S = 5;
    // item 2 sees 1 key; with the causal mask its later queries see only that one
    const auto mask = xgrad::attention_mask::key_padding(padding(S, {0, 2, 4}), true);
    auto check = [&]<class T, class Act>(T, Act, bool norm_first, bool batch_first, std::uint64_t seed) {
        const std::string what = std::string("encoder ") + (std::is_same_v<Act, xgrad::activation::gelu_t> ? "gelu" : "relu") +
                                 (norm_first ? " norm_first" : " post-norm") + (batch_first ? "" : " seq-first") +
                                 (std::is_same_v<T, double> ? " double" : " float");
        xgrad::rng gen(seed);
        const nn::transformer_encoder_layer_options o{
            .dim_feedforward = 12, .dropout = 0, .batch_first = batch_first, .norm_first = norm_first};
        tiny_encoder<T, Act, cpu> model(o, gen);
        randomize(model, seed);
        nn::train(model);  // dropout 0: the barrier dropout is the identity, the attention's too
        // the reference moved with to<>, the device model built with other weights and filled
        // with copy_state
        tiny_encoder<T, Act, reference> ref(model);
        tiny_encoder<T, Act, D> dev(o, gen);
        nn::copy_state(dev, model);
        const auto xh = data<T>(batch_first ? shape_t{B, S, 8} : shape_t{S, B, 8}, seed + 100);
        expect_results_close(layer_results(dev, xh, mask), layer_results(ref, xh, mask), what);
    };
    check(float{}, xgrad::activation::relu, false, true, 2200);
    check(float{}, xgrad::activation::relu, true, false, 2210);
    check(double{}, xgrad::activation::gelu, true, true, 2220);
    check(double{}, xgrad::activation::gelu, false, false, 2230);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(multihead_attention_layer_over_query_key_value_matches_the_reference, D, nn_suite::full) {
    using namespace nn_suite;
    namespace nn = xgrad::nn;
    // separate q, k, v (the in-projection's bands narrowed on the device); attention dropout
    // in training: the device draws the CPU's mask from the layer's generator
    const std::size_t B = 2, Sq = 3, Sk = 6, E = 12;
    const auto mask = xgrad::attention_mask::key_padding(padding(Sk, {1, 3}));
    const auto qh = data({B, Sq, E}, 2300), kh = data({B, Sk, E}, 2301), vh = data({B, Sk, E}, 2302);
    auto run = [&]<class M>(M model) {
        using Dv = typename M::device_type;
        auto q = xgrad::param(xgrad::to<Dv>(qh));
        auto k = xgrad::param(xgrad::to<Dv>(kh));
        auto v = xgrad::param(xgrad::to<Dv>(vh));
        auto out = model.forward(q, k, v, mask);
        std::vector<std::pair<std::string, std::vector<float>>> r{{"output", host(xgrad::eval(out))}};
        xgrad::backward(out, xgrad::to<Dv>(data({B, Sq, E}, 2303, 0.5, 1.5)));
        r.emplace_back("query gradient", host(q.grad()));
        r.emplace_back("key gradient", host(k.grad()));
        r.emplace_back("value gradient", host(v.grad()));
        for (auto& [name, p] : nn::named_parameters(model)) r.emplace_back(name + " gradient", host(p.grad()));
        return r;
    };
    xgrad::rng gen(2304);
    for (double p : {0.0, 0.3}) {
        nn::multihead_attention<float> mha(E, 3, {.dropout = p}, gen);
        randomize(mha, 2305);
        mha.train();
        static_assert(std::is_same_v<typename decltype(xgrad::to<D>(mha))::device_type, D>);
        expect_results_close(run(xgrad::to<D>(mha)), run(xgrad::to<reference>(mha)),
                             "multihead_attention q, k, v dropout " + std::to_string(p));
    }
    // a layer built on the device with the CPU layer's seed has its weights
    xgrad::rng g1(2306), g2(2306);
    nn::multihead_attention<float> on_cpu(E, 3, {}, g1);
    nn::multihead_attention<float, D> on_dev(E, 3, {}, g2);
    auto pc = nn::named_parameters(on_cpu);
    auto pd = nn::named_parameters(on_dev);
    BOOST_TEST_REQUIRE(pc.size() == pd.size());
    for (std::size_t i = 0; i < pc.size(); ++i) {
        BOOST_TEST(pd[i].first == pc[i].first);
        BOOST_TEST(host(pd[i].second.value()) == host(pc[i].second.value()));
    }
    BOOST_CHECK_THROW(on_dev.forward(xgrad::to<D>(data({B, Sq, E + 1}, 2307))), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(transformer_encoder_dropout_on_the_device, D, nn_suite::full) {
    using namespace nn_suite;
    namespace nn = xgrad::nn;
    using relu = xgrad::activation::relu_t;
    // the barrier dropout's device driver: kept fraction, survivors scaled, gradient = mask;
    // without a mask the identity both ways
    const std::size_t n = 1 << 15;
    const auto xh = data({n}, 2400, 1, 2);
    const auto xv = xh.to_vector();
    for (double p : {0.2, 0.6}) {
        xgrad::rng gen(2401);
        const float keep = static_cast<float>(1.0 / (1.0 - p));
        auto x = xgrad::param(xgrad::to<D>(xh));
        auto e = xgrad::make_op(
            xgrad::detail::barrier_dropout_impl<float, D>{xgrad::detail::dropout_keep_mask<float, D>({n}, p, gen)}, x);
        const auto y = host(xgrad::eval(e));
        xgrad::backward(xgrad::sum(e));
        const auto g = host(x.grad());
        const auto seen = inspect_dropout(y, g, xv, keep);
        BOOST_TEST(std::abs(seen.kept_fraction - (1 - p)) < 0.015, "p " << p << ": kept " << seen.kept_fraction);
        BOOST_TEST(seen.values_ok, "p " << p << ": survivors are x / (1 - p), the rest 0");
        BOOST_TEST(seen.same_mask, "p " << p << ": the gradient is the forward's mask");
    }
    auto x = xgrad::param(xgrad::to<D>(xh));
    auto id = xgrad::make_op(xgrad::detail::barrier_dropout_impl<float, D>{}, x);
    BOOST_TEST(host(xgrad::eval(id)) == xv);
    xgrad::backward(id, xgrad::to<D>(xh));
    BOOST_TEST(host(x.grad()) == xv);

    // the layers in training with dropout 0.3 (the elementwise and barrier masks are the
    // device's, not the CPU's): two copies with one generator state agree, a second pass draws
    // new masks, evaluation matches the reference
    const std::size_t B = 3, S = 5;
    const auto mask = xgrad::attention_mask::key_padding(padding(S, {0, 2, 4}), true);
    xgrad::rng gen(2402);
    tiny_encoder<float, relu, cpu> model({.dim_feedforward = 12, .dropout = 0.3}, gen);
    randomize(model, 2403);
    nn::train(model);
    const auto xin = data({B, S, 8}, 2404);
    tiny_encoder<float, relu, D> a(model), b(model);
    const auto ra = layer_results(a, xin, mask);
    expect_results_close(layer_results(b, xin, mask), ra, "dropout 0.3, two copies");
    const auto ra2 = layer_results(a, xin, mask);
    BOOST_TEST(ra2[0].second != ra[0].second, "a new pass draws new masks");
    for (const auto& [name, v] : ra)
        BOOST_TEST(std::all_of(v.begin(), v.end(), [](float f) { return std::isfinite(f); }), name << " is finite");
    nn::train(model, false);
    tiny_encoder<float, relu, reference> ref_eval(model);
    tiny_encoder<float, relu, D> dev_eval(model);
    const auto re = layer_results(dev_eval, xin, mask);
    expect_results_close(re, layer_results(ref_eval, xin, mask), "dropout 0.3, evaluation");
    BOOST_TEST(re[0].second != ra[0].second, "training drops, evaluation does not");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_transformer_trains_the_same_on_the_device, D, nn_suite::full) {
    using namespace nn_suite;
    namespace nn = xgrad::nn;
    using relu = xgrad::activation::relu_t;
    // tiny_encoder, mean over the positions, cross_entropy; plain SGD. Dropout 0: every step's
    // loss equals the reference's; dropout 0.2: the device model still learns the batch.
    const std::size_t B = 6, S = 5;
    const auto mask = xgrad::attention_mask::key_padding(padding(S, {0, 1, 2, 0, 3, 1}));
    const auto xh = data({B, S, 8}, 2500);
    const auto yh = labels({B}, 3, 2501);
    auto train = [&]<class Dv>(on<Dv>, double dropout) {
        xgrad::rng gen(2502);  // built on Dv from one seed: the same weights everywhere
        tiny_encoder<float, relu, Dv> model({.dim_feedforward = 16, .dropout = dropout}, gen);
        nn::train(model);
        auto x = xgrad::param(xgrad::to<Dv>(xh));  // a parameter, as in layer_results: one forward type
        const auto y = xgrad::to<Dv>(yh);
        auto params = nn::parameters(model);
        std::vector<float> losses;
        for (int step = 0; step < 20; ++step) {
            for (auto& p : params) p.zero_grad();
            auto logits = xgrad::mean(model.forward(x, mask), 1);  // {B, 3}
            losses.push_back(xgrad::backward(xgrad::cross_entropy(logits, y, ce_mean<float>{})));
            for (auto& p : params) p.value().assign(xgrad::eval(p.value() - 0.2f * p.grad()));
        }
        return losses;
    };
    const auto want = train(on<reference>{}, 0.0);
    const auto got = train(on<D>{}, 0.0);
    expect_close(got, want, "losses", 1e-4, 1e-5);
    BOOST_TEST(got.back() < 0.5f * got.front(), "loss " << got.front() << " -> " << got.back());
    const auto dropped = train(on<D>{}, 0.2);
    BOOST_TEST(dropped.back() < 0.7f * dropped.front(), "with dropout, loss " << dropped.front() << " -> " << dropped.back());
}

// --- together --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(a_small_network_trains_the_same_on_the_device, D, nn_suite::full) {
    using namespace nn_suite;
    // embedding -> layer_norm -> softmax attention over the sequence -> cross_entropy, a few
    // SGD steps on both devices
    const auto idx = labels({8, 6}, 12, 950);
    const auto y = labels({8}, 4, 951);
    auto run = [&](auto dv) {
        using Dv = typename decltype(dv)::type;
        auto emb = xgrad::param(xgrad::to<Dv>(data({12, 4}, 952)));
        auto gain = xgrad::param(xgrad::to<Dv>(data({4}, 953, 0.5, 1.5)));
        const auto ids = xgrad::to<Dv>(idx);
        const auto lab = xgrad::to<Dv>(y);
        std::vector<float> losses;
        for (int step = 0; step < 5; ++step) {
            emb.zero_grad();
            gain.zero_grad();
            auto h = xgrad::layer_norm(xgrad::embedding(ids, emb), shape_t{4}) * gain;  // {8, 6, 4}
            auto logits = xgrad::sum(h * xgrad::softmax(h, 1), 1);                      // {8, 4}
            losses.push_back(xgrad::backward(xgrad::cross_entropy(logits, lab, ce_mean<float>{.label_smoothing = 0.05})));
            emb.value().assign(xgrad::eval(emb.value() - 0.5f * emb.grad()));
            gain.value().assign(xgrad::eval(gain.value() - 0.5f * gain.grad()));
        }
        return losses;
    };
    const auto want = run(on<reference>{});
    const auto got = run(on<D>{});
    expect_close(got, want, "losses", 1e-4, 1e-5);
    BOOST_TEST(got.back() < got.front());
}
