// xgrad::distributed on 2 MPI ranks (ctest runs it under mpirun -np 2): parameters stay
// bit-identical across ranks and equal a single-process run on the global batch, the sharded
// loader splits every epoch into disjoint covering shards, metrics are averaged, root_only
// callbacks run on rank 0 only. The failure paths (a rank that throws or hangs) are the
// distributed_failure_* tests, which run examples/fashion_mnist_ddp.
#define BOOST_TEST_MODULE distributed
#include <boost/test/unit_test.hpp>

#include <xgrad/data/loader.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/distributed.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/ops/loss.hpp>
#include <xgrad/ops/matmul.hpp>
#include <xgrad/optim/adam.hpp>
#include <xgrad/optim/sgd.hpp>
#include <xgrad/train.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "distributed_check.hpp"

namespace nn = xgrad::nn;
namespace dist = xgrad::distributed;
using xgrad::tensor;
using mlp = distributed_check::mlp<>;
using distributed_check::flat;
using distributed_check::gather;
using distributed_check::identical_on_all_ranks;

namespace {

struct mpi_fixture {
    dist::environment env{dist::environment_options{.timeout_s = 60}};
};

/// A global batch of n samples: 5 features, 3 classes.
std::pair<tensor<float>, tensor<std::int64_t>> global_batch(std::size_t n) {
    xgrad::rng g(77);
    auto x = xgrad::randn<float>({n, 5}, g);
    auto y = tensor<std::int64_t>::uninitialized({n});
    for (std::size_t i = 0; i < n; ++i) y(i) = static_cast<std::int64_t>(g.below(3));
    return {x, y};
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(mpi_fixture);

BOOST_AUTO_TEST_CASE(runs_on_two_ranks) {
    BOOST_TEST_REQUIRE(dist::size() == 2);
    BOOST_TEST(dist::allreduce_mean(static_cast<double>(dist::rank())) == 0.5);
}

BOOST_AUTO_TEST_CASE(broadcast_gives_every_rank_rank0s_parameters) {
    mlp model(100 + static_cast<std::uint64_t>(dist::rank()));  // different on each rank
    mlp rank0(100);
    BOOST_TEST(!identical_on_all_ranks(flat(model)));
    dist::gradient_reducer<float> red(model.parameters(), {.bucket_bytes = 200});
    BOOST_TEST(red.num_buckets() > 1u);
    red.broadcast_parameters(0);
    BOOST_TEST(identical_on_all_ranks(flat(model)));
    BOOST_TEST(flat(model) == flat(rank0), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ddp_steps_equal_a_single_process_run_on_the_global_batch) {
    const std::size_t global = 12, local = global / 2;
    auto [x, y] = global_batch(global);
    const auto r = static_cast<std::ptrdiff_t>(dist::rank());
    const tensor<float> xs = x.slice(0, r * local, (r + 1) * local).contiguous();
    const tensor<std::int64_t> ys = y.slice(0, r * local, (r + 1) * local).contiguous();

    // many buckets, one bucket, many buckets reduced with blocking MPI_Allreduce
    for (const dist::reducer_options& ro : {dist::reducer_options{.bucket_bytes = 64},
                                           dist::reducer_options{},
                                           dist::reducer_options{.bucket_bytes = 64, .non_blocking = false}}) {
        distributed_check::check_ddp_matches_single(x, y, xs, ys, ro);
    }
}

BOOST_AUTO_TEST_CASE(a_gradient_missing_on_some_ranks_is_averaged_with_zeros) {
    auto a = xgrad::param(xgrad::ones<float>({4}), "a");
    auto b = xgrad::param(xgrad::ones<float>({3}), "b");
    auto c = xgrad::param(xgrad::ones<float>({2}), "c");
    dist::gradient_reducer<float> red({a, b, c}, {.bucket_bytes = 8});
    if (dist::rank() == 0) xgrad::backward(xgrad::sum(a * 3.f));  // only rank 0 reaches a
    xgrad::backward(xgrad::sum(b * static_cast<float>(dist::rank() + 1)));
    red.reduce();
    BOOST_TEST(a.grad().to_vector() == std::vector<float>(4, 1.5f), boost::test_tools::per_element());
    BOOST_TEST(b.grad().to_vector() == std::vector<float>(3, 1.5f), boost::test_tools::per_element());
    BOOST_TEST(c.state().grad_zero);  // nobody: an optimizer skips it on every rank
    BOOST_CHECK_THROW(red.finish(), xgrad::value_error);
}

// Overlap: a bucket's allreduce starts inside backward() as soon as its gradients are final,
// before backward reaches the first layer; the result is bit-identical to reducing after
// backward, also when the gradients change after their bucket started (a second backward,
// a scaled gradient), which finish() finds and reduces again.
BOOST_AUTO_TEST_CASE(buckets_start_during_backward_and_equal_reducing_after_it) {
    auto [x, y] = global_batch(8);
    const auto r = static_cast<std::ptrdiff_t>(dist::rank());
    const tensor<float> xs = x.slice(0, r * 4, (r + 1) * 4).contiguous();
    const tensor<std::int64_t> ys = y.slice(0, r * 4, (r + 1) * 4).contiguous();
    std::vector<std::string> events;
    mlp over(5), after(5);
    // buckets of 64 bytes: [b2] [w2] [b1] [w1] (reverse parameter order)
    dist::gradient_reducer<float> red(over.parameters(),
                                      {.bucket_bytes = 64, .on_bucket_start = [&](std::size_t k, bool in_backward) {
                                           events.push_back("start " + std::to_string(k) + (in_backward ? " in backward" : ""));
                                       }});
    dist::gradient_reducer<float> plain(after.parameters(), {.bucket_bytes = 64, .overlap = false});
    BOOST_TEST_REQUIRE(red.num_buckets() == 4u);
    BOOST_TEST(red.bucket_parameters(3)[0].same(over.w1));
    auto first_layer = xgrad::on_gradient_ready(std::vector{over.w1}, [&](std::size_t) { events.push_back("w1 ready"); });
    auto grads = [](mlp& m) {
        std::vector<float> v;
        for (auto& p : m.parameters())
            for (float f : p.grad().to_vector()) v.push_back(f);
        return v;
    };
    for (int variant = 0; variant < 3; ++variant) {
        events.clear();
        for (mlp* m : {&over, &after}) {
            for (auto& p : m->parameters()) p.zero_grad();
            xgrad::backward(xgrad::cross_entropy((*m)(xs), ys));
        }
        if (variant == 0) {  // the last layer's buckets started before the first layer's gradient was done
            const auto at = [&](const char* e) { return std::find(events.begin(), events.end(), e) - events.begin(); };
            BOOST_TEST(events.size() == 5u);
            BOOST_TEST(at("start 0 in backward") < at("w1 ready"));
            BOOST_TEST(at("start 1 in backward") < at("w1 ready"));
            BOOST_TEST(at("start 2 in backward") < 5);
            BOOST_TEST(at("start 3 in backward") < 5);
        }
        if (variant == 1)  // a second backward before the step: every bucket changes
            for (mlp* m : {&over, &after}) xgrad::backward(xgrad::cross_entropy((*m)(xs), ys) * 0.5f);
        if (variant == 2 && dist::rank() == 1)  // one rank scales one gradient: bucket 1 (w2) changes
            for (mlp* m : {&over, &after}) {
                tensor<float>& g = m->w2.state().grad_for_accumulate();
                for (std::size_t i = 0; i < g.size(); ++i) g.data()[i] *= 2.f;
            }
        red.reduce();
        plain.reduce();
        const auto a = grads(over), b = grads(after);
        BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0, "variant " << variant);
        BOOST_TEST(identical_on_all_ranks(a));
        if (variant == 2) {  // bucket 1 reduced again after finish() found it changed, on both ranks
            BOOST_TEST(std::count(events.begin(), events.end(), std::string("start 1")) == 1);
            BOOST_TEST(std::count(events.begin(), events.end(), std::string("start 0")) == 0);
        }
    }
}

BOOST_AUTO_TEST_CASE(sharded_loader_gives_disjoint_covering_shards_of_one_permutation) {
    for (std::size_t n : {std::size_t{20}, std::size_t{23}}) {
        auto idx = tensor<std::int64_t>::uninitialized({n});
        for (std::size_t i = 0; i < n; ++i) idx(i) = static_cast<std::int64_t>(i);
        xgrad::data::tensor_dataset<float> ds(xgrad::zeros<float>({n, 1}), idx);
        auto loader = xgrad::data::loader(ds, dist::shard({.batch_size = 4, .shuffle = true, .seed = 9}));
        const std::size_t len = (n + 1) / 2;
        BOOST_TEST(loader.size() == (len + 3) / 4);
        for (int epoch = 0; epoch < 2; ++epoch) {
            std::vector<std::int64_t> mine;
            for (auto& [xb, yb] : loader)
                for (auto v : yb.to_vector()) mine.push_back(v);
            BOOST_TEST_REQUIRE(mine.size() == len);
            const auto all = gather(mine);
            // rank r holds elements r, r + 2, ... of one permutation (padded by its start)
            std::vector<std::int64_t> order(2 * len);
            for (std::size_t k = 0; k < len; ++k) {
                order[2 * k] = all[k];
                order[2 * k + 1] = all[len + k];
            }
            std::vector<std::int64_t> first(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n));
            std::vector<std::int64_t> sorted = first;
            std::sort(sorted.begin(), sorted.end());
            for (std::size_t i = 0; i < n; ++i) BOOST_TEST(sorted[i] == static_cast<std::int64_t>(i));
            for (std::size_t i = n; i < 2 * len; ++i) BOOST_TEST(order[i] == order[i - n]);  // the padding
            // that permutation is the unsharded loader's for the same seed and epoch
            auto whole = xgrad::data::loader(ds, {.batch_size = 64, .shuffle = true, .seed = 9});
            whole.set_epoch(static_cast<std::uint64_t>(epoch));
            BOOST_TEST((*whole.begin()).labels.to_vector() == first, boost::test_tools::per_element());
            BOOST_TEST(!std::is_sorted(first.begin(), first.end()));  // shuffled, not the identity
        }
    }
    xgrad::data::tensor_dataset<float> ds(xgrad::zeros<float>({3, 1}), tensor<std::int64_t>::uninitialized({3}));
    BOOST_CHECK_THROW(xgrad::data::loader(ds, {.num_shards = 2, .shard = 2}), xgrad::value_error);
    BOOST_CHECK_THROW(xgrad::data::loader(ds, {.num_shards = 0}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(fit_with_sharded_data_keeps_ranks_identical_and_averages_metrics) {
    const std::size_t n = 48;
    auto [x, y] = global_batch(n);
    mlp model(11 + static_cast<std::uint64_t>(dist::rank()));
    dist::distributed_optimizer opt(xgrad::optim::sgd<float>(model.parameters(), {.lr = 0.1, .momentum = 0.9}));
    opt.broadcast_parameters();
    auto train = xgrad::data::loader(xgrad::data::tensor_dataset<float>(x, y),
                                     dist::shard({.batch_size = 6, .shuffle = true, .seed = 3}));
    int root_calls = 0;
    auto counter = xgrad::callbacks::lambda({.on_epoch_end = [&](xgrad::train_context&, xgrad::logs&) { ++root_calls; }});
    std::ostringstream quiet;
    auto loss = [](auto&& out, const tensor<std::int64_t>& t) { return xgrad::cross_entropy(out, t); };
    auto h = xgrad::fit(model, opt, loss, train,
                        {.epochs = 3,
                         .metrics = {xgrad::metrics::accuracy()},
                         .callbacks = {dist::metric_average(), dist::root_only(counter)},
                         .progress_style = {.out = &quiet, .interactive = false}});
    BOOST_TEST(identical_on_all_ranks(flat(model)));
    std::vector<float> logged;
    for (double v : h["loss"]) logged.push_back(static_cast<float>(v));
    for (double v : h["accuracy"]) logged.push_back(static_cast<float>(v));
    BOOST_TEST(identical_on_all_ranks(logged));  // averaged: the same history everywhere
    BOOST_TEST(h["loss"].back() < h["loss"].front());
    BOOST_TEST(root_calls == (dist::rank() == 0 ? 3 : 0));
    BOOST_TEST(opt.lr(0) == 0.1);
    BOOST_TEST(opt.state_dict().scalars.size() > 0u);
}
