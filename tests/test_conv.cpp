#define BOOST_TEST_MODULE conv
#include <boost/test/unit_test.hpp>

#include "dense_reference.hpp"

using namespace xgrad;
using dense_test::check_close;
using dense_test::check_gradients;
using dense_test::check_throws;

namespace {

const dense_test::reference& ref() {
    static const dense_test::reference r("dense_conv.txt");
    return r;
}

/// The convolution by its definition (float64, seven nested loops).
tensor<double> direct_conv(const tensor<double>& x, const tensor<double>& w, const tensor<double>* b,
                           const conv2d_options& o) {
    const std::size_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
    const std::size_t OC = w.shape(0), Cg = w.shape(1), KH = w.shape(2), KW = w.shape(3);
    const auto G = static_cast<std::size_t>(o.groups);
    const std::ptrdiff_t sh = o.stride.h, sw = o.stride.w, ph = o.padding.h, pw = o.padding.w;
    const std::ptrdiff_t dh = o.dilation.h, dw = o.dilation.w;
    const auto OH = static_cast<std::size_t>((static_cast<std::ptrdiff_t>(H) + 2 * ph - dh * (static_cast<std::ptrdiff_t>(KH) - 1) - 1) / sh + 1);
    const auto OW = static_cast<std::size_t>((static_cast<std::ptrdiff_t>(W) + 2 * pw - dw * (static_cast<std::ptrdiff_t>(KW) - 1) - 1) / sw + 1);
    auto y = zeros<double>({N, OC, OH, OW});
    (void)C;
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t oc = 0; oc < OC; ++oc)
            for (std::size_t i = 0; i < OH; ++i)
                for (std::size_t j = 0; j < OW; ++j) {
                    double s = b ? (*b)(oc) : 0.0;
                    const std::size_t gr = oc / (OC / G);
                    for (std::size_t c = 0; c < Cg; ++c)
                        for (std::size_t p = 0; p < KH; ++p)
                            for (std::size_t q = 0; q < KW; ++q) {
                                const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(i) * sh - ph + static_cast<std::ptrdiff_t>(p) * dh;
                                const std::ptrdiff_t iw = static_cast<std::ptrdiff_t>(j) * sw - pw + static_cast<std::ptrdiff_t>(q) * dw;
                                if (ih >= 0 && iw >= 0 && ih < static_cast<std::ptrdiff_t>(H) && iw < static_cast<std::ptrdiff_t>(W))
                                    s += w(oc, c, p, q) * x(n, gr * Cg + c, ih, iw);
                            }
                    y(n, oc, i, j) = s;
                }
    return y;
}

struct conv_case {
    std::size_t N, C, H, W, OC, KH, KW;
    conv2d_options o;
};

// smaller variants of the cases below for finite differences (two evaluations per element)
const conv_case grad_cases[] = {
    {1, 1, 5, 5, 2, 3, 3, {}},
    {2, 3, 5, 4, 2, 3, 2, {.stride = 2, .padding = 1}},
    {2, 4, 5, 5, 4, 3, 3, {.stride = {1, 2}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2}},
    {1, 6, 3, 3, 3, 1, 1, {.groups = 3}},
    {1, 2, 4, 4, 2, 5, 3, {.padding = {1, 0}}},
    {1, 4, 7, 6, 4, 3, 3, {.stride = 3, .padding = 2, .dilation = 2, .groups = 4}},
    {1, 3, 4, 6, 5, 3, 4, {.padding = {2, 3}}},   // padding K - 1 (direct dx), odd channel counts
    {1, 2, 11, 5, 5, 2, 1, {.padding = {1, 0}}},  // wide rows longer than one direct block
};

// odd sizes; stride, padding, dilation and group combinations; batch 1; 1x1 and depthwise
const conv_case cases[] = {
    {1, 1, 5, 5, 2, 3, 3, {}},
    {2, 3, 7, 6, 4, 3, 2, {.stride = 2, .padding = 1}},
    {3, 4, 6, 7, 6, 3, 3, {.stride = {1, 2}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2}},
    {2, 6, 5, 5, 3, 1, 1, {.groups = 3}},
    {1, 3, 5, 4, 5, 1, 1, {}},
    {1, 2, 4, 4, 2, 5, 3, {.padding = {1, 0}}},
    {2, 4, 9, 8, 4, 3, 3, {.stride = 3, .padding = 2, .dilation = 2, .groups = 4}},
    {2, 2, 3, 3, 3, 3, 3, {.stride = 2, .padding = 1}},
    {2, 5, 6, 9, 7, 3, 4, {.padding = {2, 3}}},     // direct kernel: padding K - 1, odd channel counts
    {1, 3, 17, 5, 9, 2, 1, {.padding = {1, 0}}},    // wide rows longer than one block
};

template <class T>
void reference_cases() {
    using P = std::vector<parameter<T>>;
    const auto& r = ref();
    dense_test::run_reference_case<T>(r, "stride2_pad1", {"x", "w", "b"},
                                      [](P& p) { return conv2d(p[0], p[1], p[2], {.stride = 2, .padding = 1}); });
    dense_test::run_reference_case<T>(r, "groups_dilation", {"x", "w", "b"}, [](P& p) {
        return conv2d(p[0], p[1], p[2], {.stride = {1, 2}, .padding = {2, 1}, .dilation = {2, 1}, .groups = 2});
    });
    dense_test::run_reference_case<T>(r, "pointwise_groups_batch1", {"x", "w"},
                                      [](P& p) { return conv2d(p[0], p[1], {.groups = 3}); });
    dense_test::run_reference_case<T>(r, "lenet_relu", {"x", "w", "b"},
                                      [](P& p) { return conv2d(p[0], p[1], p[2], {.padding = 2}, activation::relu); });
    dense_test::run_reference_case<T>(r, "depthwise_stride3", {"x", "w", "b"}, [](P& p) {
        return xgrad::tanh(conv2d(p[0], p[1], p[2], {.stride = 3, .padding = 2, .dilation = 2, .groups = 4}));
    });
}

/// Restores the convolution algorithm when a test case ends.
struct algorithm_guard {
    conv_algorithm a = get_conv_algorithm();
    ~algorithm_guard() { set_conv_algorithm(a); }
};

const conv_algorithm algorithms[] = {conv_algorithm::im2col, conv_algorithm::direct};
const char* algorithm_name(conv_algorithm a) { return a == conv_algorithm::direct ? "direct" : "im2col"; }

}  // namespace

BOOST_AUTO_TEST_CASE(matches_pytorch_float64_and_float32) {
    dense_test::settings_guard guard;
    algorithm_guard ag;
    for (auto algo : algorithms)
        for (auto be : dense_test::gemm_backends())
            for (std::size_t threads : {1, 2}) {
                BOOST_TEST_CONTEXT(algorithm_name(algo) << ", " << dense_test::backend_name(be) << ", " << threads
                                                        << " threads") {
                    set_conv_algorithm(algo);
                    set_gemm_backend(be);
                    set_num_threads(threads);
                    reference_cases<double>();
                    reference_cases<float>();
                }
            }
}

BOOST_AUTO_TEST_CASE(forward_matches_definition) {
    dense_test::settings_guard guard;
    algorithm_guard ag;
    rng g(17);
    for (auto algo : algorithms)
    for (auto be : dense_test::gemm_backends())
        for (std::size_t threads : {1, 2}) {
            set_conv_algorithm(algo);
            set_gemm_backend(be);
            set_num_threads(threads);
            for (const auto& c : cases) {
                auto x = randn<double>({c.N, c.C, c.H, c.W}, g);
                auto w = randn<double>({c.OC, c.C / static_cast<std::size_t>(c.o.groups), c.KH, c.KW}, g);
                auto b = randn<double>({c.OC}, g);
                check_close(eval(conv2d(x, w, b, c.o)), direct_conv(x, w, &b, c.o), 1e-12, 1e-12, "with bias");
                check_close(eval(conv2d(x, w, c.o)), direct_conv(x, w, nullptr, c.o), 1e-12, 1e-12, "no bias");
            }
        }
}

BOOST_AUTO_TEST_CASE(gradients_over_option_combinations) {
    dense_test::settings_guard guard;
    algorithm_guard ag;
    rng g(23);
    // the direct kernels do not call the GEMM: each algorithm once with each thread count,
    // im2col once with each GEMM backend
    const auto backends = dense_test::gemm_backends();
    for (auto algo : algorithms)
        for (std::size_t threads : {1, 2}) {
            const auto be = threads == 1 ? backends.front() : backends.back();
            set_conv_algorithm(algo);
            set_gemm_backend(be);
            set_num_threads(threads);
            for (const auto& c : grad_cases) {
                BOOST_TEST_CONTEXT(algorithm_name(algo) << " " << dense_test::backend_name(be) << " threads " << threads
                                                        << " input {" << c.N << ", " << c.C << ", " << c.H << ", "
                                                        << c.W << "} groups " << c.o.groups) {
                    auto x = param(randn<double>({c.N, c.C, c.H, c.W}, g));
                    auto w = param(randn<double>({c.OC, c.C / static_cast<std::size_t>(c.o.groups), c.KH, c.KW}, g));
                    auto b = param(randn<double>({c.OC}, g));
                    check_gradients("conv2d", [&] { return conv2d(x, w, b, c.o); }, {x, w, b}, g);
                    check_gradients("conv2d relu", [&] { return conv2d(x, w, b, c.o, activation::relu); }, {x, w, b}, g);
                    check_gradients("gelu(conv2d), no bias", [&] { return gelu(conv2d(x, w, c.o)); }, {x, w}, g);
                }
            }
        }
}

BOOST_AUTO_TEST_CASE(gradients_through_a_small_cnn) {
    rng g(31);
    auto x = param(randn<double>({2, 1, 9, 9}, g));
    auto w1 = param(randn<double>({3, 1, 3, 3}, g)), b1 = param(randn<double>({3}, g));
    auto w2 = param(randn<double>({4, 3, 3, 3}, g)), b2 = param(randn<double>({4}, g));
    auto W = param(randn<double>({2, 1}, g));
    check_gradients("conv-pool-conv-pool-linear",
                    [&] {
                        auto h = max_pool2d(relu(conv2d(x, w1, b1)), 2);            // {2, 3, 3, 3}
                        auto z = xgrad::tanh(conv2d(h, w2, b2, {.padding = 1}));  // {2, 4, 3, 3}
                        return linear(adaptive_avg_pool2d(z, 1), W);                // {2, 4, 1, 2}
                    },
                    {x, w1, b1, w2, b2, W}, g);
}

BOOST_AUTO_TEST_CASE(expression_forms_fuse_the_activation) {
    using pn = param_node<double>;
    auto x = param(zeros<double>({1, 1, 4, 4})), w = param(zeros<double>({2, 1, 3, 3})), b = param(zeros<double>({2}));
    static_assert(std::is_same_v<decltype(relu(conv2d(x, w, b))),
                                 op_node<detail::conv2d_op<double, activation::relu_t, true>, pn, pn, pn>>);
    static_assert(std::is_same_v<decltype(gelu(conv2d(x, w))),
                                 op_node<detail::conv2d_op<double, activation::gelu_t, false>, pn, pn>>);
    // the options survive the rewrite
    auto y = relu(conv2d(x, w, b, {.padding = 1}));
    BOOST_TEST(to_string(y.shape()) == "{1, 2, 4, 4}");
}

BOOST_AUTO_TEST_CASE(seed_cnn_shapes) {
    rng g(1);
    auto x = randn<float>({2, 1, 28, 28}, g);
    auto w1 = randn<float>({32, 1, 3, 3}, g), w2 = randn<float>({64, 32, 3, 3}, g);
    auto h1 = conv2d(x, w1);
    BOOST_TEST(to_string(h1.shape()) == "{2, 32, 26, 26}");
    auto h2 = conv2d(max_pool2d(h1, 2), w2);
    BOOST_TEST(to_string(h2.shape()) == "{2, 64, 11, 11}");
    auto l1 = conv2d(x, randn<float>({6, 1, 5, 5}, g));
    auto l2 = conv2d(max_pool2d(l1, 2), randn<float>({16, 6, 5, 5}, g));
    BOOST_TEST(to_string(l2.shape()) == "{2, 16, 8, 8}");
}

BOOST_AUTO_TEST_CASE(threads_give_the_same_result) {
    dense_test::settings_guard guard;
    rng g(5);
    auto x = param(randn<double>({5, 4, 11, 10}, g));
    auto w = param(randn<double>({6, 2, 3, 3}, g)), b = param(randn<double>({6}, g));
    algorithm_guard ag;
    for (auto algo : algorithms)
    for (auto be : dense_test::gemm_backends()) {
        // strided for im2col; stride 1 for the direct kernel
        const conv2d_options o{.stride = algo == conv_algorithm::direct ? 1 : size2{2, 1}, .padding = 1, .groups = 2};
        set_conv_algorithm(algo);
        set_gemm_backend(be);
        tensor<double> y[2], gx[2], gw[2], gb[2];
        for (std::size_t t : {1, 2}) {
            set_num_threads(t);
            for (auto* p : {&x, &w, &b}) p->zero_grad();
            auto e = conv2d(x, w, b, o, activation::tanh);
            y[t - 1] = eval(e);
            backward(sum(e * e));
            gx[t - 1] = x.grad().clone(), gw[t - 1] = w.grad().clone(), gb[t - 1] = b.grad().clone();
        }
        check_close(y[1], y[0], 1e-12, 1e-12, "y");
        check_close(gx[1], gx[0], 1e-12, 1e-12, "dx");
        check_close(gw[1], gw[0], 1e-12, 1e-12, "dw");
        check_close(gb[1], gb[0], 1e-12, 1e-12, "db");
    }
}

BOOST_AUTO_TEST_CASE(bad_input_throws) {
    tensor<float> x({2, 3, 8, 8}), w({4, 3, 3, 3}), w2({4, 2, 3, 3}), b({5});
    check_throws<shape_error>([&] { conv2d(x, w2); }, {"conv2d", "{2, 3, 8, 8}", "{4, 2, 3, 3}", "3 channels"});
    check_throws<shape_error>([&] { conv2d(x, tensor<float>({4, 1, 3, 3}), {.groups = 2}); },
                              {"conv2d", "groups = 2", "(3,", "{2, 3, 8, 8}"});
    check_throws<shape_error>([&] { conv2d(tensor<float>({1, 6, 8, 8}), tensor<float>({4, 2, 3, 3}), {.groups = 3}); },
                              {"conv2d", "groups = 3", "output channels (4"});
    check_throws<shape_error>([&] { conv2d(x, tensor<float>({4, 3, 9, 3})); },
                              {"conv2d", "kernel 9x3", "larger than the padded input 8x8", "{2, 3, 8, 8}"});
    check_throws<shape_error>([&] { conv2d(x, w, {.padding = 0, .dilation = 4}); }, {"conv2d", "dilated extent 9x9"});
    check_throws<shape_error>([&] { conv2d(x, w, b); }, {"conv2d", "bias", "{4}", "{5}"});
    check_throws<shape_error>([&] { conv2d(tensor<float>({3, 8, 8}), w); }, {"conv2d", "4-D", "{3, 8, 8}"});
    check_throws<value_error>([&] { conv2d(x, w, {.stride = 0}); }, {"conv2d", "stride", "{0, 0}"});
    check_throws<value_error>([&] { conv2d(x, w, {.padding = {0, -1}}); }, {"conv2d", "padding", "{0, -1}"});
    check_throws<value_error>([&] { conv2d(x, w, {.groups = 0}); }, {"conv2d", "groups", "0"});
}
