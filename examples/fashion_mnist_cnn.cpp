// Fashion-MNIST with a small CNN, trained with Adam: load, build, fit, evaluate, save.
//
//   fashion_mnist_cnn [--net keras|torch] [--epochs N] [--batch-size N] [--lr X] [--limit N]
//                     [--data-dir DIR] [--save FILE] [--workers N] [--seed N] [--device D]
//
// --device cpu (the default) or, when built with the Thrust backend (CMake links xgrad::thrust_omp
// when it exists), thrust_omp: the same source trains on either by changing one type. The .cu
// twin (fashion_mnist_cnn_cuda, built by nvcc) includes this file and trains on CUDA.
//
// --net keras: conv 32 3x3, relu, maxpool 2, conv 64 3x3, relu, maxpool 2, flatten, dense 10
//              (the Keras convnet example adapted to 1x28x28)
// --net torch: conv 6 5x5, relu, pool, conv 16 5x5, relu, pool, fc 120, fc 84, fc 10
//              (the PyTorch tutorial's Net adapted to 1x28x28)
// The data are Debian's dataset-fashion-mnist files (or --data-dir / XGRAD_DATA_DIR). Early
// stopping on the validation loss keeps the best epoch's weights. The run ends with the test
// accuracy, per-class scores and the confusion matrix; --limit N uses only
// the first N training and N test images (quick checks).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <xgrad/data.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include "example_support.hpp"
#if defined(THRUST_DEVICE_SYSTEM) || defined(__CUDACC__)
#include <xgrad/device.hpp>
#endif

// The twin fashion_mnist_cnn.cu defines it: the only device that build trains on.
#if defined(XGRAD_EXAMPLE_CUDA)
#define XGRAD_EXAMPLE_DEFAULT_DEVICE "cuda"
#else
#define XGRAD_EXAMPLE_DEFAULT_DEVICE "cpu"
#endif

namespace nn = xgrad::nn;
namespace data = xgrad::data;

namespace {

struct args {
    std::string net = "keras";
    std::size_t epochs = 10, batch_size = 64, limit = 0, workers = 1, seed = 0;
    double lr = 1e-3;
    std::string data_dir, save;
    std::string device = XGRAD_EXAMPLE_DEFAULT_DEVICE;
};

const char* const usage_text =
    "usage: fashion_mnist_cnn [--net keras|torch] [--epochs N] [--batch-size N] [--lr X]\n"
    "                         [--limit N] [--data-dir DIR] [--save FILE] [--workers N] [--seed N]\n"
    "                         [--device cpu|thrust_omp|cuda]";

args parse(int argc, char** argv) {
    args a;
    xgrad_example::cli c(argc, argv, usage_text);
    for (std::string k; c.next(k);) {
        if (xgrad_example::training_option(c, k, a)) continue;
        if (k == "--workers") a.workers = c.count();
        else if (k == "--device") a.device = c.value();
        else c.fail("unknown option " + k);
    }
    if (a.net != "keras" && a.net != "torch") c.fail("--net must be keras or torch");
    if (a.batch_size == 0) c.fail("--batch-size must be positive");
    return a;
}

[[noreturn]] void usage(const char* why) {
    std::fprintf(stderr, "error: %s\n%s\n", why, usage_text);
    std::exit(2);
}

const std::vector<std::string> class_names{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                           "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

using xgrad_example::first;

template <class Model>
int run(Model& model, const args& a) {
    nn::summary(model, {1, 28, 28});
    std::fprintf(stderr, "training on %s\n", a.device.c_str());

    // Fashion-MNIST's training-set mean and standard deviation
    const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
    auto train_set = first(data::fashion_mnist(data::split::train, a.data_dir), a.limit) | normalize;
    auto test_set = first(data::fashion_mnist(data::split::test, a.data_dir), a.limit) | normalize;
    auto train = data::loader(train_set, {.batch_size = a.batch_size, .shuffle = true, .workers = a.workers,
                                          .prefetch = 4, .seed = a.seed});
    auto test = data::loader(test_set, {.batch_size = 256, .workers = a.workers, .prefetch = 4});
    std::fprintf(stderr, "%zu training and %zu test images, batch size %zu, %zu batches per epoch\n",
                 train_set.size(), test_set.size(), a.batch_size, train.size());

    auto opt = xgrad::optim::adam(model.parameters(), {.lr = a.lr});
    const auto loss = xgrad::nn::cross_entropy();

    // time the training part of each epoch (validation excluded) for the summary
    // (and remember the first batch's loss)
    std::vector<double> epoch_seconds;
    double first_loss = -1;
    std::chrono::steady_clock::time_point t0;
    auto timer = xgrad::callbacks::lambda({
        .on_epoch_begin = [&](xgrad::train_context&) { t0 = std::chrono::steady_clock::now(); },
        .on_batch_end =
            [&](xgrad::train_context& c, std::size_t b, const xgrad::logs& l) {
                if (first_loss < 0) first_loss = l.at("loss");
                if (b + 1 == c.batches_per_epoch)
                    epoch_seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            },
    });
    // keep the weights of the epoch with the lowest validation loss (Adam starts to overfit
    // this small network after about 7 epochs)
    std::vector<xgrad::callback_ptr> callbacks{
        timer, xgrad::callbacks::early_stopping({.monitor = "val_loss", .patience = 3, .restore_best = true})};
    if (!a.save.empty()) callbacks.push_back(xgrad::callbacks::model_checkpoint(a.save, {.monitor = "val_accuracy"}));

    auto history = xgrad::fit(model, opt, loss, train,
                              {.epochs = a.epochs, .validation = &test, .metrics = {xgrad::metrics::accuracy()},
                               .callbacks = callbacks});

    auto scores = xgrad::evaluate(model, loss, test,
                                  {xgrad::metrics::accuracy(), xgrad::metrics::confusion_matrix(10, class_names)});
    const auto& cm = scores.confusion();
    std::printf("\n%s\n%s\n", cm.classification_report().c_str(), cm.report().c_str());

    double total = 0;
    for (double s : epoch_seconds) total += s;
    const double per_epoch = epoch_seconds.empty() ? 0 : total / static_cast<double>(epoch_seconds.size());
    std::printf("net %s: %zu epochs, %.1f s per epoch (training), %.0f samples/s\n", a.net.c_str(),
                history.size(), per_epoch, per_epoch > 0 ? static_cast<double>(train_set.size()) / per_epoch : 0.0);
    const double last_loss = history["loss"].back();
    std::printf("training loss %.4f after the first batch, %.4f over the last epoch: %s\n", first_loss, last_loss,
                last_loss < first_loss ? "decreased" : "did not decrease");
    std::printf("test loss %.4f, test accuracy %.4f\n", scores["loss"], scores["accuracy"]);
    if (!a.save.empty()) std::printf("best model (by val_accuracy) saved to %s\n", a.save.c_str());
    return 0;
}

}  // namespace

/// The model built on the CPU (where the initial values are drawn), trained on Device: the only
/// line that differs between devices is the to<Device>.
template <class Device, class Model>
int run_on(Model& model, const args& a) {
    auto on_device = xgrad::to<Device>(model);
    return run(on_device, a);
}

template <class Device>
int train(const args& a) {
    if (a.net == "keras") {
        auto model = xgrad_example::keras_cnn();
        return run_on<Device>(model, a);
    }
    auto model = xgrad_example::torch_net();
    return run_on<Device>(model, a);
}

int main(int argc, char** argv) {
    const args a = parse(argc, argv);
    nn::manual_seed(a.seed);
    try {
#if defined(XGRAD_EXAMPLE_CUDA)
        if (a.device == "cuda") return train<xgrad::device::cuda>(a);
        usage("this build trains on --device cuda only");
#else
        if (a.device == "cpu") return train<xgrad::device::cpu>(a);
#if defined(THRUST_DEVICE_SYSTEM)
        if (a.device == "thrust_omp") return train<xgrad::device::thrust_omp>(a);
        usage("--device must be cpu or thrust_omp");
#else
        usage("--device must be cpu (this build has no Thrust backend)");
#endif
#endif
    } catch (const xgrad::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
