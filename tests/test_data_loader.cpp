#define BOOST_TEST_MODULE data_loader
#include <boost/test/unit_test.hpp>

#include <xgrad/data/loader.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/data/transforms.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <numeric>
#include <vector>

namespace data = xgrad::data;
using xgrad::shape_t;

namespace {

/// n samples; sample i has input {i, -i} and label i.
data::tensor_dataset<float> numbered(std::size_t n) {
    std::vector<float> x;
    std::vector<std::int64_t> y;
    for (std::size_t i = 0; i < n; ++i) {
        x.push_back(static_cast<float>(i));
        x.push_back(-static_cast<float>(i));
        y.push_back(static_cast<std::int64_t>(i));
    }
    return {xgrad::from_vector(x, {n, 2}), xgrad::from_vector(y, {n})};
}

/// Adds a per-sample random draw to the input, so batches show which generator made them.
auto noisy(std::size_t n) {
    return numbered(n) | data::map([](data::sample<float> s, xgrad::rng& g) {
               auto t = s.input.clone();
               t.data()[1] = static_cast<float>(g.below(1u << 20));
               s.input = t;
               return s;
           });
}

template <class L>
std::vector<std::vector<float>> epoch_inputs(L& loader) {
    std::vector<std::vector<float>> out;
    for (auto& [inputs, labels] : loader) out.push_back(inputs.to_vector());
    return out;
}

template <class L>
std::vector<std::int64_t> epoch_labels(L& loader) {
    std::vector<std::int64_t> out;
    for (auto& b : loader) {
        const auto v = b.labels.to_vector();
        out.insert(out.end(), v.begin(), v.end());
    }
    return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(batches_in_order) {
    data::loader l(numbered(10), {.batch_size = 3});
    BOOST_TEST(l.size() == 4u);
    std::vector<shape_t> shapes;
    std::vector<std::vector<std::int64_t>> labels;
    for (auto& [inputs, y] : l) {
        BOOST_TEST(inputs.is_contiguous());
        shapes.push_back(inputs.shape());
        labels.push_back(y.to_vector());
    }
    BOOST_TEST(shapes == (std::vector<shape_t>{{3, 2}, {3, 2}, {3, 2}, {1, 2}}));
    BOOST_TEST(labels[1] == (std::vector<std::int64_t>{3, 4, 5}));
    BOOST_TEST(labels[3] == (std::vector<std::int64_t>{9}));

    data::loader d(numbered(10), {.batch_size = 3, .drop_last = true, .workers = 2});
    BOOST_TEST(d.size() == 3u);
    const auto x = epoch_inputs(d);
    BOOST_TEST(x.size() == 3u);
    BOOST_TEST(x[2] == (std::vector<float>{6, -6, 7, -7, 8, -8}));
}

BOOST_AUTO_TEST_CASE(shuffle_each_epoch) {
    data::loader l(numbered(50), {.batch_size = 8, .shuffle = true, .seed = 7});
    const auto e0 = epoch_labels(l);
    const auto e1 = epoch_labels(l);
    BOOST_TEST(l.epoch() == 2u);
    auto sorted = e0;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::int64_t> all(50);
    std::iota(all.begin(), all.end(), 0);
    BOOST_TEST(sorted == all);
    BOOST_TEST(e0 != all);
    BOOST_TEST(e0 != e1);
    // the order is a function of (seed, epoch) only
    data::loader again(numbered(50), {.batch_size = 5, .shuffle = true, .workers = 3, .seed = 7});
    BOOST_TEST(epoch_labels(again) == e0);
    again.set_epoch(1);
    BOOST_TEST(epoch_labels(again) == e1);
    const auto order = data::detail::epoch_order(50, true, 7, 0);
    BOOST_TEST(std::equal(order.begin(), order.end(), e0.begin(), e0.end(),
                          [](std::size_t a, std::int64_t b) { return static_cast<std::int64_t>(a) == b; }));
    data::loader other(numbered(50), {.batch_size = 8, .shuffle = true, .seed = 8});
    BOOST_TEST(epoch_labels(other) != e0);
}

BOOST_AUTO_TEST_CASE(same_batches_for_any_worker_count) {
    std::vector<std::vector<std::vector<float>>> runs;
    for (std::size_t workers : {0u, 1u, 2u, 3u, 8u}) {
        for (std::size_t prefetch : {1u, 4u}) {
            data::loader l(noisy(37), {.batch_size = 4, .shuffle = true, .drop_last = false, .workers = workers,
                                       .prefetch = prefetch, .seed = 11});
            auto e0 = epoch_inputs(l);
            const auto e1 = epoch_inputs(l);
            e0.insert(e0.end(), e1.begin(), e1.end());
            runs.push_back(e0);
        }
    }
    BOOST_TEST(runs[0].size() == 20u);
    for (std::size_t r = 1; r < runs.size(); ++r) BOOST_TEST((runs[r] == runs[0]), "run " << r);
    // the random draws differ between epochs
    BOOST_TEST((runs[0][0] != runs[0][10]));
}

BOOST_AUTO_TEST_CASE(break_early_then_continue) {
    data::loader l(noisy(200), {.batch_size = 2, .shuffle = true, .workers = 3, .prefetch = 2, .seed = 3});
    int seen = 0;
    for (auto& [x, y] : l) {
        BOOST_TEST(y.size() == 2u);
        if (++seen == 3) break;  // workers are parked on a full window here
    }
    BOOST_TEST(seen == 3);
    // the next epoch is complete and matches a fresh loader's epoch 1
    const auto e1 = epoch_inputs(l);
    data::loader fresh(noisy(200), {.batch_size = 2, .shuffle = true, .seed = 3});
    fresh.set_epoch(1);
    BOOST_TEST((e1 == epoch_inputs(fresh)));
    // an iterator dropped right after begin()
    for (int k = 0; k < 20; ++k) {
        auto it = l.begin();
        BOOST_TEST(it->labels.size() == 2u);
    }
}

BOOST_AUTO_TEST_CASE(loader_destroyed_mid_epoch) {
    auto l = std::make_unique<data::loader<decltype(noisy(1))>>(
        noisy(30), data::loader_options{.batch_size = 4, .shuffle = true, .workers = 2, .prefetch = 2, .seed = 5});
    auto it = l->begin();
    std::vector<std::vector<float>> got;
    got.push_back(it->inputs.to_vector());
    ++it;
    l.reset();  // the iterator keeps the dataset and its threads
    for (; it != std::default_sentinel; ++it) got.push_back(it->inputs.to_vector());
    data::loader ref(noisy(30), {.batch_size = 4, .shuffle = true, .seed = 5});
    BOOST_TEST((got == epoch_inputs(ref)));

    // both destroyed mid-epoch, loader first
    for (int k = 0; k < 10; ++k) {
        auto l2 = std::make_unique<data::loader<decltype(noisy(1))>>(
            noisy(100), data::loader_options{.batch_size = 1, .workers = 4, .prefetch = 1});
        auto it2 = l2->begin();
        ++it2;
        l2.reset();
    }
}

BOOST_AUTO_TEST_CASE(errors_reach_the_consumer) {
    const auto failing = numbered(20) | data::map([](data::sample<float> s) {
                             if (s.label == 13) throw xgrad::value_error("sample 13 is broken");
                             return s;
                         });
    for (std::size_t workers : {0u, 2u}) {
        data::loader l(failing, {.batch_size = 4, .workers = workers});
        std::size_t batches = 0;
        try {
            for (auto& b : l) {
                (void)b;
                ++batches;
            }
            BOOST_FAIL("no exception");
        } catch (const xgrad::value_error& e) {
            BOOST_TEST(std::string(e.what()) == "sample 13 is broken");
        }
        BOOST_TEST(batches == 3u);  // batches 0..2 arrive, batch 3 holds sample 13
    }
    BOOST_CHECK_THROW(data::loader(numbered(3), {.batch_size = 0}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(ragged_inputs_are_rejected) {
    const auto ragged = numbered(6) | data::map([](data::sample<float> s) {
                            if (s.label == 4) s.input = xgrad::zeros<float>({3});
                            return s;
                        });
    data::loader l(ragged, {.batch_size = 3, .workers = 1});
    BOOST_CHECK_THROW(epoch_inputs(l), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(tensor_labels_stack) {
    data::loader l(numbered(5) | data::one_hot(5), {.batch_size = 2, .workers = 2});
    auto it = l.begin();
    BOOST_TEST(it->labels.shape() == (shape_t{2, 5}));
    BOOST_TEST(it->labels.to_vector() == (std::vector<float>{1, 0, 0, 0, 0, 0, 1, 0, 0, 0}));
}

BOOST_AUTO_TEST_CASE(empty_dataset) {
    data::loader l(numbered(0), {.batch_size = 4, .workers = 2});
    BOOST_TEST(l.size() == 0u);
    BOOST_TEST(epoch_inputs(l).empty());
    data::loader d(numbered(3), {.batch_size = 4, .drop_last = true, .workers = 2});
    BOOST_TEST(epoch_inputs(d).empty());
}
