// Fashion-MNIST trained data-parallel on MPI: every rank holds the whole model, trains on its
// shard of each epoch, and the gradients are averaged across ranks before every step.
//
//   mpirun -np 2 fashion_mnist_ddp [--net keras|torch|mlp] [--epochs N] [--batch-size N] [--lr X]
//                                  [--limit N] [--data-dir DIR] [--save FILE] [--seed N]
//                                  [--timeout S] [--fail-rank R] [--hang-rank R] [--at-step N]
//
// --batch-size is per rank (the global batch is size times larger); --limit N uses the first N
// training and test images. The networks are those of fashion_mnist_cnn (keras, torch) and the
// 784-256-128-10 MLP of the benchmarks. Only rank 0 prints progress and writes --save.
// --fail-rank R makes rank R throw at step --at-step, --hang-rank R makes it stop responding
// there: both must end every rank with an error (the ctest tests distributed_failure_*).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <xgrad/data.hpp>
#include <xgrad/distributed.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include "example_support.hpp"

namespace nn = xgrad::nn;
namespace data = xgrad::data;
namespace dist = xgrad::distributed;

namespace {

struct args {
    std::string net = "keras";
    std::size_t epochs = 3, batch_size = 32, limit = 0, seed = 0, at_step = 2;
    long fail_rank = -1, hang_rank = -1;
    double lr = 1e-3, timeout = 0;
    std::string data_dir, save;
};

const char* const usage_text =
    "usage: mpirun -np N fashion_mnist_ddp [--net keras|torch|mlp] [--epochs N] [--batch-size N]\n"
    "         [--lr X] [--limit N] [--data-dir DIR] [--save FILE] [--seed N] [--timeout S]\n"
    "         [--fail-rank R] [--hang-rank R] [--at-step N]";

args parse(int argc, char** argv) {
    args a;
    xgrad_example::cli c(argc, argv, usage_text);
    for (std::string k; c.next(k);) {
        if (xgrad_example::training_option(c, k, a)) continue;
        if (k == "--at-step") a.at_step = c.count();
        else if (k == "--fail-rank") a.fail_rank = static_cast<long>(c.count());
        else if (k == "--hang-rank") a.hang_rank = static_cast<long>(c.count());
        else if (k == "--timeout") a.timeout = c.real();
        else c.fail("unknown option " + k);
    }
    if (a.net != "keras" && a.net != "torch" && a.net != "mlp") c.fail("--net must be keras, torch or mlp");
    if (a.batch_size == 0) c.fail("--batch-size must be positive");
    return a;
}

using xgrad_example::first;

template <class Model>
int run(Model& model, const args& a, const dist::environment& env) {
    const bool root = env.is_root();
    if (root) {
        nn::summary(model, {1, 28, 28});
        std::fprintf(stderr, "%d ranks, batch %zu per rank (%zu global)\n", env.size(), a.batch_size,
                     a.batch_size * static_cast<std::size_t>(env.size()));
    }
    const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
    auto train_set = first(data::fashion_mnist(data::split::train, a.data_dir), a.limit) | normalize;
    auto test_set = first(data::fashion_mnist(data::split::test, a.data_dir), a.limit) | normalize;
    // every rank its shard of the same per-epoch permutation
    auto train = data::loader(train_set, dist::shard({.batch_size = a.batch_size, .shuffle = true, .workers = 1,
                                                      .prefetch = 4, .seed = a.seed}));
    auto test = data::loader(test_set, dist::shard({.batch_size = 256}));

    dist::distributed_optimizer opt(xgrad::optim::adam(model.parameters(), {.lr = a.lr}));
    opt.broadcast_parameters();  // rank 0's initial values everywhere
    const auto loss = nn::cross_entropy();

    double first_loss = -1;
    std::vector<double> epoch_seconds;
    std::chrono::steady_clock::time_point t0;
    auto probe = xgrad::callbacks::lambda({
        .on_epoch_begin = [&](xgrad::train_context&) { t0 = std::chrono::steady_clock::now(); },
        .on_batch_end =
            [&](xgrad::train_context& c, std::size_t b, const xgrad::logs& l) {
                if (first_loss < 0) first_loss = l.at("loss");
                if (c.global_step == a.at_step && static_cast<long>(env.rank()) == a.fail_rank)
                    throw std::runtime_error("injected failure at step " + std::to_string(a.at_step));
                if (c.global_step == a.at_step && static_cast<long>(env.rank()) == a.hang_rank) {
                    std::fprintf(stderr, "rank %d stops responding at step %zu\n", env.rank(), a.at_step);
                    std::this_thread::sleep_for(std::chrono::minutes(10));
                }
                if (b + 1 == c.batches_per_epoch)
                    epoch_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            },
    });
    // metric_average first: the callbacks after it see the means over all ranks
    std::vector<xgrad::callback_ptr> callbacks{dist::metric_average(), probe};
    if (!a.save.empty())
        callbacks.push_back(dist::root_only(xgrad::callbacks::model_checkpoint(a.save, {.monitor = "val_accuracy"})));

    auto history = xgrad::fit(model, opt, loss, train,
                              {.epochs = a.epochs, .validation = &test, .metrics = {xgrad::metrics::accuracy()},
                               .callbacks = callbacks, .progress = root});

    auto scores = xgrad::evaluate(model, loss, test, {xgrad::metrics::accuracy()});
    const double test_loss = dist::allreduce_mean(scores["loss"]);
    const double test_accuracy = dist::allreduce_mean(scores["accuracy"]);
    const double mean_first_loss = dist::allreduce_mean(first_loss);
    double total = 0;
    for (double s : epoch_seconds) total += s;
    const double per_epoch = epoch_seconds.empty() ? 0 : total / static_cast<double>(epoch_seconds.size());
    if (root) {
        const double samples = static_cast<double>(train.size() * a.batch_size) * env.size();
        std::printf("net %s on %d ranks: %zu epochs, %.2f s per epoch (training), about %.0f samples/s\n",
                    a.net.c_str(), env.size(), history.size(), per_epoch, per_epoch > 0 ? samples / per_epoch : 0.0);
        const double last_loss = history["loss"].back();
        std::printf("training loss %.4f after the first batch, %.4f over the last epoch: %s\n", mean_first_loss,
                    last_loss, last_loss < mean_first_loss ? "decreased" : "did not decrease");
        std::printf("test loss %.4f, test accuracy %.4f\n", test_loss, test_accuracy);
        if (!a.save.empty()) std::printf("best model (by val_accuracy) saved to %s by rank 0\n", a.save.c_str());
    }
    return 0;
}

int train(const args& a, const dist::environment& env) {
    nn::manual_seed(a.seed);
    if (a.net == "keras") {
        auto model = xgrad_example::keras_cnn();
        return run(model, a, env);
    }
    if (a.net == "torch") {
        auto model = xgrad_example::torch_net();
        return run(model, a, env);
    }
    auto model = nn::sequential(nn::flatten(), nn::linear(784, 256), nn::relu(), nn::linear(256, 128), nn::relu(),
                                nn::linear(128, 10));
    return run(model, a, env);
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    // an exception on any rank (a bad data directory, the injected failure, a collective that
    // timed out) is printed with its rank and ends every rank
    return dist::run(argc, argv, [&](dist::environment& env) { return train(a, env); }, {.timeout_s = a.timeout});
}
