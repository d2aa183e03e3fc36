#define BOOST_TEST_MODULE attention
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <cmath>
#include <map>
#include <string>

#include <xgrad/nn/attention.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;

using real_types = boost::mpl::list<float, double>;

namespace {

/// The records of tests/data/attention_reference.txt (gen_attention_reference.py).
const std::map<std::string, tensor<double>>& ref() {
    static const auto r = xgrad_test::read_reference_file(std::string(XGRAD_TEST_DATA_DIR) + "/attention_reference.txt");
    return r;
}
template <class T = double>
tensor<T> rec(const std::string& name) {
    auto it = ref().find(name);
    if (it == ref().end()) throw std::runtime_error("attention reference: no record " + name);
    return it->second.clone().astype<T>();
}

template <class T>
double rtol() {
    return std::is_same_v<T, double> ? 1e-9 : 1e-4;
}
template <class T>
double atol() {
    return std::is_same_v<T, double> ? 1e-11 : 1e-5;
}

attention_mask padding_of(const std::string& c, bool causal = false) {
    return attention_mask::key_padding(rec<double>(c + ".pad"), causal);
}

/// Copies the reference values "<case>.<name>" into every parameter of m.
template <class M>
void load_parameters(M& m, const std::string& c) {
    for (auto& [name, p] : nn::named_parameters(m)) {
        using T = typename std::remove_cvref_t<decltype(p.value())>::value_type;
        const auto v = rec<T>(c + "." + name);
        BOOST_TEST_REQUIRE(v.shape() == p.shape(), c << "." << name << ": shape " << to_string(p.shape()));
        std::copy_n(v.data(), v.size(), nn::init::values_of(p).data());
    }
}

/// Every parameter's gradient against "<case>.grad.<name>".
template <class M>
void check_parameter_grads(M& m, const std::string& c) {
    std::size_t n = 0;
    for (auto& [name, p] : nn::named_parameters(m)) {
        using T = typename std::remove_cvref_t<decltype(p.value())>::value_type;
        check_close(p.grad(), rec(c + ".grad." + name), rtol<T>(), atol<T>() * 10, c + ".grad." + name);
        ++n;
    }
    BOOST_TEST(n > 0u);
}

}  // namespace

// --- masked softmax -----------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(masked_softmax_matches_pytorch, T, real_types) {
    struct c_t {
        std::string name;
        double scale;
        bool pad, causal;
    };
    for (const c_t& c : {c_t{"softmax_plain", 0.5, false, false}, c_t{"softmax_pad", 0.7, true, false},
                         c_t{"softmax_causal_pad", 0.35, true, true}}) {
        auto x = param(rec<T>(c.name + ".x"));
        const attention_mask m = c.pad ? padding_of(c.name, c.causal) : attention_mask{};
        auto f = [&] { return masked_softmax(x, m, c.scale); };
        check_close(eval(f()), rec(c.name + ".y"), rtol<T>(), atol<T>(), c.name + ".y");
        backward(f(), rec<T>(c.name + ".g"));
        check_close(x.grad(), rec(c.name + ".dx"), rtol<T>(), atol<T>() * 10, c.name + ".dx");
    }
}

BOOST_AUTO_TEST_CASE(masked_softmax_fully_masked_rows_are_zero_not_nan) {
    // batch 1 pads every key; with the causal mask query 0 of batch 0 still sees key 0
    auto pad = from_vector<float>({0, 1, 1, 1, 1, 1}, {2, 3});
    auto x = param(from_vector<float>({1e30f, -1e30f, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 3, 3}));
    auto y = eval(masked_softmax(x, attention_mask::key_padding(pad, true), 1.0)).to_vector();
    for (float v : y) BOOST_TEST(std::isfinite(v));
    BOOST_TEST(y[0] == 1.0f);  // a huge score stays exact after subtracting the max
    for (std::size_t i = 9; i < 18; ++i) BOOST_TEST(y[i] == 0.0f);
    backward(sum(masked_softmax(x, attention_mask::key_padding(pad, true), 1.0) * x));
    for (float v : x.grad().to_vector()) BOOST_TEST(std::isfinite(v));
}

BOOST_AUTO_TEST_CASE(masked_softmax_and_sdpa_gradcheck) {
    rng gen(5);
    auto pad = from_vector<double>({0, 0, 1, 0, 0, 0, 0, 0}, {2, 4});
    for (const shape_t& s : {shape_t{1, 1}, shape_t{3, 7}, shape_t{2, 3, 4}, shape_t{2, 2, 4, 4}, shape_t{2, 3, 3, 4}}) {
        auto x = param(randn<double>(s, gen));
        const std::string w = to_string(s);
        xgrad_test::expect_gradcheck([&] { return masked_softmax(x, {}, 0.8); }, {x}, gen, "masked_softmax " + w);
        xgrad_test::expect_gradcheck([&] { return masked_softmax(x, attention_mask::causal_mask(), 1.3); }, {x}, gen,
                                     "causal masked_softmax " + w);
        if (s.size() >= 3 && s[0] == 2 && s.back() == 4)
            xgrad_test::expect_gradcheck([&] { return masked_softmax(x, attention_mask::key_padding(pad, true), 0.5); },
                                         {x}, gen, "padded causal masked_softmax " + w);
    }
    auto q = param(randn<double>({2, 2, 3, 4}, gen)), k = param(randn<double>({2, 2, 4, 4}, gen)),
         v = param(randn<double>({2, 2, 4, 3}, gen));
    xgrad_test::expect_gradcheck([&] { return scaled_dot_product_attention(q, k, v, attention_mask::key_padding(pad)); },
                                 {q, k, v}, gen, "scaled_dot_product_attention");
}

BOOST_AUTO_TEST_CASE(multihead_attention_kernel_gradcheck) {
    rng gen(6);
    auto pad = from_vector<double>({0, 0, 0, 0, 0, 0, 0, 1, 1, 0}, {2, 5});
    for (bool batch_first : {true, false}) {
        const std::string w = batch_first ? " batch_first" : " seq_first";
        auto qkv = param(randn<double>(batch_first ? shape_t{2, 5, 12} : shape_t{5, 2, 12}, gen));
        attention_options o{.mask = attention_mask::key_padding(pad, true), .batch_first = batch_first};
        xgrad_test::expect_gradcheck([&] { return multihead_attention(qkv, 2, o); }, {qkv}, gen, "packed" + w);
        auto q = param(randn<double>(batch_first ? shape_t{2, 3, 6} : shape_t{3, 2, 6}, gen));
        auto k = param(randn<double>(batch_first ? shape_t{2, 5, 6} : shape_t{5, 2, 6}, gen));
        auto v = param(randn<double>(k.shape(), gen));
        o.mask = attention_mask::key_padding(pad);
        xgrad_test::expect_gradcheck([&] { return multihead_attention(q, k, v, 3, o); }, {q, k, v}, gen, "q, k, v" + w);
    }
    // attention dropout: a fixed seed gives a fixed mask, so the function is differentiable
    auto qkv = param(randn<double>({2, 4, 6}, gen));
    attention_options o{.dropout = 0.3, .training = true, .seed = 42};
    xgrad_test::expect_gradcheck([&] { return multihead_attention(qkv, 1, o); }, {qkv}, gen, "with dropout");
}

BOOST_AUTO_TEST_CASE(fork_sums_gradients_and_walks_the_subgraph_once) {
    rng gen(7);
    auto x = param(randn<double>({3, 4}, gen));
    auto w = param(randn<double>({4, 4}, gen));
    xgrad_test::expect_gradcheck(
        [&] {
            auto [a, b, c] = fork<3>(matmul(x, w));
            return tanh(a) * b + c;
        },
        {x, w}, gen, "fork of a matmul");
}

// --- layers against torch.nn ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(multihead_attention_matches_pytorch, T, real_types) {
    for (const std::string c : {"mha_self", "mha_self_pad_causal"}) {
        const auto xs = rec(c + ".x").shape();
        const std::size_t E = xs[2], H = c == "mha_self" ? 2 : 3;
        nn::multihead_attention<T> m(E, H);
        load_parameters(m, c);
        auto x = param(rec<T>(c + ".x"));
        const attention_mask mask = c == "mha_self" ? attention_mask{} : padding_of(c, true);
        check_close(eval(m.forward(x, mask)), rec(c + ".y"), rtol<T>(), atol<T>(), c + ".y");
        backward(m.forward(x, mask), rec<T>(c + ".g"));
        check_close(x.grad(), rec(c + ".dx"), rtol<T>(), atol<T>() * 10, c + ".dx");
        check_parameter_grads(m, c);
    }
    const std::string c = "mha_cross";
    nn::multihead_attention<T> m(8, 4);
    load_parameters(m, c);
    auto q = param(rec<T>(c + ".q")), k = param(rec<T>(c + ".k")), v = param(rec<T>(c + ".v"));
    const attention_mask mask = padding_of(c);
    check_close(eval(m.forward(q, k, v, mask)), rec(c + ".y"), rtol<T>(), atol<T>(), c + ".y");
    backward(m.forward(q, k, v, mask), rec<T>(c + ".g"));
    check_close(q.grad(), rec(c + ".dq"), rtol<T>(), atol<T>() * 10, c + ".dq");
    check_close(k.grad(), rec(c + ".dk"), rtol<T>(), atol<T>() * 10, c + ".dk");
    check_close(v.grad(), rec(c + ".dv"), rtol<T>(), atol<T>() * 10, c + ".dv");
    check_parameter_grads(m, c);
}

BOOST_AUTO_TEST_CASE(multihead_attention_names_are_pytorchs) {
    nn::multihead_attention<float> m(8, 2);
    std::vector<std::string> names;
    for (auto& [n, p] : nn::named_parameters(m)) names.push_back(n + " " + to_string(p.shape()));
    const std::vector<std::string> want{"in_proj_weight {24, 8}", "in_proj_bias {24}", "out_proj.weight {8, 8}",
                                        "out_proj.bias {8}"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
}

template <class T, class Act>
void check_encoder(const std::string& c, bool norm_first, bool causal) {
    nn::transformer_encoder_layer<T, Act> m(8, 2, {.dim_feedforward = 16, .dropout = 0.1, .norm_first = norm_first});
    m.eval();
    load_parameters(m, c);
    auto x = param(rec<T>(c + ".x"));
    const attention_mask mask = padding_of(c, causal);
    check_close(eval(m.forward(x, mask)), rec(c + ".y"), rtol<T>(), atol<T>(), c + ".y");
    backward(m.forward(x, mask), rec<T>(c + ".g"));
    check_close(x.grad(), rec(c + ".dx"), rtol<T>(), atol<T>() * 10, c + ".dx");
    check_parameter_grads(m, c);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(transformer_encoder_layer_matches_pytorch, T, real_types) {
    check_encoder<T, activation::relu_t>("enc_post_relu", false, false);
    check_encoder<T, activation::gelu_t>("enc_pre_gelu", true, true);
}

BOOST_AUTO_TEST_CASE(transformer_encoder_layer_gradcheck_both_norm_placements) {
    rng gen(8);
    auto pad = from_vector<double>({0, 0, 0, 1, 0, 0, 0, 0}, {2, 4});
    for (bool pre : {false, true}) {
        nn::transformer_encoder_layer<double, activation::gelu_t> m(6, 3, {.dim_feedforward = 5, .dropout = 0, .norm_first = pre},
                                                                    gen);
        auto x = param(randn<double>({2, 4, 6}, gen));
        auto params = nn::parameters(m);
        params.push_back(x);
        xgrad_test::expect_gradcheck([&] { return m.forward(x, attention_mask::key_padding(pad)); }, params, gen,
                                     pre ? "pre-norm layer" : "post-norm layer");
    }
}

BOOST_AUTO_TEST_CASE(encoder_dropout_barrier_values_and_gradcheck) {
    // the dropout on linear2's input: y = x * mask, dx = g * mask; no mask: y = x, dx = g
    rng gen(10);
    auto x = param(randn<double>({3, 4, 5}, gen));
    auto mask = tensor<double>::uninitialized({3, 4, 5});
    for (std::size_t i = 0; i < mask.size(); ++i) mask.data()[i] = gen.uniform() < 0.4 ? 0.0 : 1.0 / 0.6;
    const auto y = eval(make_op(xgrad::detail::barrier_dropout_impl<double>{mask}, x)).to_vector();
    for (std::size_t i = 0; i < y.size(); ++i) BOOST_TEST(y[i] == x.value().data()[i] * mask.data()[i]);
    xgrad_test::expect_gradcheck([&] { return make_op(xgrad::detail::barrier_dropout_impl<double>{mask}, x); }, {x}, gen,
                                 "dropout barrier with a mask");
    xgrad_test::expect_gradcheck([&] { return make_op(xgrad::detail::barrier_dropout_impl<double>{}, x); }, {x}, gen,
                                 "dropout barrier without a mask");
}

BOOST_AUTO_TEST_CASE(transformer_encoder_layer_names_and_training_dropout) {
    nn::transformer_encoder_layer<float> m(8, 2, {.dim_feedforward = 16, .dropout = 0.5});
    std::vector<std::string> names;
    for (auto& [n, p] : nn::named_parameters(m)) names.push_back(n);
    const std::vector<std::string> want{"self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                                        "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                                        "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
    rng gen(9);
    auto x = randn<float>({2, 5, 8}, gen);
    const auto e1 = eval(m.forward(x)).to_vector(), e2 = eval(m.forward(x)).to_vector();
    BOOST_TEST(e1 != e2);  // training: new dropout masks each forward
    m.eval();
    BOOST_TEST(eval(m.forward(x)).to_vector() == eval(m.forward(x)).to_vector());
}

// --- positional embeddings ------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(sinusoidal_positional_encoding_matches_pytorch_recipe) {
    nn::sinusoidal_positional_encoding<double> pe(7, 6);
    check_close(pe.table(), rec("sinusoid.pe"), 1e-12, 1e-12, "pe table");
    auto x = param(zeros<double>({2, 5, 6}));
    auto y = eval(pe(x));
    const auto t = rec("sinusoid.pe").to_vector();
    auto want = tensor<double>::uninitialized({2, 5, 6});
    for (std::size_t i = 0; i < want.size(); ++i) want.data()[i] = t[i % 30];  // rows 0..4 for each batch item
    check_close(y, want, 1e-12, 1e-12, "pe added");
}

BOOST_AUTO_TEST_CASE(learned_positional_embedding_gradcheck) {
    rng gen(10);
    nn::learned_positional_embedding<double> pe(6, 4, gen);
    auto x = param(randn<double>({2, 3, 4}, gen));
    xgrad_test::expect_gradcheck([&] { return tanh(pe(x)); }, {x, pe.weight}, gen, "learned positions");
}

// --- bad input --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(masks_of_the_wrong_shape_are_shape_errors) {
    rng gen(11);
    auto x = randn<float>({2, 5, 8}, gen);
    nn::multihead_attention<float> m(8, 2);
    xgrad_test::check_throws<shape_error>([&] { m.forward(x, attention_mask::key_padding(zeros<float>({2, 4}))); },
                                          {"key_padding_mask", "{2, 4}", "{2, 5}"});
    xgrad_test::check_throws<shape_error>([&] { m.forward(x, attention_mask::key_padding(zeros<float>({3, 5}))); },
                                          {"key_padding_mask", "{3, 5}"});
    xgrad_test::check_throws<shape_error>([&] { attention_mask::key_padding(zeros<float>({10})); },
                                          {"key_padding_mask", "{10}"});
    xgrad_test::check_throws<shape_error>([&] { masked_softmax(randn<float>({2, 3, 4}, gen), attention_mask::key_padding(zeros<float>({2, 3}))); },
                                          {"masked_softmax", "{2, 3}"});
    xgrad_test::check_throws<shape_error>([&] { m.forward(randn<float>({2, 5, 7}, gen)); }, {"multihead_attention", "{2, 5, 7}"});
    xgrad_test::check_throws<value_error>([&] { nn::multihead_attention<float>(10, 3); }, {"embed_dim", "num_heads"});
    xgrad_test::check_throws<shape_error>([&] { multihead_attention(randn<float>({2, 5, 13}, gen), 1); }, {"3 * embed_dim"});
    nn::sinusoidal_positional_encoding<float> pe(4, 8);
    xgrad_test::check_throws<shape_error>([&] { pe(x); }, {"seq <= 4", "{2, 5, 8}"});
}
