// xgrad's side of the peer benchmarks (benchmarks/peers/run.sh runs it next to PyTorch and
// TensorFlow, with the same inputs, weights, shapes and timing protocol; see
// benchmarks/peers/common.py). Prints one JSON line per result on stdout.
//
//   bench_peers --data DIR --threads N [--part micro|epoch|steps] [--warmup 3] [--reps 7] [--seed 0]
//               [--steps 10 --out DIR [--shuffle 0|1 | --order FILE.npy]]
//               [--only chain|tiny|mlp|cnn|keras|net]
//
// micro: (1) sum(tanh(x*w+b)*sigmoid(x)) forward + backward (gradients of x, w and the
//            broadcast b) at 2^10, 2^16, 2^20, 2^24; (2) the same on 1 element;
//        (3) MLP 784-256-128-10 training step, SGD momentum 0.9, batch 64 and 256;
//        (4) the Keras-style CNN and the PyTorch-tutorial Net, Adam, batch 64.
// epoch: (5) one epoch of Fashion-MNIST with the Keras-style CNN and Adam (loader + fit),
//        then the test accuracy; (6) the process's peak resident memory. --seed: the
//        loader's shuffle (the data order).
// steps: the first --steps batches of the training set in file order (or, with --shuffle 1, in
//        the loader's order for --seed, written to DIR/order.npy; or in the order of the
//        sample indices in --order FILE.npy) through the
//        Keras-style CNN and Adam, written loop by loop; prints one JSON line per step (loss,
//        each parameter's gradient norm) and saves the parameters after step 1 and the last
//        step to --out DIR, then the test accuracy; benchmarks/peers/step_check.py compares
//        them with PyTorch.
// Timing: `warmup` untimed blocks, then `reps` timed blocks of a fixed number of calls; the
// result is the median over the blocks of the time per call (wall clock).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <xgrad/data.hpp>
#include <xgrad/io/npy.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;
namespace data = xgrad::data;

namespace {

struct config {
    std::string dir, part = "micro", only;  // only: run just the micro workloads of this name
    std::string out;                        // steps: where the parameters go
    std::string order;                      // steps: an .npy of sample indices to train in
    std::size_t threads = 1, warmup = 3, reps = 7, seed = 0, steps = 10;
    bool shuffle = false;  // steps: the loader's shuffled order (--seed) instead of file order
};

config cfg;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // kB on Linux
}

void emit_head(const char* workload, const std::string& size) {
    std::printf("{\"framework\": \"xgrad\", \"mode\": \"xgrad\", \"threads\": %zu, \"version\": \"%d.%d.%d\", "
                "\"workload\": \"%s\", \"size\": \"%s\"",
                cfg.threads, XGRAD_VERSION_MAJOR, XGRAD_VERSION_MINOR, XGRAD_VERSION_PATCH, workload, size.c_str());
}

template <class F>
void timed(const char* workload, const std::string& size, std::size_t iters, F&& fn) {
    double first = 0;
    for (std::size_t w = 0; w < cfg.warmup; ++w) {
        const double t0 = now();
        for (std::size_t i = 0; i < iters; ++i) fn();
        if (w == 0) first = now() - t0;
    }
    std::vector<double> t;
    for (std::size_t r = 0; r < cfg.reps; ++r) {
        const double t0 = now();
        for (std::size_t i = 0; i < iters; ++i) fn();
        t.push_back((now() - t0) / static_cast<double>(iters));
    }
    std::sort(t.begin(), t.end());
    emit_head(workload, size);
    std::printf(", \"median_s\": %.9g, \"min_s\": %.9g, \"first_block_s\": %.9g, \"warmup\": %zu, \"reps\": %zu, "
                "\"iters\": %zu}\n",
                t[t.size() / 2], t.front(), first, cfg.warmup, cfg.reps, iters);
    std::fflush(stdout);
}

std::string path(const std::string& name) { return cfg.dir + "/" + name; }

xgrad::tensor<float> prefix(const xgrad::tensor<float>& src, std::size_t n) {
    auto t = xgrad::zeros<float>({n});
    std::copy(src.data(), src.data() + n, t.data());
    return t;
}

auto keras_cnn() {
    return nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),   //
                          nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),  //
                          nn::flatten(), nn::linear(64 * 5 * 5, 10));
}

auto torch_net() {
    return nn::sequential(nn::conv2d(1, 6, 5), nn::relu(), nn::max_pool2d(2),      //
                          nn::conv2d(6, 16, 5), nn::relu(), nn::max_pool2d(2),     //
                          nn::flatten(), nn::linear(16 * 4 * 4, 120), nn::relu(),  //
                          nn::linear(120, 84), nn::relu(), nn::linear(84, 10));
}

bool wanted(const char* name) { return cfg.only.empty() || cfg.only == name; }

void micro() {
    // (1) and (2): the elementwise chain
    const bool any_chain = wanted("chain") || wanted("tiny");
    const auto cx = any_chain ? xgrad::io::read_npy_as<float>(path("chain_x.npy")) : xgrad::tensor<float>{};
    const auto cw = any_chain ? xgrad::io::read_npy_as<float>(path("chain_w.npy")) : xgrad::tensor<float>{};
    auto chain = [&](const char* workload, std::size_t n, std::size_t iters, const std::string& size) {
        auto x = xgrad::param(prefix(cx, n)), w = xgrad::param(prefix(cw, n));
        auto b = xgrad::param(xgrad::zeros<float>({1}));
        float v = 0;
        timed(workload, size, iters, [&] {
            x.zero_grad();
            w.zero_grad();
            b.zero_grad();
            v += xgrad::backward(xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)));
        });
        if (v != v) std::printf("nan\n");
    };
    const std::pair<int, std::size_t> sizes[] = {{10, 200}, {16, 20}, {20, 2}, {24, 1}};
    if (wanted("chain"))
        for (auto [lg, iters] : sizes) chain("chain", std::size_t{1} << lg, iters, "2^" + std::to_string(lg));
    if (wanted("tiny")) chain("tiny", 1, 1000, "1");

    // (3) MLP training step, SGD momentum
    for (std::size_t batch : {64, 256}) {
        if (!wanted("mlp")) break;
        auto model = nn::sequential(nn::linear(784, 256), nn::relu(), nn::linear(256, 128), nn::relu(),
                                    nn::linear(128, 10));
        xgrad::load(model, path("mlp.safetensors"));
        auto opt = xgrad::optim::sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
        const auto x = xgrad::io::read_npy_as<float>(path("mlp_x_" + std::to_string(batch) + ".npy"));
        const auto y = xgrad::io::read_npy_as<std::int64_t>(path("mlp_y_" + std::to_string(batch) + ".npy"));
        timed("mlp", "batch " + std::to_string(batch), batch == 64 ? 20 : 5, [&] {
            opt.zero_grad();
            xgrad::backward(xgrad::cross_entropy(model(x), y));
            opt.step();
        });
    }

    // (4) the two CNNs, Adam
    const auto x = xgrad::io::read_npy_as<float>(path("cnn_x_64.npy"));
    const auto y = xgrad::io::read_npy_as<std::int64_t>(path("cnn_y_64.npy"));
    auto cnn = [&](auto model, const char* name, std::size_t iters) {
        xgrad::load(model, path(std::string("cnn_") + name + ".safetensors"));
        auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
        timed("cnn", std::string(name) + " batch 64", iters, [&] {
            opt.zero_grad();
            xgrad::backward(xgrad::cross_entropy(model(x), y));
            opt.step();
        });
    };
    if (wanted("cnn") || wanted("keras")) cnn(keras_cnn(), "keras", 2);
    if (wanted("cnn") || wanted("net")) cnn(torch_net(), "torch", 5);
}

// (5) what a user writes: datasets, a loader, Adam, fit for one epoch, evaluate
void epoch() {
    auto model = keras_cnn();
    xgrad::load(model, path("cnn_keras.safetensors"));
    const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
    auto train_set = data::fashion_mnist(data::split::train) | normalize;
    auto test_set = data::fashion_mnist(data::split::test) | normalize;
    auto train = data::loader(train_set, {.batch_size = 64, .shuffle = true, .seed = cfg.seed});
    auto test = data::loader(test_set, {.batch_size = 256});
    auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
    const auto loss = nn::cross_entropy();
    const double t0 = now();
    xgrad::fit(model, opt, loss, train, {.epochs = 1, .progress = false});
    const double train_s = now() - t0;
    auto scores = xgrad::evaluate(model, loss, test, {xgrad::metrics::accuracy()});
    emit_head("epoch", "keras batch 64");
    std::printf(", \"median_s\": %.9g, \"test_accuracy\": %.6f, \"test_loss\": %.6f, \"peak_rss_mb\": %.1f, "
                "\"warmup\": 0, \"reps\": 1, \"iters\": 1}\n",
                train_s, scores["accuracy"], scores["loss"], peak_rss_mb());
}

// a dataset read in a given order (steps --order: PyTorch's shuffle)
template <class D>
struct reordered {
    using sample_type = typename D::sample_type;
    D ds;
    std::vector<std::size_t> order;
    std::size_t size() const { return order.size(); }
    sample_type get(std::size_t i, xgrad::rng& gen) const { return ds.get(order[i], gen); }
};

// the first cfg.steps batches, in order, one explicit Adam step each
void steps() {
    auto model = keras_cnn();
    xgrad::load(model, path("cnn_keras.safetensors"));
    const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
    auto train_set = data::fashion_mnist(data::split::train) | normalize;
    auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
    std::size_t step = 0;
    auto run = [&](auto& train) {
        for (auto& [x, y] : train) {
            if (step == cfg.steps) break;
            opt.zero_grad();
            const float l = xgrad::backward(xgrad::cross_entropy(model(x), y));
            std::printf("{\"step\": %zu, \"loss\": %.9g, \"grad_norm\": {", ++step, static_cast<double>(l));
            const char* sep = "";
            for (auto& [name, p] : nn::named_parameters(model)) {
                double s2 = 0;
                for (std::size_t i = 0; i < p.size(); ++i)
                    s2 += static_cast<double>(p.grad().data()[i]) * p.grad().data()[i];
                std::printf("%s\"%s\": %.9g", sep, name.c_str(), std::sqrt(s2));
                sep = ", ";
            }
            std::printf("}}\n");
            opt.step();
            if (step == 1) xgrad::save(model, cfg.out + "/xgrad_step1.safetensors");
        }
    };
    const auto n = static_cast<std::size_t>(train_set.size());
    if (!cfg.order.empty()) {
        const auto t = xgrad::io::read_npy_as<std::int64_t>(cfg.order);
        std::vector<std::size_t> order(t.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (t.data()[i] < 0 || static_cast<std::size_t>(t.data()[i]) >= n)
                throw xgrad::value_error("--order " + cfg.order + ": element " + std::to_string(i) + " is out of range");
            order[i] = static_cast<std::size_t>(t.data()[i]);
        }
        auto train = data::loader(reordered<decltype(train_set)>{train_set, std::move(order)}, {.batch_size = 64});
        run(train);
    } else {
        auto train = data::loader(train_set, {.batch_size = 64, .shuffle = cfg.shuffle, .seed = cfg.seed});
        if (cfg.shuffle) {  // the first epoch's order, for the same loop in PyTorch
            const auto order = data::detail::epoch_order(n, true, cfg.seed, 0);
            auto t = xgrad::zeros<std::int64_t>({order.size()});
            std::copy(order.begin(), order.end(), t.data());
            xgrad::io::write_npy(cfg.out + "/order.npy", t);
        }
        run(train);
    }
    xgrad::save(model, cfg.out + "/xgrad_last.safetensors");
    auto test = data::loader(data::fashion_mnist(data::split::test) | normalize, {.batch_size = 256});
    auto scores = xgrad::evaluate(model, nn::cross_entropy(), test, {xgrad::metrics::accuracy()});
    std::printf("{\"steps\": %zu, \"test_accuracy\": %.6f, \"test_loss\": %.6f}\n", step, scores["accuracy"],
                scores["loss"]);
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--data") cfg.dir = v;
        else if (k == "--threads") cfg.threads = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--part") cfg.part = v;
        else if (k == "--warmup") cfg.warmup = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--reps") cfg.reps = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--seed") cfg.seed = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--only") cfg.only = v;
        else if (k == "--steps") cfg.steps = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--out") cfg.out = v;
        else if (k == "--shuffle") cfg.shuffle = v == "1";
        else if (k == "--order") cfg.order = v;
        else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (cfg.dir.empty() || cfg.threads == 0 || cfg.reps == 0) {
        std::fprintf(stderr, "usage: bench_peers --data DIR --threads N [--part micro|epoch|steps] [--warmup N] [--reps N] [--seed N] [--steps N --out DIR [--shuffle 1 | --order FILE.npy]] [--only chain|tiny|mlp|cnn|keras|net]\n");
        return 2;
    }
    xgrad::set_num_threads(cfg.threads);
    try {
        if (cfg.part == "epoch") epoch();
        else if (cfg.part == "steps") steps();
        else micro();
    } catch (const xgrad::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
