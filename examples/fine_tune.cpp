// Fine-tuning: pretrain a CNN on five Fashion-MNIST classes, save it, load its weights into a
// model with a different head (strict = false reports what did not fit), freeze the backbone,
// train only the new head with its own learning rate, then unfreeze the backbone and train it
// too with a smaller rate in a second parameter group.
//
//   fine_tune [--epochs N] [--limit N] [--data-dir DIR] [--dir DIR]
//
// Pretraining uses T-shirt/top, Trouser, Pullover, Dress, Coat (classes 0-4); fine-tuning
// Sandal, Shirt, Sneaker, Bag, Ankle boot (5-9, relabelled 0-4). --limit N keeps N images of
// each split (quick runs); --dir is where the checkpoints go (default: the working directory).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <xgrad/data.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;
namespace data = xgrad::data;

namespace {

/// The images of classes [first, first + 5), labels shifted to 0..4, at most `limit` (0: all).
data::tensor_dataset<std::uint8_t> five_classes(const data::tensor_dataset<std::uint8_t>& d, std::int64_t first,
                                                std::size_t limit) {
    std::vector<std::size_t> keep;
    for (std::size_t i = 0; i < d.size() && (limit == 0 || keep.size() < limit); ++i) {
        const auto y = d.labels()(i);
        if (y >= first && y < first + 5) keep.push_back(i);
    }
    const std::size_t pixels = 28 * 28;
    auto x = xgrad::tensor<std::uint8_t>::uninitialized({keep.size(), 1, 28, 28});
    auto y = xgrad::tensor<std::int64_t>::uninitialized({keep.size()});
    const auto src = d.inputs().contiguous();
    for (std::size_t k = 0; k < keep.size(); ++k) {
        std::copy_n(src.data() + keep[k] * pixels, pixels, x.data() + k * pixels);
        y(k) = d.labels()(keep[k]) - first;
    }
    return {x, y};
}

// The shared backbone: two conv blocks and a flatten (1600 features).
auto backbone() {
    return nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),  //
                          nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2), nn::flatten());
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t epochs = 2, limit = 0;
    std::string data_dir, dir = ".";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--epochs") epochs = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--limit") limit = std::strtoul(v.c_str(), nullptr, 10);
        else if (k == "--data-dir") data_dir = v;
        else if (k == "--dir") dir = v;
        else {
            std::fprintf(stderr, "usage: fine_tune [--epochs N] [--limit N] [--data-dir DIR] [--dir DIR]\n");
            return 2;
        }
    }
    if (argc % 2 == 0) {
        std::fprintf(stderr, "usage: fine_tune [--epochs N] [--limit N] [--data-dir DIR] [--dir DIR]\n");
        return 2;
    }
    try {
        nn::manual_seed(0);
        const auto normalize = data::to_float() | data::normalize({0.2860f}, {0.3530f});
        const auto train_all = data::fashion_mnist(data::split::train, data_dir);
        const auto test_all = data::fashion_mnist(data::split::test, data_dir);
        const auto pretrained = std::filesystem::path(dir) / "pretrained.safetensors";

        // 1. pretrain: backbone + linear head over classes 0-4
        {
            auto model = nn::sequential(backbone(), nn::linear(1600, 5));
            auto train = data::loader(five_classes(train_all, 0, limit) | normalize,
                                      {.batch_size = 64, .shuffle = true, .workers = 1});
            auto test = data::loader(five_classes(test_all, 0, limit) | normalize, {.batch_size = 256});
            auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
            std::printf("pretraining on classes 0-4 (%zu images)\n", train.dataset().size());
            xgrad::fit(model, opt, nn::cross_entropy(), train,
                       {.epochs = epochs, .validation = &test, .metrics = {xgrad::metrics::accuracy()}});
            xgrad::save(model, pretrained);
        }

        // 2. a new model whose head differs: a hidden layer, then 5 new classes
        auto model = nn::sequential(backbone(), nn::linear(1600, 64), nn::relu(), nn::linear(64, 5));
        const auto report = xgrad::load(model, pretrained, {.strict = false});
        std::printf("loaded %zu tensors from %s; not loaded: %s\n", report.loaded, pretrained.string().c_str(),
                    report.to_string().c_str());

        auto train = data::loader(five_classes(train_all, 5, limit) | normalize,
                                  {.batch_size = 64, .shuffle = true, .workers = 1});
        auto test = data::loader(five_classes(test_all, 5, limit) | normalize, {.batch_size = 256});

        // 3. freeze the backbone; the optimizer gets only the head's parameters
        auto& body = model.get<0>();
        nn::requires_grad(body, false);
        std::vector<xgrad::parameter<float>> head;
        for (auto& p : nn::parameters(model.get<1>())) head.push_back(p);
        for (auto& p : nn::parameters(model.get<3>())) head.push_back(p);
        auto opt = xgrad::optim::adam(head, {.lr = 1e-3});
        std::printf("fine-tuning the head on classes 5-9: %zu of %zu parameters trainable\n",
                    model.num_parameters(true), model.num_parameters());
        xgrad::fit(model, opt, nn::cross_entropy(), train,
                   {.epochs = epochs, .validation = &test, .metrics = {xgrad::metrics::accuracy()}});

        // 4. unfreeze and train everything, the backbone at a tenth of the head's rate
        nn::requires_grad(body, true);
        opt.add_param_group(nn::parameters(body), {.lr = 1e-4});
        std::printf("training all %zu parameters (backbone lr %.0e, head lr %.0e)\n", model.num_parameters(),
                    opt.lr(1), opt.lr(0));
        xgrad::fit(model, opt, nn::cross_entropy(), train,
                   {.epochs = 1, .validation = &test, .metrics = {xgrad::metrics::accuracy()}});

        const std::vector<std::string> names{"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
        const auto scores = xgrad::evaluate(model, nn::cross_entropy(), test,
                                            {xgrad::metrics::accuracy(), xgrad::metrics::confusion_matrix(5, names)});
        std::printf("%s", scores.confusion().report().c_str());
        std::printf("fine-tuned test accuracy on classes 5-9: %.4f\n", scores["accuracy"]);
        return 0;
    } catch (const xgrad::error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
