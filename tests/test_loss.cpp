#define BOOST_TEST_MODULE loss
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;
using xgrad_test::reference;

using real_types = boost::mpl::list<float, double>;

namespace {

template <class T>
double rtol() {
    return xgrad_test::rtol_for<T>();
}
template <class T>
double atol() {
    return xgrad_test::atol_for<T>() * 10;
}

/// Value and input gradient of a class loss against the PyTorch record `c`. make(x, labels, w)
/// builds the loss; scalar losses are run through backward(loss), per-sample ones through
/// backward(loss, g).
template <class T, class Make>
void check_class_reference(const std::string& c, Make make) {
    const auto& ref = reference::get();
    auto x = param(ref.as<T>(c + ".x"));
    const auto labels = ref.labels(c + ".labels");
    auto loss = make(x, labels);
    check_close(eval(loss), ref(c + ".y"), rtol<T>(), atol<T>(), c + ".y");
    if constexpr (decltype(loss)::is_scalar) {
        const T v = backward(loss);
        BOOST_TEST(v == static_cast<T>(ref(c + ".y").item()), boost::test_tools::tolerance(static_cast<T>(rtol<T>() * 10)));
    } else {
        backward(loss, ref.as<T>(c + ".g"));
    }
    check_close(x.grad(), ref(c + ".dx"), rtol<T>(), atol<T>(), c + ".dx");
}

/// Value and both input gradients of an elementwise loss against the record `c`.
template <class T, class Make>
void check_pair_reference(const std::string& c, Make make) {
    const auto& ref = reference::get();
    auto a = param(ref.as<T>(c + ".a"));
    auto b = param(ref.as<T>(c + ".b"));
    check_close(eval(make(a, b)), ref(c + ".y"), rtol<T>(), atol<T>(), c + ".y");
    backward(make(a, b));
    check_close(a.grad(), ref(c + ".da"), rtol<T>(), atol<T>(), c + ".da");
    check_close(b.grad(), ref(c + ".db"), rtol<T>(), atol<T>(), c + ".db");
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(cross_entropy_matches_pytorch, T, real_types) {
    const auto& ref = reference::get();
    check_class_reference<T>("ce_mean", [](auto& x, auto& y) { return cross_entropy(x, y); });
    const auto w5 = ref.as<T>("ce_sum_weight_smooth.weight");
    check_class_reference<T>("ce_sum_weight_smooth", [&](auto& x, auto& y) {
        return cross_entropy(x, y, {.reduction = reduction::sum, .label_smoothing = 0.2, .weight = w5});
    });
    check_class_reference<T>("ce_mean_weight_smooth", [&](auto& x, auto& y) {
        return cross_entropy(x, y, {.label_smoothing = 0.15, .weight = w5});
    });
    check_class_reference<T>("ce_none_smooth_ignore", [&](auto& x, auto& y) {
        return cross_entropy(x, y, {.reduction = reduction::none, .label_smoothing = 0.1});
    });
    check_class_reference<T>("ce_mean_weight_ignore", [&](auto& x, auto& y) {
        return cross_entropy(x, y, {.reduction = reduction::mean, .label_smoothing = 0.25, .weight = w5, .ignore_index = -100});
    });
    const auto w4 = ref.as<T>("ce_3d.weight");
    check_class_reference<T>("ce_3d", [&](auto& x, auto& y) {
        return cross_entropy(x, y, {.label_smoothing = 0.1, .weight = w4});
    });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(nll_loss_matches_pytorch, T, real_types) {
    const auto w5 = reference::get().as<T>("nll_mean_weight.weight");
    check_class_reference<T>("nll_mean_weight", [&](auto& x, auto& y) { return nll_loss(x, y, {.weight = w5}); });
    check_class_reference<T>("nll_sum_ignore", [](auto& x, auto& y) {
        return nll_loss(x, y, {.reduction = reduction::sum, .ignore_index = 7});
    });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(elementwise_losses_match_pytorch, T, real_types) {
    check_pair_reference<T>("mse_mean", [](auto& a, auto& b) { return mse_loss(a, b); });
    check_pair_reference<T>("mse_sum", [](auto& a, auto& b) { return mse_loss(a, b, reduction::sum); });
    check_pair_reference<T>("l1_mean", [](auto& a, auto& b) { return l1_loss(a, b); });
    check_pair_reference<T>("huber_mean", [](auto& a, auto& b) { return huber_loss(a, b, 0.5); });
    check_pair_reference<T>("huber_sum", [](auto& a, auto& b) { return huber_loss(a, b, 1.5, reduction::sum); });
    check_pair_reference<T>("bce_logits_mean", [](auto& a, auto& b) { return binary_cross_entropy_with_logits(a, b); });
    check_pair_reference<T>("bce_logits_sum",
                            [](auto& a, auto& b) { return binary_cross_entropy_with_logits(a, b, reduction::sum); });
}

BOOST_AUTO_TEST_CASE(class_losses_gradcheck_random_shapes) {
    rng gen(21);
    struct shape_case {
        shape_t logits;
        std::int64_t classes;
    };
    for (const auto& sc : {shape_case{{1, 1}, 1}, shape_case{{1, 4}, 4}, shape_case{{7, 3}, 3}, shape_case{{5, 11}, 11},
                           shape_case{{2, 3, 5}, 3}, shape_case{{1, 4, 2, 3}, 4}}) {
        auto x = param(randn<double>(sc.logits, gen, 0.0, 2.0));
        shape_t ls = sc.logits;
        ls.erase(ls.begin() + 1);
        auto y = uniform<std::int64_t>(ls, gen, 0, sc.classes);
        y.data()[0] = -100;  // one ignored sample
        const auto w = uniform<double>({static_cast<std::size_t>(sc.classes)}, gen, 0.5, 2.0);
        const std::string s = to_string(sc.logits);
        // with one sample ignored a batch of one has nothing to average: use sum there
        if (y.size() > 1)
            xgrad_test::expect_gradcheck([&] { return cross_entropy(x, y, {.label_smoothing = 0.2, .weight = w}); }, {x},
                                         gen, "ce mean " + s);
        xgrad_test::expect_gradcheck([&] { return cross_entropy(x * 1.0, y, {.reduction = reduction::sum}); }, {x}, gen,
                                     "ce sum " + s);
        xgrad_test::expect_gradcheck(
            [&] { return cross_entropy(x, y, {.reduction = reduction::none, .label_smoothing = 0.3, .weight = w}); }, {x},
            gen, "ce none " + s);
        xgrad_test::expect_gradcheck([&] { return nll_loss(log_softmax(x, 1), y, {.reduction = reduction::sum, .weight = w}); },
                                     {x}, gen, "nll " + s);
    }
}

BOOST_AUTO_TEST_CASE(elementwise_losses_gradcheck_random_shapes) {
    rng gen(22);
    for (const shape_t& s : {shape_t{1}, shape_t{1, 1}, shape_t{5, 3}, shape_t{2, 3, 7}}) {
        auto a = param(randn<double>(s, gen));
        auto b = param(randn<double>(s, gen));
        const std::string n = to_string(s);
        xgrad_test::expect_gradcheck([&] { return mse_loss(a, b); }, {a, b}, gen, "mse " + n);
        xgrad_test::expect_gradcheck([&] { return l1_loss(a, b, reduction::sum); }, {a, b}, gen, "l1 " + n);
        xgrad_test::expect_gradcheck([&] { return huber_loss(a, b, 0.7, reduction::none); }, {a, b}, gen, "huber " + n);
        xgrad_test::expect_gradcheck([&] { return binary_cross_entropy_with_logits(a * 3.0, sigmoid(b)); }, {a, b}, gen,
                                     "bce " + n);
    }
}

BOOST_AUTO_TEST_CASE(mse_is_one_fused_loop) {
    rng gen(23);
    auto a = param(randn<float>({4, 5}, gen));
    const auto b = randn<float>({4, 5}, gen);
    using loss_t = decltype(mse_loss(a, b));
    // mean(square(a - b)) itself: backward() runs value and gradient in one loop
    static_assert(std::is_same_v<loss_t, decltype(mean(square(a - b)))>);
    static_assert(detail::full_sum_root<loss_t>::value);
    static_assert(loss_t::is_scalar);
    static_assert(!decltype(mse_loss(a, b, reduction::none))::is_scalar);
    const float v = backward(mse_loss(a, b));
    double ref = 0;
    for (std::size_t i = 0; i < 20; ++i) ref += std::pow(a.value().data()[i] - b.data()[i], 2.0) / 20;
    BOOST_TEST(v == ref, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(a.grad().data()[7] == 2 * (a.value().data()[7] - b.data()[7]) / 20, boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(cross_entropy_reductions_and_types) {
    tensor<double> x({3, 2}, {0, 0, 0, 0, 0, 0});
    tensor<std::int64_t> y({3}, {0, 1, 1});
    // uniform logits: every sample loses log 2
    BOOST_TEST(eval(cross_entropy(x, y)).item() == std::log(2.0), boost::test_tools::tolerance(1e-14));
    BOOST_TEST(eval(cross_entropy(x, y, {.reduction = reduction::sum})).item() == 3 * std::log(2.0),
               boost::test_tools::tolerance(1e-14));
    const auto none = eval(cross_entropy(x, y, {.reduction = reduction::none}));
    BOOST_TEST(none.shape() == (shape_t{3}));
    static_assert(decltype(cross_entropy(x, y))::is_scalar);
    static_assert(!decltype(cross_entropy(x, y, {.reduction = reduction::none}))::is_scalar);
    // weighted mean divides by the weights of the targets: (w0 + w1 + w1) log 2 / (w0 + w1 + w1)
    tensor<double> w({2}, {1.0, 3.0});
    BOOST_TEST(eval(cross_entropy(x, y, {.weight = w})).item() == std::log(2.0), boost::test_tools::tolerance(1e-14));
    // every label ignored: 0 / 0, as PyTorch
    tensor<std::int64_t> ign({3}, {-100, -100, -100});
    BOOST_TEST(std::isnan(eval(cross_entropy(x, ign)).item()));
}

BOOST_AUTO_TEST_CASE(bad_labels_and_shapes) {
    using xgrad_test::check_throws;
    tensor<float> x({4, 3});
    check_throws<value_error>([&] { cross_entropy(x, tensor<std::int64_t>({4}, {0, 1, 2, 3})); },
                              {"cross_entropy", "label 3", "position 3", "3 classes"});
    check_throws<value_error>([&] { cross_entropy(x, tensor<std::int64_t>({4}, {0, -1, 2, 1})); },
                              {"cross_entropy", "label -1", "position 1"});
    check_throws<value_error>([&] { nll_loss(x, tensor<std::int64_t>({4}, {0, 1, 9, 1})); }, {"nll_loss", "label 9", "position 2"});
    check_throws<value_error>(
        [&] { cross_entropy(tensor<float>({2, 3, 2}), tensor<std::int64_t>({2, 2}, {0, 1, 2, 5})); },
        {"cross_entropy", "label 5", "position (1, 1)"});
    check_throws<shape_error>([&] { cross_entropy(x, tensor<std::int64_t>({3}, {0, 1, 2})); },
                              {"cross_entropy", "{3}", "{4, 3}"});
    check_throws<shape_error>([&] { cross_entropy(tensor<float>({3}), tensor<std::int64_t>({3})); },
                              {"cross_entropy", "{N, C}", "{3}"});
    check_throws<shape_error>(
        [&] { cross_entropy(x, tensor<std::int64_t>({4}), {.weight = tensor<float>({4})}); },
        {"cross_entropy", "weight", "{4}", "3 classes"});
    check_throws<value_error>([&] { cross_entropy(x, tensor<std::int64_t>({4}), {.label_smoothing = 1.5}); },
                              {"cross_entropy", "label_smoothing", "1.5"});
    check_throws<shape_error>([&] { mse_loss(x, tensor<float>({3})); }, {"mse_loss", "{4, 3}", "{3}"});
    check_throws<shape_error>([&] { l1_loss(x, tensor<float>({3, 4})); }, {"l1_loss", "{4, 3}", "{3, 4}"});
    check_throws<shape_error>([&] { binary_cross_entropy_with_logits(x, tensor<float>({4})); },
                              {"binary_cross_entropy_with_logits"});
    check_throws<value_error>([&] { huber_loss(x, x, 0.0); }, {"huber_loss", "delta"});
    // a label changed after the loss was built is caught when it runs
    auto y = tensor<std::int64_t>({4}, {0, 1, 2, 1});
    auto loss = cross_entropy(x, y);
    y.data()[2] = 4;
    check_throws<value_error>([&] { eval(loss); }, {"cross_entropy", "label 4", "position 2"});
}

BOOST_AUTO_TEST_CASE(large_batch_split_across_threads_agrees_with_a_plain_loop) {
    rng gen(24);
    const std::size_t n = 600, c = 10;
    auto x = param(randn<double>({n, c}, gen, 0.0, 2.0));
    const auto y = uniform<std::int64_t>({n}, gen, 0, static_cast<std::int64_t>(c));
    const double loss = backward(cross_entropy(x, y, {.label_smoothing = 0.1}));
    double ref = 0, worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const double* z = x.value().data() + i * c;
        double m = -1e300, s = 0;
        for (std::size_t j = 0; j < c; ++j) m = std::max(m, z[j]);
        for (std::size_t j = 0; j < c; ++j) s += std::exp(z[j] - m);
        const double lse = m + std::log(s);
        double smooth = 0;
        for (std::size_t j = 0; j < c; ++j) smooth += lse - z[j];
        ref += (0.9 * (lse - z[y(i)]) + 0.1 / c * smooth) / n;
        for (std::size_t j = 0; j < c; ++j) {
            const double d = (std::exp(z[j] - lse) - 0.1 / c - (j == static_cast<std::size_t>(y(i)) ? 0.9 : 0.0)) / n;
            worst = std::max(worst, std::fabs(x.grad()(i, j) - d));
        }
    }
    BOOST_TEST(loss == ref, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(worst < 1e-15);
}
