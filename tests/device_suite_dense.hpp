// The dense ops on a device: matmul, linear (with every fused bias + activation epilogue) and
// conv2d, and the device GEMM under them. Every check computes the same op on a reference
// device and on the device under test and compares the values and every operand's gradient to
// float32 (or float64) tolerance. Included by test_thrust_dense.cpp (reference: the CPU
// backend; thrust_omp, and thrust_cpp for the subset) and by cuda/test_cuda_dense.cu
// (reference: thrust_cpp); the includer defines the Boost.Test module and, before including it:
//   device_suite::reference  the device results are compared with
//   device_suite::full       devices that run every check
//   device_suite::subset     devices that run the core checks
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <xgrad/device.hpp>

#include "device_test_support.hpp"

namespace dense_suite {

using xgrad::shape_t;
using reference = device_suite::reference;
namespace act = xgrad::activation;

using device_test::host;

/// Relative and absolute tolerance of one element type: results differ by the order of the
/// sums inside the GEMMs and by a few ulp of the activations.
template <class T>
struct tol {
    static constexpr double rel = std::is_same_v<T, float> ? 1e-4 : 1e-10;
    static constexpr double abs = std::is_same_v<T, float> ? 5e-5 : 1e-11;
};

/// |got - want| <= abs + rel |want| elementwise.
template <class T>
void expect_close(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
    BOOST_TEST_INFO(what);
    BOOST_TEST_REQUIRE(got.size() == want.size());
    int bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        if (!(std::abs(g - w) <= tol<T>::abs + tol<T>::rel * std::abs(w)) && bad++ < 5)
            BOOST_ERROR(what << ": element " << i << " is " << g << ", want " << w);
    }
    if (bad > 5) BOOST_ERROR(what << ": " << bad << " elements differ");
}

/// Values in [-1, 1) from a seed.
template <class T>
xgrad::tensor<T> data(const shape_t& s, std::uint64_t seed) {
    xgrad::rng g(seed);
    return xgrad::uniform<T>(s, g, T(-1), T(1));
}

/// f(operands...) on the reference and on D: the value, then backward with a random upstream
/// gradient of the output's shape (every output element its own): every operand's gradient.
template <class D, class F, class H0, class... H>
void check(const std::string& what, F f, const H0& h0, const H&... h) {
    using T = typename H0::value_type;
    auto pr = std::tuple{xgrad::param(xgrad::to<reference>(h0.clone())), xgrad::param(xgrad::to<reference>(h.clone()))...};
    auto pd = std::tuple{xgrad::param(xgrad::to<D>(h0)), xgrad::param(xgrad::to<D>(h))...};
    const auto er = std::apply(f, pr);
    const auto ed = std::apply(f, pd);
    const auto want = xgrad::eval(er);
    const auto got = xgrad::eval(ed);
    static_assert(std::is_same_v<typename decltype(got)::device_type, D>, "the result must stay on the device");
    BOOST_TEST_INFO(what);
    BOOST_TEST_REQUIRE(got.shape() == want.shape());
    expect_close(host(got), host(want), what + ": value");

    const auto u = data<T>(want.shape(), 4242);
    xgrad::backward(er, xgrad::to<reference>(u.clone()));
    xgrad::backward(ed, xgrad::to<D>(u));
    std::apply(
        [&](auto&... r) {
            std::apply(
                [&](auto&... d) {
                    int i = 0;
                    (expect_close(host(d.grad()), host(r.grad()), what + ": gradient " + std::to_string(i++)), ...);
                },
                pd);
        },
        pr);
}

/// Runs f(act) for every epilogue activation.
template <class F>
void for_each_activation(F&& f) {
    f(act::identity);
    f(act::relu);
    f(act::gelu);
    f(act::tanh);
    f(act::sigmoid);
}

/// Restores conv2d's column budget on the Thrust devices (a test lowers it to force chunks).
struct budget_guard {
    std::size_t saved = xgrad::detail::thrust_backend::conv_cols_budget();
    ~budget_guard() { xgrad::detail::thrust_backend::conv_cols_budget() = saved; }
};

/// A random batched product: batch shapes that broadcast against each other (1s put in at
/// random on either side), matrix sizes 1..6.
inline std::pair<shape_t, shape_t> random_product_shapes(xgrad::rng& g) {
    auto pick = [&](std::size_t lo, std::size_t hi) { return lo + static_cast<std::size_t>(g.uniform() * double(hi - lo + 1)); };
    const std::size_t rank = pick(0, 3), M = pick(1, 6), K = pick(1, 6), N = pick(1, 6);
    shape_t ba, bb;
    for (std::size_t d = 0; d < rank; ++d) {
        const std::size_t e = pick(2, 3);
        const double r = g.uniform();
        ba.push_back(r < 0.3 ? 1 : e);
        bb.push_back(r > 0.7 ? 1 : e);
    }
    if (!ba.empty() && g.uniform() < 0.4) ba.erase(ba.begin());  // a shorter batch shape
    ba.insert(ba.end(), {M, K});
    bb.insert(bb.end(), {K, N});
    return {ba, bb};
}

/// One convolution configuration of the suite.
struct conv_case {
    shape_t x, w;
    xgrad::conv2d_options opt;
    std::string name;
};

inline std::vector<conv_case> conv_cases() {
    using xgrad::size2;
    return {
        {{2, 3, 7, 6}, {4, 3, 3, 3}, {.stride = 1, .padding = 1}, "3x3 same padding"},
        {{2, 4, 9, 8}, {6, 2, 3, 2}, {.stride = {2, 1}, .padding = {1, 0}, .groups = 2}, "strided, 2 groups"},
        {{3, 4, 10, 10}, {4, 1, 3, 3}, {.stride = 2, .padding = 2, .dilation = 2, .groups = 4}, "depthwise, dilated"},
        {{2, 3, 5, 5}, {5, 3, 1, 1}, {}, "pointwise"},
        {{1, 3, 5, 6}, {2, 3, 1, 1}, {.stride = 2}, "strided 1x1"},
        {{2, 2, 6, 7}, {4, 1, 2, 3}, {.stride = {1, 2}, .padding = {0, 1}, .dilation = {2, 1}, .groups = 2},
         "mixed stride/padding/dilation"},
    };
}

/// Naive C_i = alpha op(A_i) op(B_i) + beta C_i in double, the reference of the GEMM checks.
template <class T>
std::vector<T> naive_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, double alpha, const std::vector<T>& a,
                          std::size_t lda, std::ptrdiff_t sa, const std::vector<T>& b, std::size_t ldb, std::ptrdiff_t sb,
                          double beta, std::vector<T> c, std::size_t ldc, std::ptrdiff_t sc, std::size_t batch) {
    for (std::size_t q = 0; q < batch; ++q)
        for (std::size_t i = 0; i < M; ++i)
            for (std::size_t j = 0; j < N; ++j) {
                double s = 0;
                for (std::size_t k = 0; k < K; ++k) {
                    const double x = a[q * sa + (ta ? k * lda + i : i * lda + k)];
                    const double y = b[q * sb + (tb ? j * ldb + k : k * ldb + j)];
                    s += x * y;
                }
                T& z = c[q * sc + i * ldc + j];
                z = static_cast<T>(alpha * s + (beta == 0 ? 0.0 : beta * double(z)));
            }
    return c;
}

}  // namespace dense_suite

// --- the device GEMM ------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(device_gemm_transposes_strides_alpha_beta, D, device_suite::subset) {
    using namespace dense_suite;
    namespace tb = xgrad::detail::thrust_backend;
    struct gcase {
        bool ta, tb;
        std::size_t M, N, K, pad;  // pad: extra columns in every leading dimension
        std::ptrdiff_t batch;
        bool shared_a;  // stride 0: one A for every batch
        double alpha, beta;
    };
    const gcase cases[] = {
        {false, false, 5, 4, 3, 0, 1, false, 1.0, 0.0},  {true, false, 3, 6, 4, 1, 2, false, 0.5, 0.0},
        {false, true, 4, 2, 7, 2, 3, true, 1.0, -2.0},   {true, true, 6, 5, 2, 0, 2, false, -1.5, 0.25},
        {false, false, 3, 4, 0, 1, 2, false, 1.0, 3.0},  // K = 0: C = beta C
        {false, true, 1, 1, 9, 0, 4, true, 2.0, 1.0},
    };
    int seed = 1;
    for (const gcase& c : cases) {
        const std::size_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K, br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
        const std::size_t lda = ac + c.pad, ldb = bc + c.pad, ldc = c.N + c.pad;
        const std::size_t nb = static_cast<std::size_t>(c.batch);
        const auto sa = c.shared_a ? std::ptrdiff_t{0} : static_cast<std::ptrdiff_t>(ar * lda);
        const auto sb = static_cast<std::ptrdiff_t>(br * ldb), sc = static_cast<std::ptrdiff_t>(c.M * ldc);
        const auto a = data<float>({(c.shared_a ? 1 : nb) * ar * lda + 1}, seed++);
        const auto b = data<float>({nb * br * ldb + 1}, seed++);
        const auto c0 = data<float>({nb * c.M * ldc}, seed++);
        const auto want = naive_gemm<float>(c.ta, c.tb, c.M, c.N, c.K, c.alpha, a.to_vector(), lda, sa, b.to_vector(), ldb, sb,
                                            c.beta, c0.to_vector(), ldc, sc, nb);
        const auto ad = xgrad::to<D>(a), bd = xgrad::to<D>(b);
        const auto cd = xgrad::to<D>(c0).clone();
        tb::gemm_strided_batched<D, float>("test", c.ta, c.tb, c.M, c.N, c.K, float(c.alpha), ad.data(), lda, sa, bd.data(), ldb,
                                           sb, float(c.beta), cd.data(), ldc, sc, nb);
        expect_close(host(cd), want, "gemm case " + std::to_string(seed / 3));
    }
}

// --- matmul ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(matmul_matrices_and_vectors, D, device_suite::subset) {
    using namespace dense_suite;
    const auto mm = [](const auto& a, const auto& b) { return xgrad::matmul(a, b); };
    const std::pair<shape_t, shape_t> cases[] = {
        {{5, 7}, {7, 3}}, {{1, 4}, {4, 1}}, {{7}, {7}}, {{7}, {7, 3}}, {{5, 7}, {7}}, {{0, 3}, {3, 4}}, {{4, 3}, {3, 0}},
    };
    std::uint64_t seed = 10;
    for (const auto& [sa, sb] : cases) {
        check<D>("matmul " + xgrad::to_string(sa) + " x " + xgrad::to_string(sb), mm, data<float>(sa, seed),
                 data<float>(sb, seed + 1));
        seed += 2;
    }
}

template <class D, class T>
void check_batched_products() {
    using namespace dense_suite;
    const auto mm = [](const auto& a, const auto& b) { return xgrad::matmul(a, b); };
    std::vector<std::pair<shape_t, shape_t>> cases = {
        {{3, 4, 5}, {5, 2}},          // b shared: one GEMM over every row
        {{4, 5}, {3, 5, 2}},          // a shared: its gradient summed over the batch
        {{2, 1, 4, 5}, {3, 5, 2}},    // both broadcast: a copied to every batch
        {{2, 3, 4, 5}, {2, 3, 5, 6}}, // same batch
        {{1, 4, 5}, {3, 5, 2}},       //
        {{5}, {3, 5, 2}},             // 1-D times batched
        {{3, 4, 5}, {5}},             // batched times 1-D
        {{2, 1, 3, 4}, {1, 5, 4, 2}}, // each broadcasts along a different dimension
        {{1, 1, 3, 4}, {4, 2}},       // batch dimensions of one
    };
    xgrad::rng g(77);
    for (int i = 0; i < 8; ++i) cases.push_back(random_product_shapes(g));
    std::uint64_t seed = 100;
    for (const auto& [sa, sb] : cases) {
        check<D>(std::string(std::is_same_v<T, float> ? "float" : "double") + " matmul " + xgrad::to_string(sa) + " x " +
                     xgrad::to_string(sb),
                 mm, data<T>(sa, seed), data<T>(sb, seed + 1));
        seed += 2;
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(batched_matmul_broadcasts_like_the_cpu, D, device_suite::full) {
    check_batched_products<D, float>();
    check_batched_products<D, double>();
}

// --- linear and the fused epilogues ---------------------------------------------------------

template <class D, class T, class A, bool Bias>
void check_linear(const std::string& what) {
    using namespace dense_suite;
    const auto w = dense_suite::data<T>({4, 7}, 2);
    const std::string n = std::string(std::is_same_v<T, float> ? "float " : "double ") + A::name + what;
    if constexpr (Bias)
        check<D>(n, [](const auto& x, const auto& w, const auto& b) { return xgrad::linear(x, w, b, A{}); },
                 data<T>({2, 3, 7}, 1), w, data<T>({4}, 3));
    else
        check<D>(n, [](const auto& x, const auto& w) { return xgrad::linear(x, w, A{}); }, data<T>({6, 7}, 4), w);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(linear_with_every_epilogue, D, device_suite::full) {
    using namespace dense_suite;
    // every activation with a bias; one without (the epilogue without its bias); double
    // precision with the two epilogue kinds (one reading y, gelu keeping z)
    for_each_activation([](auto a) { check_linear<D, float, decltype(a), true>(" linear(x, W, b, act)"); });
    check_linear<D, float, act::gelu_t, false>(" linear(x, W, act)");
    check_linear<D, double, act::tanh_t, true>(" linear(x, W, b, act)");
    check_linear<D, double, act::gelu_t, true>(" linear(x, W, b, act)");
}

BOOST_AUTO_TEST_CASE_TEMPLATE(fused_activations_of_products_plus_a_bias, D, device_suite::full) {
    using namespace dense_suite;
    const auto a = data<float>({5, 6}, 11), b = data<float>({6, 3}, 12);
    // the fusions activation(matmul(a, b) + c) picks, with c a row, a column, an enlarging tensor
    // (two activations: their epilogues are checked one by one in linear_with_every_epilogue)
    check<D>("relu(matmul + row)", [](const auto& a, const auto& b, const auto& c) { return xgrad::relu(xgrad::matmul(a, b) + c); },
             a, b, data<float>({3}, 13));
    check<D>("gelu(matmul + column)",
             [](const auto& a, const auto& b, const auto& c) { return xgrad::gelu(xgrad::matmul(a, b) + c); }, a, b,
             data<float>({5, 1}, 14));
    check<D>("gelu(column + matmul)",
             [](const auto& a, const auto& b, const auto& c) { return xgrad::gelu(c + xgrad::matmul(a, b)); }, a, b,
             data<float>({5, 1}, 15));
    check<D>("relu(matmul + enlarging)",
             [](const auto& a, const auto& b, const auto& c) { return xgrad::relu(xgrad::matmul(a, b) + c); }, a, b,
             data<float>({2, 1, 3}, 16));
    check<D>("gelu(batched matmul + row)",
             [](const auto& a, const auto& b, const auto& c) { return xgrad::gelu(xgrad::matmul(a, b) + c); },
             data<float>({2, 5, 6}, 17), data<float>({2, 6, 3}, 18), data<float>({3}, 19));
    check<D>("relu(linear + enlarging)",
             [](const auto& x, const auto& w, const auto& c) { return xgrad::relu(xgrad::linear(x, w) + c); },
             data<float>({4, 6}, 20), data<float>({3, 6}, 21), data<float>({2, 4, 3}, 22));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_two_layer_network_trains_like_the_cpu, D, device_suite::subset) {
    using namespace dense_suite;
    // loss of tanh(x W1^T + b1) W2^T + b2 against a target: nested dense ops, their epilogues
    // and an elementwise loss, all gradients
    const auto net = [](const auto& x, const auto& w1, const auto& b1, const auto& w2, const auto& b2, const auto& y) {
        return xgrad::mean(xgrad::square(xgrad::linear(xgrad::linear(x, w1, b1, act::tanh), w2, b2) - y));
    };
    check<D>("two-layer network", net, data<float>({16, 8}, 31), data<float>({12, 8}, 32), data<float>({12}, 33),
             data<float>({3, 12}, 34), data<float>({3}, 35), data<float>({16, 3}, 36));
}

// --- conv2d ---------------------------------------------------------------------------------

template <class D, class T>
void check_convolutions() {
    using namespace dense_suite;
    const std::string type = std::is_same_v<T, float> ? "float " : "double ";
    std::uint64_t seed = 200;
    for (const conv_case& c : conv_cases()) {
        const auto x = data<T>(c.x, seed), w = data<T>(c.w, seed + 1), b = data<T>({c.w[0]}, seed + 2);
        seed += 3;
        const xgrad::conv2d_options o = c.opt;
        const auto with = [&](auto a) {
            using A = decltype(a);
            check<D>(type + c.name + ": conv2d(x, w, b, " + A::name + ")",
                     [o](const auto& x, const auto& w, const auto& b) { return xgrad::conv2d(x, w, b, o, A{}); }, x, w, b);
        };
        with(act::gelu);  // the epilogue keeping z
        if constexpr (std::is_same_v<T, float>) {
            check<D>(type + c.name + ": conv2d(x, w)", [o](const auto& x, const auto& w) { return xgrad::conv2d(x, w, o); },
                     x, w);
            with(act::tanh);  // one reading y
            check<D>(type + c.name + ": relu(conv2d(x, w))",
                     [o](const auto& x, const auto& w) { return xgrad::relu(xgrad::conv2d(x, w, o)); }, x, w);
        }
    }
}

BOOST_AUTO_TEST_CASE_TEMPLATE(conv2d_configurations_match_the_cpu, D, device_suite::full) {
    check_convolutions<D, float>();
    check_convolutions<D, double>();
}

BOOST_AUTO_TEST_CASE_TEMPLATE(conv2d_in_chunks_of_samples, D, device_suite::subset) {
    using namespace dense_suite;
    budget_guard guard;
    const auto x = data<float>({5, 4, 6, 5}, 400), w = data<float>({6, 2, 3, 2}, 401), b = data<float>({6}, 402);
    const xgrad::conv2d_options o{.stride = {1, 2}, .padding = 1, .groups = 2};
    const std::size_t per_sample = 4 * 3 * 2 * 6 * 3;  // C KH KW OH OW
    for (std::size_t per : {std::size_t{1}, std::size_t{2}, std::size_t{5}}) {
        xgrad::detail::thrust_backend::conv_cols_budget() = per * per_sample;
        check<D>(std::to_string(per) + " samples per chunk",
                 [o](const auto& x, const auto& w, const auto& b) { return xgrad::conv2d(x, w, b, o, act::gelu); }, x, w, b);
    }
    const auto xp = data<float>({3, 4, 3, 3}, 403), wp = data<float>({2, 4, 1, 1}, 404);
    for (std::size_t per : {std::size_t{1}, std::size_t{2}}) {  // pointwise: x is the column matrix of one sample
        xgrad::detail::thrust_backend::conv_cols_budget() = per * 4 * 9;
        check<D>("pointwise, " + std::to_string(per) + " samples per chunk",
                 [](const auto& x, const auto& w) { return xgrad::conv2d(x, w); }, xp, wp);
    }
}

// --- errors ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(dense_shape_errors, D, device_suite::subset) {
    const auto t = [](const xgrad::shape_t& s) { return xgrad::zeros<float, D>(s); };
    const auto message = [](auto f) {
        try {
            f();
        } catch (const xgrad::shape_error& e) {
            return std::string(e.what());
        }
        return std::string("no shape_error");
    };
    BOOST_CHECK_THROW(xgrad::matmul(t({3, 4}), t({5, 2})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::matmul(t({2, 3, 4}), t({3, 4, 5})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::matmul(t({}), t({3})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::linear(t({2, 4}), t({2, 3, 4})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::linear(t({2, 4}), t({3, 5}), t({3})), xgrad::shape_error);
    BOOST_TEST(message([&] { (void)xgrad::matmul(t({3, 4}), t({5, 2})); }).find("matmul: cannot multiply shapes") == 0u);
    BOOST_TEST(message([&] { (void)xgrad::linear(t({3, 4}), t({2, 5})); }).find("linear:") == 0u);
    BOOST_CHECK_THROW(xgrad::conv2d(t({1, 3, 5, 5}), t({4, 2, 3, 3})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::conv2d(t({1, 4, 5, 5}), t({4, 2, 3, 3}), {.groups = 3}), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::conv2d(t({1, 3, 2, 2}), t({4, 3, 3, 3})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::conv2d(t({1, 3, 5, 5}), t({4, 3, 3, 3}), t({3})), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::conv2d(t({3, 5, 5}), t({4, 3, 3, 3})), xgrad::shape_error);
    BOOST_TEST(message([&] { (void)xgrad::conv2d(t({1, 3, 5, 5}), t({4, 2, 3, 3})); }).find("conv2d:") == 0u);
    BOOST_CHECK_THROW(xgrad::conv2d(t({1, 3, 5, 5}), t({4, 3, 3, 3}), {.stride = 0}), xgrad::value_error);
}
