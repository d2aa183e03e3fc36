#define BOOST_TEST_MODULE nn
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>
#include "test_support.hpp"

using xgrad_test::contains;
using xgrad_test::error_of;

namespace nn = xgrad::nn;
using xgrad::shape_t;
using xgrad::tensor;

namespace {

std::vector<std::string> names_of(auto&& named) {
    std::vector<std::string> out;
    for (auto& [n, p] : named) out.push_back(n);
    return out;
}

// A user layer with the optional base: residual MLP block.
struct residual_block : nn::module<residual_block> {
    nn::linear<float> fc1, fc2;
    residual_block(std::size_t dim, std::size_t hidden) : fc1(dim, hidden), fc2(hidden, dim) {}
    template <class X>
    auto forward(X&& x) {
        return x + fc2(xgrad::gelu(fc1(x)));
    }
    XGRAD_MODULE(fc1, fc2)
};

// A user layer without the base, with a parameter of its own, a buffer and a vector of layers.
struct tower {
    xgrad::parameter<float> scale = xgrad::param(xgrad::ones<float>({1}));
    tensor<float> calls = xgrad::zeros<float>({1});
    std::vector<nn::linear<float>> blocks;
    explicit tower(std::size_t dim) {
        for (int i = 0; i < 3; ++i) blocks.emplace_back(dim, dim);
    }
    template <class X>
    auto forward(X&& x) {
        // three blocks, then the scale: ordinary C++ around the layers
        return blocks[2](xgrad::tanh(blocks[1](xgrad::tanh(blocks[0](x))))) * scale;
    }
    XGRAD_MODULE(scale, calls, blocks)
};

auto cnn() {
    return nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2), nn::conv2d(32, 64, 3), nn::relu(),
                          nn::max_pool2d(2), nn::flatten(), nn::linear(64 * 5 * 5, 10));
}

}  // namespace

// The issue's snippet, as written, plus what it promises.
BOOST_AUTO_TEST_CASE(issue_snippet) {
    namespace nn = xgrad::nn;
    auto model = nn::sequential(
        nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),
        nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),
        nn::flatten(), nn::linear(64 * 5 * 5, 10));
    xgrad::rng gen(0);
    auto x = xgrad::randn<float>({8, 1, 28, 28}, gen);
    auto logits = xgrad::eval(model(x));                     // {8, 10}
    std::vector<std::string> names;
    for (auto& [name, p] : model.named_parameters()) names.push_back(name);
    std::ostringstream table;
    xgrad::nn::summary(model, {1, 28, 28}, table);

    BOOST_TEST(logits.shape() == (shape_t{8, 10}));
    BOOST_TEST(names == (std::vector<std::string>{"0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias"}));
    // the same network written with the functional ops gives the same logits
    auto& c1 = model.get<0>();
    auto& c2 = model.get<3>();
    auto& fc = model.get<7>();
    auto h1 = xgrad::eval(xgrad::max_pool2d(xgrad::relu(xgrad::conv2d(x, c1.weight, c1.bias)), 2));
    auto h = xgrad::eval(xgrad::max_pool2d(xgrad::relu(xgrad::conv2d(h1, c2.weight, c2.bias)), 2));
    const auto expected = xgrad::eval(xgrad::linear(xgrad::flatten(h), fc.weight, fc.bias)).to_vector();
    BOOST_TEST(logits.to_vector() == expected);

    const std::string t = table.str();
    BOOST_TEST(contains(t, "0 (conv2d)"));
    BOOST_TEST(contains(t, "{N, 32, 26, 26}"));
    BOOST_TEST(contains(t, "5 (max_pool2d)"));
    BOOST_TEST(contains(t, "{N, 64, 5, 5}"));
    BOOST_TEST(contains(t, "7 (linear)"));
    BOOST_TEST(contains(t, "16,010"));
    BOOST_TEST(contains(t, "18,496"));
    BOOST_TEST(contains(t, "Total params: 34,826"));
    BOOST_TEST(contains(t, "Trainable params: 34,826"));
}

BOOST_AUTO_TEST_CASE(pytorch_default_initialisation) {
    nn::manual_seed(3);
    nn::linear lin(400, 300);
    const double k = 1.0 / std::sqrt(400.0);
    double s2 = 0;
    for (float w : lin.weight.value().to_vector()) {
        BOOST_TEST(std::fabs(w) <= k);
        s2 += double(w) * w;
    }
    // U(-k, k) has variance k^2 / 3; 120000 draws put the sample within 2%
    BOOST_TEST(s2 / 120000 == k * k / 3, boost::test_tools::tolerance(0.02));
    for (float b : lin.bias.value().to_vector()) BOOST_TEST(std::fabs(b) <= k);

    nn::conv2d conv(6, 16, 5, {.groups = 2});  // fan_in = 6 / 2 * 5 * 5 = 75
    BOOST_TEST(conv.weight.shape() == (shape_t{16, 3, 5, 5}));
    const double kc = 1.0 / std::sqrt(75.0);
    float mx = 0;
    for (float w : conv.weight.value().to_vector()) mx = std::max(mx, std::fabs(w));
    BOOST_TEST(mx <= kc);
    BOOST_TEST(mx >= 0.95 * kc);

    nn::batch_norm2d bn(4);
    BOOST_TEST(bn.weight.value().to_vector() == std::vector<float>(4, 1.0f));
    BOOST_TEST(bn.bias.value().to_vector() == std::vector<float>(4, 0.0f));
    BOOST_TEST(bn.running_mean.to_vector() == std::vector<float>(4, 0.0f));
    BOOST_TEST(bn.running_var.to_vector() == std::vector<float>(4, 1.0f));

    nn::embedding emb(500, 64);
    double m = 0, v = 0;
    const auto e = emb.weight.value().to_vector();
    for (float x : e) m += x;
    m /= double(e.size());
    for (float x : e) v += (x - m) * (x - m);
    v /= double(e.size());
    BOOST_TEST(std::fabs(m) < 0.02);
    BOOST_TEST(v == 1.0, boost::test_tools::tolerance(0.03));

    // the same seed builds the same model
    nn::manual_seed(11);
    auto a = cnn();
    nn::manual_seed(11);
    auto b = cnn();
    BOOST_TEST(a.get<3>().weight.value().to_vector() == b.get<3>().weight.value().to_vector());
    BOOST_TEST(a.get<0>().weight.value().to_vector() != a.get<3>().weight.value().to_vector());
}

BOOST_AUTO_TEST_CASE(dotted_names_nested_and_custom) {
    auto model = nn::sequential(nn::linear(4, 8), nn::sequential(nn::linear(8, 8), nn::relu()),
                                residual_block(8, 16), nn::layer_norm(8), nn::linear(8, 2, {.bias = false}));
    BOOST_TEST(names_of(model.named_parameters()) ==
               (std::vector<std::string>{"0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.fc1.weight", "2.fc1.bias",
                                         "2.fc2.weight", "2.fc2.bias", "3.weight", "3.bias", "4.weight"}));
    // the names are written into the parameters and the layers
    BOOST_TEST(model.get<2>().fc2.bias.name() == "2.fc2.bias");
    BOOST_TEST(model.get<1>().get<0>().path() == "1.0");
    BOOST_TEST(model.parameters().size() == 11u);
    BOOST_TEST(model.num_parameters() == 40u + 72u + (144 + 136) + 16u + 16u);

    // a plain struct (no base) with a parameter, a buffer and a vector of layers
    tower t(5);
    BOOST_TEST(names_of(nn::named_parameters(t)) ==
               (std::vector<std::string>{"scale", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                         "blocks.1.bias", "blocks.2.weight", "blocks.2.bias"}));
    BOOST_TEST(names_of(nn::named_buffers(t)) == (std::vector<std::string>{"calls"}));
    auto in_seq = nn::sequential(nn::linear(3, 5), tower(5));
    BOOST_TEST(names_of(in_seq.named_parameters())[4] == "1.blocks.0.bias");
    xgrad::rng gen(0);
    BOOST_TEST(xgrad::eval(in_seq(xgrad::randn<float>({2, 3}, gen))).shape() == (shape_t{2, 5}));

    // batch norm buffers
    auto bn = nn::sequential(nn::conv2d(1, 2, 1), nn::batch_norm2d(2));
    BOOST_TEST(names_of(bn.named_buffers()) == (std::vector<std::string>{"1.running_mean", "1.running_var"}));
}

BOOST_AUTO_TEST_CASE(shared_parameters_listed_once) {
    nn::linear shared(4, 4);
    auto model = nn::sequential(shared, nn::relu(), shared);  // copies share their parameters
    BOOST_TEST(names_of(model.named_parameters()) == (std::vector<std::string>{"0.weight", "0.bias"}));
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_layer) {
    auto model = cnn();
    xgrad::rng gen(0);
    // three channels where conv 0 wants one
    auto msg = error_of<xgrad::shape_error>([&] { model(xgrad::randn<float>({2, 3, 28, 28}, gen)); });
    BOOST_TEST(contains(msg, "layer '0' (conv2d)"), msg);
    BOOST_TEST(contains(msg, "{N, 1, H, W}"), msg);
    BOOST_TEST(contains(msg, "{2, 3, 28, 28}"), msg);
    // 20x20 images make the flattened features 64 * 3 * 3: linear 7 sees the wrong width
    msg = error_of<xgrad::shape_error>([&] { model(xgrad::randn<float>({2, 1, 20, 20}, gen)); });
    BOOST_TEST(contains(msg, "layer '7' (linear)"), msg);
    BOOST_TEST(contains(msg, "{..., 1600}"), msg);
    BOOST_TEST(contains(msg, "{2, 576}"), msg);
    // an error raised by the op itself (pooling a 1x1 map) names the layer too
    auto pool = nn::sequential(nn::linear(3, 3), nn::sequential(nn::flatten(), nn::max_pool2d(2)));
    msg = error_of<xgrad::shape_error>([&] { pool(xgrad::randn<float>({1, 1, 1, 3}, gen)); });
    BOOST_TEST(contains(msg, "layer '1.1' (max_pool2d)"), msg);
    // a layer used on its own has no dotted name: its kind leads
    nn::batch_norm2d bn(8);
    msg = error_of<xgrad::shape_error>([&] { bn(xgrad::randn<float>({2, 8, 3}, gen)); });
    BOOST_TEST(msg == "batch_norm2d: expected input of shape {N, 8, H, W}, got {2, 8, 3}");
    nn::layer_norm<float> ln(shape_t{4, 5});
    msg = error_of<xgrad::shape_error>([&] { ln(xgrad::randn<float>({2, 5, 4}, gen)); });
    BOOST_TEST(msg == "layer_norm: expected input of shape {..., 4, 5}, got {2, 5, 4}");
    // a user layer inside a sequential
    auto with_block = nn::sequential(nn::linear(3, 6), residual_block(4, 8));
    msg = error_of<xgrad::shape_error>([&] { with_block(xgrad::randn<float>({2, 3}, gen)); });
    BOOST_TEST(contains(msg, "layer '1.fc1' (linear)"), msg);
    BOOST_TEST(contains(msg, "{..., 4}"), msg);
}

BOOST_AUTO_TEST_CASE(bad_hyper_parameters) {
    using xgrad::value_error;
    BOOST_CHECK_THROW(nn::linear(0, 3), value_error);
    BOOST_CHECK_THROW(nn::conv2d(3, 4, 3, {.groups = 2}), value_error);
    BOOST_CHECK_THROW(nn::conv2d(4, 4, 0), value_error);
    BOOST_CHECK_THROW(nn::dropout(1.0), value_error);
    BOOST_CHECK_THROW(nn::dropout(NAN), value_error);
    BOOST_CHECK_THROW(nn::batch_norm2d(4, {.eps = 0}), value_error);
    BOOST_CHECK_THROW(nn::batch_norm1d(4, {.momentum = -0.1}), value_error);
    BOOST_CHECK_THROW(nn::layer_norm(shape_t{}), value_error);
    BOOST_CHECK_THROW(nn::leaky_relu(NAN), value_error);
    BOOST_CHECK_THROW(nn::embedding(0, 4), value_error);
}

BOOST_AUTO_TEST_CASE(train_and_eval_modes) {
    auto model = nn::sequential(nn::linear(16, 64), nn::dropout(0.5), nn::batch_norm1d(64), residual_block(64, 8));
    BOOST_TEST(model.is_training());
    model.eval();
    BOOST_TEST(!model.get<1>().is_training());
    BOOST_TEST(!model.get<3>().fc1.is_training());  // reaches inside user layers
    xgrad::rng gen(1);
    auto x = xgrad::randn<float>({32, 16}, gen);
    // evaluation is deterministic: dropout is the identity, batch norm uses running statistics
    BOOST_TEST(xgrad::eval(model(x)).to_vector() == xgrad::eval(model(x)).to_vector());
    const auto mean0 = model.get<2>().running_mean.to_vector();
    model.train();
    // training: about half the dropout outputs are zero, scaled survivors
    auto d = xgrad::eval(model.get<1>()(xgrad::ones<float>({4000})));
    std::size_t zeros = 0;
    for (float v : d.to_vector()) {
        BOOST_TEST((v == 0.0f || v == 2.0f));
        zeros += v == 0.0f;
    }
    BOOST_TEST(zeros > 1800u);
    BOOST_TEST(zeros < 2200u);
    // a training pass updates the running statistics
    xgrad::eval(model(x));
    BOOST_TEST(model.get<2>().running_mean.to_vector() != mean0);
    // free-function forms work on any layer
    tower t(3);
    nn::eval(t);
    BOOST_TEST(!t.blocks[1].is_training());
}

BOOST_AUTO_TEST_CASE(freezing) {
    nn::manual_seed(2);
    auto model = nn::sequential(nn::linear(4, 8), nn::relu(), residual_block(8, 8), nn::linear(8, 2));
    model.get<0>().requires_grad(false);
    model.get<3>().bias.requires_grad(false);
    BOOST_TEST(model.num_parameters() == 40u + 144u + 18u);
    BOOST_TEST(model.num_parameters(true) == 144u + 16u);
    const auto w0 = model.get<0>().weight.value().to_vector();
    const auto b3 = model.get<3>().bias.value().to_vector();
    const auto w3 = model.get<3>().weight.value().to_vector();
    auto opt = xgrad::optim::sgd(model.parameters(), {.lr = 0.1});
    xgrad::rng gen(0);
    auto x = xgrad::randn<float>({5, 4}, gen);
    xgrad::backward(xgrad::sum(xgrad::square(model(x))));
    opt.step();
    BOOST_TEST(model.get<0>().weight.value().to_vector() == w0);
    BOOST_TEST(model.get<3>().bias.value().to_vector() == b3);
    BOOST_TEST(model.get<3>().weight.value().to_vector() != w3);
    // unfreeze a whole user layer tree at once, freeze another
    nn::requires_grad(model, true);
    model.get<2>().requires_grad(false);
    BOOST_TEST(model.num_parameters(true) == 40u + 18u);
}

// A layer's forward is an expression: linear then relu in a sequential is one GEMM node with
// a relu epilogue, and a user layer's residual add is an elementwise node over it.
BOOST_AUTO_TEST_CASE(forward_returns_fused_expressions) {
    auto model = nn::sequential(nn::linear(3, 4), nn::relu());
    xgrad::rng gen(0);
    auto x = xgrad::randn<float>({2, 3}, gen);
    auto y = model(x);
    static_assert(std::is_same_v<decltype(y.impl), xgrad::detail::dense_op<float, xgrad::activation::relu_t, true, true>>,
                  "linear + relu fuse into one dense op");
    const auto& lin = model.get<0>();
    const auto direct = xgrad::eval(xgrad::relu(xgrad::matmul(x, xgrad::transpose(lin.weight, 0, 1)) + lin.bias));
    const auto yv = xgrad::eval(y).to_vector(), dv = direct.to_vector();
    for (std::size_t i = 0; i < yv.size(); ++i) BOOST_TEST(yv[i] == dv[i], boost::test_tools::tolerance(1e-6f));

    residual_block blk(3, 5);
    auto r = blk(x);
    static_assert(std::is_same_v<decltype(r.op), xgrad::ops::add>, "the residual add is an elementwise node");
    // fc2's input is fc1 with the gelu in its epilogue
    static_assert(std::is_same_v<decltype(std::get<0>(r.r.args).impl),
                                 xgrad::detail::dense_op<float, xgrad::activation::gelu_t, true, true>>,
                  "gelu(fc1(x)) fuses into fc1");
    BOOST_TEST(xgrad::eval(r).shape() == (shape_t{2, 3}));
}
