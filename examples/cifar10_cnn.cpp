// CIFAR-10 (3x32x32 colour images) with the two small CNNs of fashion_mnist_cnn, trained with
// Adam on flip + crop augmented images.
//
//   cifar10_cnn --data-dir DIR [--net keras|torch] [--epochs N] [--batch-size N] [--lr X] [--steps N]
//   cifar10_cnn --generate DIR [--records N]
//
// DIR holds the binary version's data_batch_1.bin ... data_batch_5.bin and test_batch.bin
// (or their cifar-10-batches-bin folder). --generate writes small files in that exact format
// (random images whose brightest channel is label % 3) so the pipeline can run anywhere;
// --steps N stops each epoch after N batches.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <xgrad/data.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include "example_support.hpp"

namespace nn = xgrad::nn;
namespace data = xgrad::data;

namespace {

struct args {
    std::string net = "keras", data_dir, generate;
    std::size_t epochs = 10, batch_size = 64, steps = 0, records = 200;
    double lr = 1e-3;
};

const char* const usage_text =
    "usage: cifar10_cnn --data-dir DIR [--net keras|torch] [--epochs N] [--batch-size N] [--lr X] [--steps N]\n"
    "       cifar10_cnn --generate DIR [--records N]";

args parse(int argc, char** argv) {
    args a;
    xgrad_example::cli c(argc, argv, usage_text);
    for (std::string k; c.next(k);) {
        if (xgrad_example::training_option(c, k, a)) continue;
        if (k == "--generate") a.generate = c.value();
        else if (k == "--steps") a.steps = c.count();
        else if (k == "--records") a.records = c.count();
        else c.fail("unknown option " + k);
    }
    if (a.net != "keras" && a.net != "torch") c.fail("--net must be keras or torch");
    if (a.generate.empty() && a.data_dir.empty()) c.fail("give --data-dir (or --generate)");
    if (a.batch_size == 0) c.fail("--batch-size must be positive");
    return a;
}

// Records of 1 label byte + 1024 red, 1024 green, 1024 blue bytes, as in the real files.
void generate(const std::filesystem::path& dir, std::size_t records) {
    std::filesystem::create_directories(dir);
    xgrad::rng gen(1);
    for (std::string name : {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"}) {
        std::ofstream out(dir / (name + ".bin"), std::ios::binary);
        for (std::size_t r = 0; r < records; ++r) {
            const auto label = static_cast<unsigned char>(gen.below(10));
            out.put(static_cast<char>(label));
            for (std::size_t c = 0; c < 3; ++c)
                for (std::size_t p = 0; p < 1024; ++p) {
                    const auto base = c == label % 3 ? 128u : 0u;
                    out.put(static_cast<char>(base + gen.below(128)));
                }
        }
        if (!out) throw xgrad::io_error((dir / (name + ".bin")).string() + ": write failed");
    }
    std::printf("wrote %zu records per file to %s\n", records, dir.string().c_str());
}

template <class Model>
int run(Model& model, const args& a) {
    nn::summary(model, {3, 32, 32});
    // per-channel statistics of the CIFAR-10 training set
    const auto normalize = data::to_float() | data::normalize({0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f});
    auto train_set = data::cifar10(a.data_dir, data::split::train) | data::random_horizontal_flip() |
                     data::random_crop(32, 4) | normalize;
    auto test_set = data::cifar10(a.data_dir, data::split::test) | normalize;
    auto train = data::loader(train_set, {.batch_size = a.batch_size, .shuffle = true, .workers = 2, .prefetch = 4, .seed = 0});
    auto test = data::loader(test_set, {.batch_size = 256, .workers = 2, .prefetch = 4});

    auto opt = xgrad::optim::adam(model.parameters(), {.lr = a.lr});
    xgrad::fit(model, opt, nn::cross_entropy(), train,
               {.epochs = a.epochs, .validation = &test, .metrics = {xgrad::metrics::accuracy()},
                .steps_per_epoch = a.steps, .validation_steps = a.steps});
    const auto scores = xgrad::evaluate(model, nn::cross_entropy(), test,
                                        {xgrad::metrics::accuracy(), xgrad::metrics::confusion_matrix(10)},
                                        {.steps = a.steps});
    std::printf("%s", scores.confusion().report().c_str());
    std::printf("test loss %.4f, test accuracy %.4f\n", scores["loss"], scores["accuracy"]);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    try {
        if (!a.generate.empty()) {
            generate(a.generate, a.records);
            return 0;
        }
        nn::manual_seed(0);
        if (a.net == "keras") {
            auto model = nn::sequential(nn::conv2d(3, 32, 3), nn::relu(), nn::max_pool2d(2),   //
                                        nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),  //
                                        nn::flatten(), nn::linear(64 * 6 * 6, 10));
            return run(model, a);
        }
        auto model = nn::sequential(nn::conv2d(3, 6, 5), nn::relu(), nn::max_pool2d(2),      //
                                    nn::conv2d(6, 16, 5), nn::relu(), nn::max_pool2d(2),     //
                                    nn::flatten(), nn::linear(16 * 5 * 5, 120), nn::relu(),  //
                                    nn::linear(120, 84), nn::relu(), nn::linear(84, 10));
        return run(model, a);
    } catch (const xgrad::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
