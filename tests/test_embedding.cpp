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
