#pragma once
// What several examples share: a small command-line reader, the first-n-samples cut of a
// dataset, and the two Fashion-MNIST networks (the Keras convnet and the PyTorch tutorial's Net,
// both adapted to 1x28x28 inputs).
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include <xgrad/data.hpp>
#include <xgrad/nn.hpp>

namespace xgrad_example {

/// Reads "--key value" options in order:
///
///   cli c(argc, argv, "usage: prog [--epochs N] [--lr X]");
///   for (std::string k; c.next(k);)
///       if (k == "--epochs") a.epochs = c.count();
///       else if (k == "--lr") a.lr = c.real();
///       else c.fail("unknown option " + k);
///
/// Any error prints "error: <why>" and the usage text to stderr and exits with status 2.
class cli {
public:
    cli(int argc, char** argv, std::string usage) : argc_(argc), argv_(argv), usage_(std::move(usage)) {}

    /// The next option's name, false at the end.
    bool next(std::string& key) {
        if (i_ + 1 >= argc_) return false;
        key_ = key = argv_[++i_];
        return true;
    }
    /// The current option's value (the next argument).
    std::string value() {
        if (i_ + 1 >= argc_) fail("missing value after " + key_);
        return argv_[++i_];
    }
    /// The value as an unsigned integer.
    std::size_t count() {
        const std::string v = value();
        char* end = nullptr;
        const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end || v[0] == '-') fail("not a count: " + key_ + " " + v);
        return static_cast<std::size_t>(n);
    }
    /// The value as a real number.
    double real() {
        const std::string v = value();
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (v.empty() || *end) fail("not a number: " + key_ + " " + v);
        return x;
    }
    [[noreturn]] void fail(const std::string& why) const {
        std::fprintf(stderr, "error: %s\n%s\n", why.c_str(), usage_.c_str());
        std::exit(2);
    }

private:
    int argc_;
    char** argv_;
    std::string usage_, key_;
    int i_ = 0;
};

/// Reads the options the training examples share into the members of `a` that exist (net,
/// epochs, batch_size, limit, seed, lr, data_dir, save); false when `key` is none of them:
///
///   for (std::string k; c.next(k);)
///       if (!training_option(c, k, a)) { if (k == "--workers") a.workers = c.count(); else c.fail(...); }
template <class A>
bool training_option(cli& c, const std::string& key, A& a) {
    if constexpr (requires { a.net = std::string(); })
        if (key == "--net") return a.net = c.value(), true;
    if constexpr (requires { a.epochs = std::size_t(); })
        if (key == "--epochs") return a.epochs = c.count(), true;
    if constexpr (requires { a.batch_size = std::size_t(); })
        if (key == "--batch-size") return a.batch_size = c.count(), true;
    if constexpr (requires { a.limit = std::size_t(); })
        if (key == "--limit") return a.limit = c.count(), true;
    if constexpr (requires { a.seed = std::size_t(); })
        if (key == "--seed") return a.seed = c.count(), true;
    if constexpr (requires { a.lr = 1.0; })
        if (key == "--lr") return a.lr = c.real(), true;
    if constexpr (requires { a.data_dir = std::string(); })
        if (key == "--data-dir") return a.data_dir = c.value(), true;
    if constexpr (requires { a.save = std::string(); })
        if (key == "--save") return a.save = c.value(), true;
    return false;
}

/// The first n samples of a dataset (all of it when n is 0 or too large): for quick runs.
inline xgrad::data::tensor_dataset<std::uint8_t> first(const xgrad::data::tensor_dataset<std::uint8_t>& d,
                                                       std::size_t n) {
    if (n == 0 || n >= d.size()) return d;
    const auto k = static_cast<std::ptrdiff_t>(n);
    return {d.inputs().slice(0, 0, k), d.labels().slice(0, 0, k)};
}

/// conv 32 3x3, relu, maxpool 2, conv 64 3x3, relu, maxpool 2, flatten, dense 10 (34,826 parameters).
inline auto keras_cnn() {
    namespace nn = xgrad::nn;
    return nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),   //
                          nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),  //
                          nn::flatten(), nn::linear(64 * 5 * 5, 10));
}

/// conv 6 5x5, relu, pool, conv 16 5x5, relu, pool, fc 120, relu, fc 84, relu, fc 10.
inline auto torch_net() {
    namespace nn = xgrad::nn;
    return nn::sequential(nn::conv2d(1, 6, 5), nn::relu(), nn::max_pool2d(2),     //
                          nn::conv2d(6, 16, 5), nn::relu(), nn::max_pool2d(2),    //
                          nn::flatten(), nn::linear(16 * 4 * 4, 120), nn::relu(),  //
                          nn::linear(120, 84), nn::relu(), nn::linear(84, 10));
}

}  // namespace xgrad_example
