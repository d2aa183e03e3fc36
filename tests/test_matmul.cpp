#define BOOST_TEST_MODULE matmul
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>
#include <type_traits>

#include "dense_reference.hpp"

using namespace xgrad;
using dense_test::check_close;
using dense_test::check_gradients;
using dense_test::check_throws;

namespace {

const dense_test::reference& ref() {
    static const dense_test::reference r("dense_matmul.txt");
    return r;
}

/// Naive float64 C = op(A) op(B) for checking the GEMMs.
std::vector<double> naive_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, const std::vector<double>& a,
                               const std::vector<double>& b) {
    std::vector<double> c(M * N, 0.0);
    for (std::size_t i = 0; i < M; ++i)
        for (std::size_t j = 0; j < N; ++j) {
            double s = 0;
            for (std::size_t k = 0; k < K; ++k) s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
            c[i * N + j] = s;
        }
    return c;
}

template <class T>
void reference_cases() {
    const auto& r = ref();
    using P = std::vector<parameter<T>>;
    for (const char* c : {"mm2d", "mm_batch_x_2d", "mm_broadcast_batch", "mm_vec_x_batch", "mm_mat_x_vec"})
        dense_test::run_reference_case<T>(r, c, {"a", "b"}, [](P& p) { return matmul(p[0], p[1]); });
    dense_test::run_reference_case<T>(r, "linear", {"x", "W", "b"}, [](P& p) { return linear(p[0], p[1], p[2]); });
    // explicit fused form and the expression forms that pick it
    dense_test::run_reference_case<T>(r, "linear_relu", {"x", "W", "b"},
                                      [](P& p) { return linear(p[0], p[1], p[2], activation::relu); });
    dense_test::run_reference_case<T>(r, "linear_tanh", {"x", "W", "b"},
                                      [](P& p) { return xgrad::tanh(linear(p[0], p[1], p[2])); });
    dense_test::run_reference_case<T>(r, "linear_sigmoid", {"x", "W", "b"},
                                      [](P& p) { return linear(p[0], p[1], p[2], activation::sigmoid); });
    dense_test::run_reference_case<T>(r, "linear_gelu", {"x", "W", "b"},
                                      [](P& p) { return gelu(linear(p[0], p[1], p[2])); });
    dense_test::run_reference_case<T>(r, "relu_mm_bias", {"a", "b", "c"},
                                      [](P& p) { return relu(matmul(p[0], p[1]) + p[2]); });
    dense_test::run_reference_case<T>(r, "tanh_mm_bias", {"a", "b", "c"},
                                      [](P& p) { return xgrad::tanh(p[2] + matmul(p[0], p[1])); });
    dense_test::run_reference_case<T>(r, "sigmoid_mm_bias", {"a", "b", "c"},
                                      [](P& p) { return sigmoid(matmul(p[0], p[1]) + p[2]); });
    dense_test::run_reference_case<T>(r, "gelu_mm_bias", {"a", "b", "c"},
                                      [](P& p) { return gelu(matmul(p[0], p[1]) + p[2]); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_pytorch_float64_and_float32) {
    dense_test::settings_guard guard;
    for (auto be : dense_test::gemm_backends()) {
        BOOST_TEST_CONTEXT("gemm backend " << dense_test::backend_name(be)) {
            set_gemm_backend(be);
            reference_cases<double>();
            reference_cases<float>();
        }
    }
}

BOOST_AUTO_TEST_CASE(gemm_kernels_match_naive_product) {
    dense_test::settings_guard guard;
    rng g(11);
    // sizes straddle the built-in GEMM's register and cache blocks (MR 8, MC 96, KC 256)
    // {100, 70, 300} and {20, 300, 400} are split over 2 threads along M and along N; {48, 48, 300}
    // is a tie (split along N when B is transposed); {40, 80, 100} and {9, 97, 513} end in a
    // panel at most one SIMD vector wide (the narrow edge kernel), on one thread and on two.
    // Where B is not transposed and its rows start on cache lines (N a multiple of 16 floats
    // or 8 doubles: 48, 80, 784), whole panels are read in place and only the last, narrower
    // one is packed; {37, 784, 300} has that over two K blocks with a partial row tile.
    const std::size_t sizes[][3] = {{1, 1, 1},      {7, 33, 5},     {100, 70, 300}, {9, 97, 513},
                                    {131, 17, 20},  {4, 6, 0},      {20, 300, 400}, {48, 48, 300},
                                    {40, 80, 100},  {37, 784, 300}};
    for (auto be : dense_test::gemm_backends())
        for (std::size_t threads : {1, 2}) {
            set_gemm_backend(be);
            set_num_threads(threads);
            for (auto& s : sizes)
                for (int ta = 0; ta < 2; ++ta)
                    for (int tb = 0; tb < 2; ++tb) {
                        const std::size_t M = s[0], N = s[1], K = s[2];
                        auto a = randn<double>({M * K}, g), b = randn<double>({K * N}, g), c = randn<double>({M * N}, g);
                        const auto want = naive_gemm(ta, tb, M, N, K, a.to_vector(), b.to_vector());
                        const auto c0 = c.to_vector();
                        detail::gemm<double>(ta, tb, M, N, K, 0.5, a.data(), ta ? M : K, b.data(), tb ? K : N, 2.0,
                                             c.data(), N);
                        auto cf = c0;
                        auto af = a.astype<float>(), bf = b.astype<float>();
                        std::vector<float> cfl(c0.begin(), c0.end());
                        detail::gemm<float>(ta, tb, M, N, K, 0.5f, af.data(), ta ? M : K, bf.data(), tb ? K : N, 2.0f,
                                            cfl.data(), N);
                        double err = 0, errf = 0;
                        for (std::size_t i = 0; i < M * N; ++i) {
                            const double w = 0.5 * want[i] + 2.0 * c0[i];
                            err = std::max(err, std::fabs(c.data()[i] - w));
                            errf = std::max(errf, std::fabs(cfl[i] - w) / (1 + std::fabs(w)));
                        }
                        BOOST_TEST(err < 1e-11, dense_test::backend_name(be) << " " << M << "x" << N << "x" << K
                                                                             << " ta=" << ta << " tb=" << tb);
                        BOOST_TEST(errf < 1e-4, dense_test::backend_name(be) << " float " << M << "x" << N << "x" << K);
                    }
        }
}

BOOST_AUTO_TEST_CASE(gemm_beta_zero_ignores_nan_in_output) {
    dense_test::settings_guard guard;
    for (auto be : dense_test::gemm_backends()) {
        set_gemm_backend(be);
        auto a = ones<float>({3, 4}), b = ones<float>({4, 5});
        auto c = full<float>({3, 5}, std::nanf(""));
        detail::gemm<float>(false, false, 3, 5, 4, 1.f, a.data(), 4, b.data(), 5, 0.f, c.data(), 5);
        for (float v : c.to_vector()) BOOST_TEST(v == 4.f);
    }
}

BOOST_AUTO_TEST_CASE(gradients_random_shapes) {
    dense_test::settings_guard guard;
    rng g(2024);
    for (auto be : dense_test::gemm_backends()) {
        set_gemm_backend(be);
        BOOST_TEST_CONTEXT("gemm backend " << dense_test::backend_name(be)) {
            auto a = param(randn<double>({3, 5}, g)), b = param(randn<double>({5, 7}, g));
            auto a3 = param(randn<double>({2, 3, 5}, g)), b13 = param(randn<double>({1, 5, 7}, g));
            auto a13 = param(randn<double>({1, 3, 5}, g)), b3 = param(randn<double>({3, 5, 7}, g));
            auto a4 = param(randn<double>({2, 1, 3, 5}, g)), b4 = param(randn<double>({3, 5, 1}, g));
            auto v = param(randn<double>({5}, g)), u = param(randn<double>({5}, g));
            check_gradients("2-D", [&] { return matmul(a, b); }, {a, b}, g);
            check_gradients("3-D x 2-D", [&] { return matmul(a3, b); }, {a3, b}, g);
            check_gradients("3-D x {1,K,N}", [&] { return matmul(a3, b13); }, {a3, b13}, g);
            check_gradients("{1,M,K} x {B,K,N}", [&] { return matmul(a13, b3); }, {a13, b3}, g);
            check_gradients("4-D x 3-D broadcast", [&] { return matmul(a4, b4); }, {a4, b4}, g);
            check_gradients("1-D x 2-D", [&] { return matmul(v, b); }, {v, b}, g);
            check_gradients("2-D x 1-D", [&] { return matmul(a, v); }, {a, v}, g);
            check_gradients("1-D x 1-D", [&] { return matmul(v, u); }, {v, u}, g);
            check_gradients("1-D x 3-D", [&] { return matmul(v, b3); }, {v, b3}, g);
            check_gradients("inside an expression", [&] { return matmul(xgrad::tanh(a) * 2.0, b) * sigmoid(a3.value()(0, 0, 0) + matmul(a, b)); },
                            {a, b}, g);
        }
    }
}

BOOST_AUTO_TEST_CASE(linear_and_fused_epilogue_gradients) {
    dense_test::settings_guard guard;
    rng g(7);
    for (auto be : dense_test::gemm_backends()) {
        set_gemm_backend(be);
        BOOST_TEST_CONTEXT("gemm backend " << dense_test::backend_name(be)) {
            auto x = param(randn<double>({5, 7}, g)), x3 = param(randn<double>({2, 3, 7}, g));
            auto W = param(randn<double>({3, 7}, g)), b = param(randn<double>({3}, g));
            auto B = param(randn<double>({7, 3}, g));
            auto xv = param(randn<double>({7}, g));
            check_gradients("linear", [&] { return linear(x, W, b); }, {x, W, b}, g);
            check_gradients("linear no bias", [&] { return linear(x3, W); }, {x3, W}, g);
            check_gradients("linear 1-D input", [&] { return linear(xv, W, b); }, {xv, W, b}, g);
            check_gradients("linear relu", [&] { return linear(x3, W, b, activation::relu); }, {x3, W, b}, g);
            check_gradients("linear gelu", [&] { return linear(x, W, b, activation::gelu); }, {x, W, b}, g);
            check_gradients("linear tanh no bias", [&] { return linear(x, W, activation::tanh); }, {x, W}, g);
            check_gradients("relu(mm + b)", [&] { return relu(matmul(x, B) + b); }, {x, B, b}, g);
            check_gradients("sigmoid(b + mm)", [&] { return sigmoid(b + matmul(x3, B)); }, {x3, B, b}, g);
            check_gradients("gelu(mm)", [&] { return gelu(matmul(x, B)); }, {x, B}, g);
            check_gradients("tanh(linear(x, W) + b)", [&] { return xgrad::tanh(linear(x, W) + b); }, {x, W, b}, g);
            // a bias varying along rows, and one that enlarges the output shape
            auto col = param(randn<double>({5, 1}, g)), wide = param(randn<double>({2, 1, 3}, g));
            check_gradients("relu(mm + column bias)", [&] { return relu(matmul(x, B) + col); }, {x, B, col}, g);
            check_gradients("tanh(mm + broadcast bias)", [&] { return xgrad::tanh(matmul(x, B) + wide); }, {x, B, wide},
                            g);
            check_gradients("gelu(mm + broadcast bias)", [&] { return gelu(matmul(x, B) + wide); }, {x, B, wide}, g);
            // a fused node inside a larger expression, twice
            check_gradients("fused node reused",
                            [&] {
                                auto h = relu(matmul(x, B) + b);
                                return h * h + linear(h, W.value().slice(1, 0, 3), b, activation::sigmoid);
                            },
                            {x, B, b}, g);
        }
    }
}

// A parameter operand of a barrier op gets its gradient written by the op's kernel straight into
// its gradient buffer when that is logically zero; every other case (a second pass without
// zero_grad, the parameter twice among one op's operands, or also used elsewhere) adds. The
// references take the same products through an expression operand (`w * 1.0`), which goes the
// ordinary way: a buffer of its own, then pushed into the parameter.
BOOST_AUTO_TEST_CASE(parameter_gradients_written_in_place_equal_the_pushed_ones) {
    rng g(11);
    auto x = randn<double>({6, 5}, g);
    auto W = param(randn<double>({4, 5}, g)), b = param(randn<double>({4}, g));
    auto S = param(randn<double>({5, 5}, g));
    auto grad_via_expression = [&](auto&& f, const parameter<double>& p) {
        auto q = param(p.value().contiguous());
        auto v = q * 1.0;
        backward(sum(f(v) * f(v)));
        return q.grad().to_vector();
    };
    // one linear layer: the weight's buffer is written where it is, and the values agree
    const double* before = W.grad().data();
    backward(sum(square(linear(x, W, b, activation::tanh))));
    BOOST_TEST(W.grad().data() == before);
    const auto once = W.grad().to_vector();
    const auto expected = grad_via_expression([&](auto& w) { return linear(x, w, b, activation::tanh); }, W);
    BOOST_TEST(once == expected, boost::test_tools::per_element());
    // a second pass without zero_grad adds onto the first
    backward(sum(square(linear(x, W, b, activation::tanh))));
    for (std::size_t i = 0; i < once.size(); ++i) BOOST_TEST(W.grad().data()[i] == 2 * once[i]);
    // the same parameter as both operands of one product: d sum((S S)^2) / dS = G S^T + S^T G
    S.zero_grad();
    backward(sum(square(matmul(S, S))));
    {
        auto q = param(S.value().contiguous());
        auto v1 = q * 1.0, v2 = q * 1.0;
        backward(sum(square(matmul(v1, v2))));
        BOOST_TEST(S.grad().to_vector() == q.grad().to_vector(), boost::test_tools::tolerance(1e-12) << boost::test_tools::per_element());
    }
    // a weight shared by two layers: both contributions
    W.zero_grad();
    backward(sum(linear(tanh(linear(x, S)), W) + linear(x, W)));
    {
        auto q = param(W.value().contiguous());
        auto v1 = q * 1.0, v2 = q * 1.0;
        backward(sum(linear(tanh(linear(x, S)), v1) + linear(x, v2)));
        BOOST_TEST(W.grad().to_vector() == q.grad().to_vector(), boost::test_tools::tolerance(1e-12) << boost::test_tools::per_element());
    }
    // a frozen weight gets nothing, and the input's gradient is unchanged by freezing it
    auto xp = param(x.contiguous());
    W.zero_grad();
    W.requires_grad(false);
    backward(sum(square(linear(xp, W, b))));
    for (double v : W.grad().to_vector()) BOOST_TEST(v == 0.0);
    const auto dx_frozen = xp.grad().to_vector();
    W.requires_grad(true);
    xp.zero_grad();
    backward(sum(square(linear(xp, W, b))));
    BOOST_TEST(xp.grad().to_vector() == dx_frozen, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(expression_forms_build_one_fused_node) {
    using P = parameter<double>;
    using pn = param_node<double>;
    P x = param(zeros<double>({2, 3})), W = param(zeros<double>({3, 4})), b = param(zeros<double>({4}));
    using relu_mm_b = decltype(relu(matmul(x, W) + b));
    static_assert(std::is_same_v<relu_mm_b, op_node<detail::dense_op<double, activation::relu_t, true, false>, pn, pn, pn>>);
    using gelu_b_mm = decltype(gelu(b + matmul(x, W)));
    static_assert(std::is_same_v<gelu_b_mm, op_node<detail::dense_op<double, activation::gelu_t, true, false>, pn, pn, pn>>);
    using tanh_lin = decltype(xgrad::tanh(linear(x, W, b)));
    static_assert(std::is_same_v<tanh_lin, op_node<detail::dense_op<double, activation::tanh_t, true, true>, pn, pn, pn>>);
    using sig_mm = decltype(sigmoid(matmul(x, W)));
    static_assert(std::is_same_v<sig_mm, op_node<detail::dense_op<double, activation::sigmoid_t, false, false>, pn, pn>>);
    // already activated: the outer activation is an ordinary elementwise node
    using twice = decltype(relu(relu(matmul(x, W) + b)));
    static_assert(!std::is_same_v<twice, relu_mm_b>);
    // other expressions keep the generic overloads
    static_assert(std::is_same_v<decltype(relu(x)), unary_node<ops::relu, pn>>);
    // an lvalue node fuses as well
    auto z = matmul(x, W) + b;
    static_assert(std::is_same_v<decltype(relu(z)), relu_mm_b>);
    BOOST_TEST(true);
}

BOOST_AUTO_TEST_CASE(fused_equals_unfused) {
    dense_test::settings_guard guard;
    rng g(3);
    for (auto be : dense_test::gemm_backends()) {
        set_gemm_backend(be);
        auto x = param(randn<float>({37, 29}, g)), W = param(randn<float>({29, 19}, g)), b = param(randn<float>({19}, g));
        auto fused = relu(matmul(x, W) + b);
        auto unfused = maximum(matmul(x, W) + b, 0.0f);  // same values through the elementwise engine
        check_close(eval(fused), eval(unfused).astype<double>(), 1e-6, 1e-6, "forward");
        backward(sum(fused * fused));
        const auto gx = x.grad().clone(), gW = W.grad().clone(), gb = b.grad().clone();
        for (auto* p : {&x, &W, &b}) p->zero_grad();
        backward(sum(unfused * unfused));
        check_close(gx, x.grad().astype<double>(), 1e-5, 1e-5, "dx");
        check_close(gW, W.grad().astype<double>(), 1e-5, 1e-5, "dW");
        check_close(gb, b.grad().astype<double>(), 1e-5, 1e-5, "db");
    }
}

BOOST_AUTO_TEST_CASE(threads_give_the_same_result) {
    dense_test::settings_guard guard;
    rng g(5);
    // 400 x 50 outputs: the epilogue's backward (act' and the bias sums) is split as well
    auto x = param(randn<double>({400, 70}, g)), W = param(randn<double>({50, 70}, g)), b = param(randn<double>({50}, g));
    for (auto be : dense_test::gemm_backends()) {
        set_gemm_backend(be);
        tensor<double> y[2], gx[2], gW[2], gb[2];
        for (std::size_t t : {1, 2}) {
            set_num_threads(t);
            for (auto* p : {&x, &W, &b}) p->zero_grad();
            auto e = linear(x, W, b, activation::tanh);
            y[t - 1] = eval(e);
            backward(sum(e));
            gx[t - 1] = x.grad().clone(), gW[t - 1] = W.grad().clone(), gb[t - 1] = b.grad().clone();
        }
        check_close(y[1], y[0], 1e-12, 1e-12, "y");
        check_close(gx[1], gx[0], 1e-12, 1e-12, "dx");
        check_close(gW[1], gW[0], 1e-12, 1e-12, "dW");
        check_close(gb[1], gb[0], 1e-12, 1e-12, "db");
    }
}

BOOST_AUTO_TEST_CASE(empty_dimensions) {
    auto a = param(zeros<double>({0, 5})), b = param(ones<double>({5, 3}));
    auto y = eval(matmul(a, b));
    BOOST_TEST(to_string(y.shape()) == "{0, 3}");
    backward(sum(matmul(a, b)));
    for (double v : b.grad().to_vector()) BOOST_TEST(v == 0.0);
    // K = 0: the product is all zeros
    auto c = param(zeros<double>({3, 0})), d = param(zeros<double>({0, 4}));
    auto z = eval(matmul(c, d) + 1.0);
    for (double v : z.to_vector()) BOOST_TEST(v == 1.0);
}

BOOST_AUTO_TEST_CASE(keeps_expression_alive_and_recomputes_per_pass) {
    auto x = param(tensor<double>({1, 2}, {1, 2})), W = param(tensor<double>({2, 1}, {3, 4}));
    auto e = relu(matmul(x, W) + 1.0);  // kept in a variable across passes
    BOOST_TEST(backward(sum(e)) == 12.0);  // 1*3 + 2*4 + 1
    BOOST_TEST(W.grad()(0, 0) == 1.0);
    x.value().fill(-1.0);  // an optimizer step, say
    BOOST_TEST(backward(sum(e)) == 0.0);  // relu(-7 + 1) = 0
}

BOOST_AUTO_TEST_CASE(bad_shapes_throw_shape_error) {
    tensor<float> a({2, 3}), b({4, 5}), w({6, 3}), v({2});
    check_throws<shape_error>([&] { matmul(a, b); }, {"matmul", "{2, 3}", "{4, 5}", "3 vs 4"});
    tensor<float> a3({2, 3, 4}), b3({3, 4, 5});
    check_throws<shape_error>([&] { matmul(a3, b3); }, {"matmul", "{2, 3, 4}", "{3, 4, 5}", "batch"});
    check_throws<shape_error>([&] { linear(a, b); }, {"linear", "{2, 3}", "{4, 5}", "3 vs 5"});
    check_throws<shape_error>([&] { linear(a, a3); }, {"linear", "weight must be 2-D", "{2, 3, 4}"});
    check_throws<shape_error>([&] { relu(matmul(a, w.t().contiguous()) + v); }, {"add", "{2, 6}", "{2}"});
    check_throws<shape_error>([&] { matmul(tensor<float>(shape_t{}), a); }, {"matmul", "at least one dimension"});
}

BOOST_AUTO_TEST_CASE(gemm_backend_selection) {
    dense_test::settings_guard guard;
    if (have_blas()) {
        set_gemm_backend(gemm_backend::blas);
        BOOST_TEST((get_gemm_backend() == gemm_backend::blas));
    } else {
        BOOST_CHECK_THROW(set_gemm_backend(gemm_backend::blas), value_error);
    }
    if (have_blas()) {
        set_gemm_backend(gemm_backend::automatic);
        BOOST_TEST((get_gemm_backend() == gemm_backend::automatic));
    } else {
        BOOST_CHECK_THROW(set_gemm_backend(gemm_backend::automatic), value_error);
    }
    set_gemm_backend(gemm_backend::builtin);
    BOOST_TEST((get_gemm_backend() == gemm_backend::builtin));
}

// gemm_backend::automatic runs a product with a side shorter than gemm_small_side on the CBLAS
// and any other on the built-in GEMM: its results equal the chosen one's to the bit.
BOOST_AUTO_TEST_CASE(automatic_gemm_picks_per_product) {
    if (!have_blas()) return;
    dense_test::settings_guard guard;
    rng g(5);
    struct dims { std::size_t M, N, K; bool small; };
    for (const dims d : {dims{32, 9, 676, true}, dims{64, 1600, 10, true}, dims{10, 128, 256, true},
                         dims{48, 40, 33, false}, dims{256, 128, 96, false}}) {
        BOOST_TEST_CONTEXT(d.M << " x " << d.N << " x " << d.K) {
            BOOST_TEST(d.small == (d.M < gemm_small_side || d.N < gemm_small_side || d.K < gemm_small_side));
            auto a = randn<float>({d.M, d.K}, g), b = randn<float>({d.N, d.K}, g);
            auto product = [&](gemm_backend be) {
                set_gemm_backend(be);
                return eval(linear(a, b)).to_vector();
            };
            const auto blas = product(gemm_backend::blas), builtin = product(gemm_backend::builtin);
            const auto automatic = product(gemm_backend::automatic);
            BOOST_TEST(automatic == (d.small ? blas : builtin), boost::test_tools::per_element());
            // the two differ somewhere (else this would not tell them apart)
            bool differ = false;
            for (std::size_t i = 0; i < blas.size(); ++i) differ = differ || blas[i] != builtin[i];
            BOOST_TEST(differ);
        }
    }
}

BOOST_AUTO_TEST_CASE(default_gemm_backend_follows_xgrad_gemm_and_the_blas_kernels) {
    const char* old = std::getenv("XGRAD_GEMM");
    const std::string saved = old ? old : "";
    ::setenv("XGRAD_GEMM", "builtin", 1);
    BOOST_TEST((detail::default_gemm_backend() == gemm_backend::builtin));
    ::setenv("XGRAD_GEMM", "blas", 1);
    BOOST_TEST((detail::default_gemm_backend() == (have_blas() ? gemm_backend::blas : gemm_backend::builtin)));
    ::setenv("XGRAD_GEMM", "auto", 1);
    BOOST_TEST((detail::default_gemm_backend() == (have_blas() ? gemm_backend::automatic : gemm_backend::builtin)));
    ::unsetenv("XGRAD_GEMM");
    // without the variable: per product (CBLAS for short sides, built-in for the rest) unless the
    // CBLAS kernels are older than the CPU's (OpenBLAS on a CPU model it does not know falls back
    // to SSE3 kernels), the built-in GEMM without a CBLAS
    const bool blas_ok = have_blas() && !detail::blas_kernels_lag_the_cpu();
    BOOST_TEST((detail::default_gemm_backend() == (blas_ok ? gemm_backend::automatic : gemm_backend::builtin)));
#if defined(XGRAD_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    BOOST_TEST_MESSAGE("OpenBLAS kernels: " << openblas_get_corename() << ", default GEMM: "
                                            << (blas_ok ? "automatic" : "builtin"));
#endif
    if (old) ::setenv("XGRAD_GEMM", saved.c_str(), 1);
}
