#define BOOST_TEST_MODULE nn_loss
#include <boost/test/unit_test.hpp>

#include <xgrad/nn/loss.hpp>
#include <xgrad/xgrad.hpp>

#include <cmath>

using xgrad::tensor;
namespace nn = xgrad::nn;

namespace {
// logits of 2 samples over 3 classes and their labels
const auto logits = xgrad::from_vector<float>({1.f, 2.f, 0.5f, -1.f, 0.f, 3.f}, {2, 3});
const auto labels = xgrad::from_vector<std::int64_t>({1, 0}, {2});

double lse(double a, double b, double c) { return std::log(std::exp(a) + std::exp(b) + std::exp(c)); }
}  // namespace

BOOST_AUTO_TEST_CASE(cross_entropy_matches_the_formula) {
    // -log softmax(z)_y averaged over the batch
    const double l0 = lse(1, 2, 0.5) - 2, l1 = lse(-1, 0, 3) + 1;
    const auto tol = boost::test_tools::tolerance(1e-5);
    BOOST_TEST(xgrad::eval(nn::cross_entropy()(logits, labels)).item() == (l0 + l1) / 2, tol);
    // weights: weighted mean, as PyTorch
    const auto w = xgrad::eval(nn::cross_entropy({.weight = {1, 3, 1}})(logits, labels)).item();
    BOOST_TEST(w == (3 * l0 + 1 * l1) / 4, tol);
    // ignore_index leaves the sample out
    const auto ig = xgrad::eval(nn::cross_entropy({.ignore_index = 0})(logits, labels)).item();
    BOOST_TEST(ig == l0, tol);
    // smoothing eps: (1 - eps) nll + eps * mean over classes of -log p
    const double eps = 0.1;
    const double s0 = (1 - eps) * l0 + eps * (3 * lse(1, 2, 0.5) - 3.5) / 3;
    const double s1 = (1 - eps) * l1 + eps * (3 * lse(-1, 0, 3) - 2) / 3;
    BOOST_TEST(xgrad::eval(nn::cross_entropy({.label_smoothing = eps})(logits, labels)).item() == (s0 + s1) / 2, tol);
    BOOST_CHECK_THROW(nn::cross_entropy({.label_smoothing = 2}), xgrad::value_error);
    BOOST_CHECK_THROW(nn::cross_entropy({.weight = {1, -1}}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(loss_objects_backpropagate) {
    auto z = xgrad::param(logits.clone());
    const float v = xgrad::backward(nn::cross_entropy()(z, labels));
    BOOST_TEST(v > 0.f);
    // d/dz of the mean: (softmax(z) - onehot(y)) / N
    const double p01 = std::exp(2 - lse(1, 2, 0.5));
    BOOST_TEST(z.grad()(0, 1) == (p01 - 1) / 2, boost::test_tools::tolerance(1e-5));

    auto log_p = xgrad::eval(xgrad::log_softmax(logits, 1));
    BOOST_TEST(xgrad::eval(nn::nll_loss()(log_p, labels)).item() ==
                   xgrad::eval(nn::cross_entropy()(logits, labels)).item(),
               boost::test_tools::tolerance(1e-6f));

    const auto a = xgrad::from_vector<float>({1.f, 2.f, 3.f}, {3});
    const auto b = xgrad::from_vector<float>({1.5f, 2.f, 0.f}, {3});
    const auto tol = boost::test_tools::tolerance(1e-6f);
    BOOST_TEST(xgrad::eval(nn::mse_loss()(a, b)).item() == (0.25f + 0.f + 9.f) / 3, tol);
    BOOST_TEST(xgrad::eval(nn::l1_loss()(a, b)).item() == (0.5f + 0.f + 3.f) / 3, tol);
    BOOST_TEST(xgrad::eval(nn::huber_loss(1.0)(a, b)).item() == (0.125f + 0.f + 2.5f) / 3, tol);
    const auto t = xgrad::from_vector<float>({1.f, 0.f, 1.f}, {3});
    const double bce = (std::log1p(std::exp(-1.0)) + (2 + std::log1p(std::exp(-2.0))) + std::log1p(std::exp(-3.0))) / 3;
    BOOST_TEST(xgrad::eval(nn::bce_with_logits_loss()(a, t)).item() == bce, boost::test_tools::tolerance(1e-5));
    BOOST_CHECK_THROW(nn::huber_loss(0), xgrad::value_error);
}
