#define BOOST_TEST_MODULE embedding
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;
using xgrad_test::reference;

using real_types = boost::mpl::list<float, double>;

BOOST_AUTO_TEST_CASE_TEMPLATE(embedding_matches_pytorch, T, real_types) {
    const auto& ref = reference::get();
    auto w = param(ref.as<T>("emb.weight"));
    const auto idx = ref.labels("emb.indices");
    auto y = embedding(idx, w);
    BOOST_TEST(y.shape() == (shape_t{2, 3, 3}));
    check_close(eval(y), ref.as<T>("emb.y").template astype<double>(), 0, 0, "emb.y");  // a gather copies exactly
    backward(y, ref.as<T>("emb.g"));
    // rows 0 and 5 are picked twice: their gradients are sums
    check_close(w.grad(), ref("emb.dweight"), xgrad_test::rtol_for<T>(), xgrad_test::atol_for<T>(), "emb.dweight");
    // row 3 is never picked: zero gradient
    for (std::size_t j = 0; j < 3; ++j) BOOST_TEST(w.grad()(3, j) == T(0));
}

BOOST_AUTO_TEST_CASE(gradcheck_random_index_shapes) {
    rng gen(41);
    for (const shape_t& s : {shape_t{1}, shape_t{5}, shape_t{2, 3}, shape_t{3, 1, 4}}) {
        auto w = param(randn<double>({7, 5}, gen));
        const auto idx = uniform<std::int64_t>(s, gen, 0, 7);
        xgrad_test::expect_gradcheck([&] { return embedding(idx, w); }, {w}, gen, "embedding " + to_string(s));
        // downstream elementwise work and a reduction over the gathered rows
        xgrad_test::expect_gradcheck([&] { return sum(tanh(embedding(idx, w * 0.5)), -1); }, {w}, gen,
                                     "embedding in chain " + to_string(s));
    }
}

BOOST_AUTO_TEST_CASE(bad_indices_and_weight) {
    using xgrad_test::check_throws;
    auto w = param(zeros<float>({4, 2}));
    check_throws<value_error>([&] { embedding(tensor<std::int64_t>({3}, {0, 4, 1}), w); },
                              {"embedding", "index 4", "position 1", "4 embeddings"});
    check_throws<value_error>([&] { embedding(tensor<std::int64_t>({2, 2}, {0, 1, 2, -1}), w); },
                              {"embedding", "index -1", "position (1, 1)"});
    check_throws<shape_error>([&] { embedding(tensor<std::int64_t>({1}), zeros<float>({4})); },
                              {"embedding", "{num_embeddings, dim}", "{4}"});
}

BOOST_AUTO_TEST_CASE(large_lookup_split_across_threads) {
    rng gen(42);
    auto w = param(randn<float>({50, 10}, gen));
    const auto idx = uniform<std::int64_t>({4000}, gen, 0, 50);
    const auto y = eval(embedding(idx, w));
    bool same = true;
    for (std::size_t i = 0; i < 4000; ++i)
        for (std::size_t j = 0; j < 10; ++j) same = same && y(i, j) == w.value()(idx(i), j);
    BOOST_TEST(same);
    // every row's gradient counts how often it was picked
    backward(sum(embedding(idx, w)));
    std::vector<float> count(50, 0.f);
    for (std::size_t i = 0; i < 4000; ++i) count[static_cast<std::size_t>(idx(i))] += 1.f;
    for (std::size_t r = 0; r < 50; ++r) BOOST_TEST(w.grad()(r, 3) == count[r]);
}

// --- embedding_bag ---------------------------------------------------------------------------

namespace {
const std::map<std::string, tensor<double>>& bag_reference() {
    static const auto r = xgrad_test::read_reference_file(std::string(XGRAD_TEST_DATA_DIR) + "/embedding_bag_reference.txt");
    return r;
}
template <class T = double>
tensor<T> bag_ref(const std::string& name) {
    return bag_reference().at(name).clone().astype<T>();
}
}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(embedding_bag_matches_pytorch, T, real_types) {
    using xgrad_test::check_close;
    const double rtol = xgrad_test::rtol_for<T>(), atol = xgrad_test::atol_for<T>();
    const auto idx = bag_ref<std::int64_t>("bag.indices");
    const auto off = bag_ref<std::int64_t>("bag.offsets");
    for (const auto& [mode, nm] : {std::pair{bag_mode::sum, "sum"}, std::pair{bag_mode::mean, "mean"}}) {
        const std::string c = std::string("bag_") + nm;
        auto w = param(bag_ref<T>("bag.weight"));
        auto y = embedding_bag(idx, off, w, mode);
        BOOST_TEST(y.shape() == (shape_t{4, 5}));
        check_close(eval(y), bag_ref(c + ".y"), rtol, atol, c + ".y");  // bag 1 is empty: zeros
        backward(y, bag_ref<T>(c + ".g"));
        check_close(w.grad(), bag_ref(c + ".dweight"), rtol, atol, c + ".dweight");
    }
    auto w = param(bag_ref<T>("bag.weight"));
    auto p = param(bag_ref<T>("bag.psw"));
    auto y = embedding_bag(idx, off, w, p);
    check_close(eval(y), bag_ref("bag_weighted.y"), rtol, atol, "bag_weighted.y");
    backward(y, bag_ref<T>("bag_weighted.g"));
    check_close(w.grad(), bag_ref("bag_weighted.dweight"), rtol, atol, "bag_weighted.dweight");
    check_close(p.grad(), bag_ref("bag_weighted.dpsw"), rtol, atol, "bag_weighted.dpsw");

    auto w2 = param(bag_ref<T>("bag.weight"));
    auto y2 = embedding_bag(bag_ref<std::int64_t>("bag_2d.indices"), w2, bag_mode::mean);
    check_close(eval(y2), bag_ref("bag_2d.y"), rtol, atol, "bag_2d.y");
    backward(y2, bag_ref<T>("bag_2d.g"));
    check_close(w2.grad(), bag_ref("bag_2d.dweight"), rtol, atol, "bag_2d.dweight");
}

BOOST_AUTO_TEST_CASE(embedding_bag_gradcheck_random_bags) {
    rng gen(43);
    for (std::size_t trial = 0; trial < 4; ++trial) {
        const std::size_t rows = 3 + gen.below(6), dim = 1 + gen.below(5), n = 1 + gen.below(12), bags = 1 + gen.below(5);
        auto w = param(randn<double>({rows, dim}, gen));
        auto p = param(randn<double>({n}, gen));
        const auto idx = uniform<std::int64_t>({n}, gen, 0, static_cast<std::int64_t>(rows));
        std::vector<std::int64_t> cuts{0};
        for (std::size_t b = 1; b < bags; ++b) cuts.push_back(static_cast<std::int64_t>(gen.below(n + 1)));
        std::sort(cuts.begin(), cuts.end());
        const auto off = from_vector(cuts, {bags});
        const std::string what = "embedding_bag rows " + std::to_string(rows) + " n " + std::to_string(n) + " bags " +
                                 std::to_string(bags);
        for (auto mode : {bag_mode::sum, bag_mode::mean})
            xgrad_test::expect_gradcheck([&] { return tanh(embedding_bag(idx, off, w, mode)); }, {w}, gen, what);
        xgrad_test::expect_gradcheck([&] { return embedding_bag(idx, off, w * 0.5, p * p); }, {w, p}, gen,
                                     what + " weighted");
    }
    auto w = param(randn<double>({6, 3}, gen));
    const auto idx2 = uniform<std::int64_t>({4, 5}, gen, 0, 6);
    xgrad_test::expect_gradcheck([&] { return sum(sigmoid(embedding_bag(idx2, w, bag_mode::mean)), -1); }, {w}, gen,
                                 "embedding_bag 2-D");
}

BOOST_AUTO_TEST_CASE(embedding_bag_bad_arguments) {
    using xgrad_test::check_throws;
    auto w = param(zeros<float>({4, 2}));
    const tensor<std::int64_t> idx({3}, {0, 1, 2});
    check_throws<value_error>([&] { embedding_bag(tensor<std::int64_t>({3}, {0, 4, 1}), tensor<std::int64_t>({1}, {0}), w); },
                              {"embedding_bag", "index 4", "position 1", "4 embeddings"});
    check_throws<value_error>([&] { embedding_bag(idx, tensor<std::int64_t>({2}, {1, 2}), w); }, {"offsets[0] must be 0"});
    check_throws<value_error>([&] { embedding_bag(idx, tensor<std::int64_t>({3}, {0, 2, 1}), w); },
                              {"must not decrease", "offsets[2] = 1"});
    check_throws<value_error>([&] { embedding_bag(idx, tensor<std::int64_t>({2}, {0, 4}), w); },
                              {"offsets[1] = 4", "past the end of the 3 indices"});
    check_throws<shape_error>([&] { embedding_bag(tensor<std::int64_t>({1, 3}), tensor<std::int64_t>({1}), w); },
                              {"indices with offsets must be 1-D"});
    check_throws<shape_error>([&] { embedding_bag(tensor<std::int64_t>({3}), w); }, {"{bags, bag_size}"});
    check_throws<value_error>(
        [&] { embedding_bag(idx, tensor<std::int64_t>({1}, {0}), w, zeros<float>({3}), bag_mode::mean); },
        {"only supported with bag_mode::sum"});
    check_throws<shape_error>([&] { embedding_bag(idx, tensor<std::int64_t>({1}, {0}), w, zeros<float>({2})); },
                              {"per_sample_weights of shape {2}"});
}

BOOST_AUTO_TEST_CASE(nn_embedding_bag_layer) {
    rng gen(5);
    nn::embedding_bag<double> bag(10, 4, bag_mode::mean, gen);
    BOOST_TEST(bag.num_embeddings() == 10u);
    BOOST_TEST(bag.embedding_dim() == 4u);
    const tensor<std::int64_t> idx({5}, {1, 2, 9, 9, 0});
    const tensor<std::int64_t> off({2}, {0, 3});
    const auto y = eval(bag.forward(idx, off));
    // bag 0 = rows 1, 2, 9; bag 1 = mean of rows 9, 0
    const auto& W = bag.weight.value();
    for (std::size_t j = 0; j < 4; ++j) BOOST_TEST(y(1, j) == (W(9, j) + W(0, j)) / 2, boost::test_tools::tolerance(1e-12));
    const auto named = nn::named_parameters(bag);
    BOOST_TEST(named.size() == 1u);
    BOOST_TEST(named[0].first == "weight");
    xgrad_test::check_throws<value_error>([] { nn::embedding_bag<float>(0, 3); }, {"embedding_bag", "must be > 0"});
}
