#define BOOST_TEST_MODULE nn_gradcheck
#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>

// Every layer through the generic finite-difference checker, via its forward, in float64:
// gradients of its parameters and of its input.
namespace nn = xgrad::nn;
using P = xgrad::parameter<double>;

namespace {

P input(xgrad::shape_t shape, std::uint64_t seed) {
    xgrad::rng gen(seed);
    return xgrad::param(xgrad::randn<double>(std::move(shape), gen));
}

template <class L>
void check_layer(const std::string& what, L& layer, const P& x, bool input_grad = true) {
    std::vector<P> ps;
    if constexpr (std::is_same_v<nn::value_type_of<L>, double>) ps = nn::parameters(layer);  // else: none
    if (input_grad) ps.push_back(x);
    xgrad::rng gen(99);
    // the forward expression is built once: a dropout mask stays fixed across evaluations,
    // while every evaluation reads the current (perturbed) parameter values
    auto y = layer(x);
    auto r = xgrad::gradcheck([&] { return y; }, ps, gen);
    BOOST_TEST(r.ok, what << ": " << r.report);
    BOOST_TEST(r.checked > 0u);
}

// A user layer: residual MLP block.
struct residual_block : nn::module<residual_block> {
    nn::linear<double> fc1, fc2;
    residual_block(std::size_t d, std::size_t h) : fc1(d, h), fc2(h, d) {}
    template <class X>
    auto forward(X&& x) {
        return x + fc2(xgrad::gelu(fc1(x)));
    }
    XGRAD_MODULE(fc1, fc2)
};

}  // namespace

BOOST_AUTO_TEST_CASE(linear) {
    nn::manual_seed(1);
    nn::linear<double> a(5, 3), b(5, 3, {.bias = false});
    check_layer("linear", a, input({4, 5}, 1));
    check_layer("linear 3-D input", a, input({2, 3, 5}, 2));
    check_layer("linear without bias", b, input({4, 5}, 3));
}

BOOST_AUTO_TEST_CASE(conv2d) {
    nn::manual_seed(2);
    nn::conv2d<double> a(2, 3, 3), b(4, 4, {3, 2}, {.stride = 2, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2});
    check_layer("conv2d", a, input({2, 2, 5, 6}, 4));
    check_layer("conv2d strided, padded, dilated, grouped", b, input({1, 4, 7, 8}, 5));
}

BOOST_AUTO_TEST_CASE(pooling) {
    nn::max_pool2d mp(2);
    nn::avg_pool2d ap(3, 2, 1, false);
    nn::adaptive_avg_pool2d aap({2, 3});
    check_layer("max_pool2d", mp, input({2, 2, 4, 6}, 6));
    check_layer("avg_pool2d", ap, input({1, 2, 5, 5}, 7));
    check_layer("adaptive_avg_pool2d", aap, input({2, 1, 5, 7}, 8));
}

BOOST_AUTO_TEST_CASE(activations_and_shape) {
    nn::relu relu;
    nn::leaky_relu leaky(0.2);
    nn::gelu gelu;
    nn::tanh tanh;
    nn::sigmoid sigmoid;
    nn::softmax softmax(1);
    nn::log_softmax log_softmax;
    nn::flatten flatten;
    const auto x = input({3, 4, 2}, 9);
    check_layer("relu", relu, x);
    check_layer("leaky_relu", leaky, x);
    check_layer("gelu", gelu, x);
    check_layer("tanh", tanh, x);
    check_layer("sigmoid", sigmoid, x);
    check_layer("softmax", softmax, x);
    check_layer("log_softmax", log_softmax, x);
    check_layer("flatten", flatten, x);
}

BOOST_AUTO_TEST_CASE(dropout) {
    nn::dropout d(0.4);
    check_layer("dropout training", d, input({6, 5}, 10));
    d.eval();
    check_layer("dropout evaluation", d, input({6, 5}, 11));
}

BOOST_AUTO_TEST_CASE(normalization) {
    nn::batch_norm1d<double> bn1(3);
    nn::batch_norm2d<double> bn2(2), bn2_plain(2, {.affine = false});
    nn::layer_norm<double> ln(xgrad::shape_t{2, 3});
    // non-trivial affine parameters
    xgrad::rng gen(12);
    nn::init::normal(bn1.weight, gen);
    nn::init::normal(bn2.bias, gen);
    nn::init::normal(ln.weight, gen);
    nn::init::normal(ln.bias, gen);
    check_layer("batch_norm1d {N, C}", bn1, input({5, 3}, 13));
    check_layer("batch_norm1d {N, C, L}", bn1, input({4, 3, 2}, 14));
    check_layer("batch_norm2d", bn2, input({3, 2, 3, 2}, 15));
    check_layer("batch_norm2d without affine", bn2_plain, input({3, 2, 2, 2}, 16));
    bn2.eval();
    check_layer("batch_norm2d evaluation", bn2, input({2, 2, 3, 3}, 17));
    check_layer("layer_norm", ln, input({4, 2, 3}, 18));
}

BOOST_AUTO_TEST_CASE(embedding) {
    nn::embedding<double> emb(7, 3);
    const auto idx = xgrad::from_vector<std::int64_t>({0, 3, 3, 6, 1, 0}, {2, 3});
    std::vector<P> ps = nn::parameters(emb);
    xgrad::rng gen(19);
    auto r = xgrad::gradcheck([&] { return emb(idx); }, ps, gen);
    BOOST_TEST(r.ok, r.report);
}

BOOST_AUTO_TEST_CASE(sequential_and_user_layer) {
    nn::manual_seed(3);
    auto model = nn::sequential(nn::conv2d<double>(1, 2, 3, {.padding = 1}), nn::relu(), nn::max_pool2d(2),
                                nn::flatten(), nn::linear<double>(8, 6), residual_block(6, 5), nn::tanh(),
                                nn::linear<double>(6, 3));
    check_layer("sequential with a user layer", model, input({2, 1, 4, 4}, 20));
    residual_block blk(4, 3);
    check_layer("residual block", blk, input({3, 4}, 21));
}
