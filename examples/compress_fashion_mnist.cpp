// Compressing the Fashion-MNIST CNN: int8 quantization and pruning, with the test accuracy
// before and after each.
//
//   compress_fashion_mnist [--mode both|quant|prune] [--epochs N] [--finetune N] [--sparsity X]
//                          [--calib-batches N] [--limit N] [--data-dir DIR] [--load FILE] [--save FILE]
//                          [--out-dir DIR] [--seed N]
//
// The model is the Keras-style CNN of fashion_mnist_cnn (conv 32 3x3, relu, pool, conv 64 3x3,
// relu, pool, flatten, dense 10), trained here for --epochs epochs with Adam (or loaded with
// --load FILE, a checkpoint of that model; --save FILE keeps the trained float model).
//   quant: static int8 quantization (convs calibrated on --calib-batches batches of 64 training
//          images, the dense layer quantized dynamically); accuracy, inference time and file size
//          of the float and the int8 model (saved in --out-dir, default the temp directory).
//   prune: the 80 % (--sparsity) smallest weights of the three layers together removed
//          (global_unstructured), accuracy before and after --finetune epochs of fine-tuning,
//          the sparsity report.
// Defaults keep the run short (1 training epoch, 1 fine-tuning epoch: about 2-3 minutes on 2 cores).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <xgrad/data.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/nn/prune.hpp>
#include <xgrad/nn/quantized.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include "example_support.hpp"

namespace nn = xgrad::nn;
namespace data = xgrad::data;
namespace fs = std::filesystem;

namespace {

struct args {
    std::string mode = "both", data_dir, load, save, out_dir = fs::temp_directory_path().string();
    std::size_t epochs = 1, finetune = 1, calib_batches = 8, limit = 0, seed = 0;
    double sparsity = 0.8;
};

const char* const usage_text =
    "usage: compress_fashion_mnist [--mode both|quant|prune] [--epochs N] [--finetune N]\n"
    "         [--sparsity X] [--calib-batches N] [--limit N] [--data-dir DIR] [--load FILE]\n"
    "         [--save FILE] [--out-dir DIR] [--seed N]";

args parse(int argc, char** argv) {
    args a;
    xgrad_example::cli c(argc, argv, usage_text);
    for (std::string k; c.next(k);) {
        if (xgrad_example::training_option(c, k, a)) continue;
        if (k == "--mode") a.mode = c.value();
        else if (k == "--finetune") a.finetune = c.count();
        else if (k == "--calib-batches") a.calib_batches = c.count();
        else if (k == "--sparsity") a.sparsity = c.real();
        else if (k == "--load") a.load = c.value();
        else if (k == "--out-dir") a.out_dir = c.value();
        else c.fail("unknown option " + k);
    }
    if (a.mode != "both" && a.mode != "quant" && a.mode != "prune") c.fail("--mode must be both, quant or prune");
    return a;
}

using xgrad_example::first;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    nn::manual_seed(a.seed);
    try {
        const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
        auto train_set = first(data::fashion_mnist(data::split::train, a.data_dir), a.limit) | normalize;
        auto test_set = first(data::fashion_mnist(data::split::test, a.data_dir), a.limit) | normalize;
        auto train = data::loader(train_set, {.batch_size = 64, .shuffle = true, .seed = a.seed});
        auto test = data::loader(test_set, {.batch_size = 256});

        auto model = xgrad_example::keras_cnn();
        const auto loss = nn::cross_entropy();
        auto accuracy = [&](auto& m) { return xgrad::evaluate(m, test, {xgrad::metrics::accuracy()})["accuracy"]; };
        if (!a.load.empty()) {
            xgrad::load(model, a.load);
        } else {
            auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
            xgrad::fit(model, opt, loss, train, {.epochs = a.epochs});
        }
        if (!a.save.empty()) xgrad::save(model, a.save);
        nn::eval(model);
        auto t0 = std::chrono::steady_clock::now();
        const double acc_float = accuracy(model);
        const double float_seconds = seconds_since(t0);
        std::printf("float model: test accuracy %.4f (%zu test images, inference %.2f s)\n", acc_float,
                    test_set.size(), float_seconds);

        if (a.mode != "prune") {
            auto q = xgrad::quant::prepare_static(model);
            std::size_t b = 0;
            for (auto& [images, labels] : train) {  // calibration: the convs observe their inputs
                if (b++ == a.calib_batches) break;
                (void)q(images);
            }
            xgrad::quant::convert(q);
            t0 = std::chrono::steady_clock::now();
            const double acc_int8 = accuracy(q);
            const double int8_seconds = seconds_since(t0);
            const fs::path f32 = fs::path(a.out_dir) / "fashion_mnist_cnn_f32.safetensors";
            const fs::path i8 = fs::path(a.out_dir) / "fashion_mnist_cnn_int8.safetensors";
            xgrad::save(model, f32);
            xgrad::quant::save(q, i8);
            const auto s32 = fs::file_size(f32), s8 = fs::file_size(i8);
            std::printf("int8 model (static, %zu calibration batches): test accuracy %.4f (inference %.2f s, %.2fx)\n",
                        a.calib_batches, acc_int8, int8_seconds, float_seconds / int8_seconds);
            std::printf("accuracy drop %.2f points; file %ju bytes (float) vs %ju bytes (int8): %.2fx smaller\n",
                        100 * (acc_float - acc_int8), static_cast<std::uintmax_t>(s32), static_cast<std::uintmax_t>(s8),
                        static_cast<double>(s32) / static_cast<double>(s8));
        }

        if (a.mode != "quant") {
            xgrad::prune::global_unstructured({xgrad::prune::target(model.get<0>(), "weight"),
                                               xgrad::prune::target(model.get<3>(), "weight"),
                                               xgrad::prune::target(model.get<7>(), "weight")},
                                              a.sparsity);
            const double acc_pruned = accuracy(model);
            std::printf("pruned to %.0f %% of the weights zero: test accuracy %.4f before fine-tuning\n",
                        100 * a.sparsity, acc_pruned);
            auto opt = xgrad::optim::adam(model.parameters(), {.lr = 5e-4});
            xgrad::fit(model, opt, loss, train, {.epochs = a.finetune});
            nn::eval(model);
            const double acc_tuned = accuracy(model);
            std::printf("%s", xgrad::prune::sparsity_report(model).c_str());
            std::printf("after %zu fine-tuning epoch(s): test accuracy %.4f (float %.4f, %+.2f points)\n", a.finetune,
                        acc_tuned, acc_float, 100 * (acc_tuned - acc_float));
            xgrad::prune::remove(model.get<0>(), "weight");
            xgrad::prune::remove(model.get<3>(), "weight");
            xgrad::prune::remove(model.get<7>(), "weight");
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
