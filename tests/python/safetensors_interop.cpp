// Helper for check_safetensors_interop.py.
//   safetensors_interop write FILE   writes a checkpoint with every dtype xgrad stores and prints
//                                    the values it meant to store (as rounded for F16/BF16)
//   safetensors_interop read FILE    reads FILE and prints it
//   safetensors_interop model-write MODEL IO        saves the small CNN below (random weights and
//                                    batch-norm statistics) to MODEL, and {input, output} of its
//                                    evaluation-mode forward to IO
//   safetensors_interop model-run MODEL IO OUT      loads MODEL strictly into that CNN, runs IO's
//                                    input and saves {output} to OUT
// Printed form, one line each: "meta<TAB>key<TAB>value", then per tensor
// "tensor<TAB>name<TAB>dtype<TAB>d0,d1,...<TAB>v0 v1 ..." with floats as C99 hex floats (exact).
#include <xgrad/io/safetensors.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

namespace io = xgrad::io;

namespace {

template <class T>
xgrad::tensor<T> make(xgrad::shape_t shape, T (*f)(std::size_t)) {
    auto t = xgrad::tensor<T>::uninitialized(std::move(shape));
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = f(i);
    return t;
}

// What a value of dtype `dtype` holds once stored.
double stored(double v, const std::string& dtype) {
    if (dtype == "F16") return io::detail::half_to_float(io::detail::float_to_half(static_cast<float>(v)));
    if (dtype == "BF16") return io::detail::bf16_to_float(io::detail::float_to_bf16(static_cast<float>(v)));
    return v;
}

void print(const io::safetensors_file& f) {
    for (const auto& [k, v] : f.metadata) std::cout << "meta\t" << k << '\t' << v << '\n';
    for (const auto& t : f.tensors) {
        const char* natural = std::visit(
            [](const auto& v) { return io::detail::st_natural_dtype<typename std::remove_cvref_t<decltype(v)>::value_type>(); },
            t.value);
        const std::string dtype = t.dtype.empty() ? natural : t.dtype;
        std::cout << "tensor\t" << t.name << '\t' << dtype << '\t';
        std::visit(
            [&](const auto& v) {
                using T = typename std::remove_cvref_t<decltype(v)>::value_type;
                for (std::size_t d = 0; d < v.dim(); ++d) std::cout << (d ? "," : "") << v.shape()[d];
                std::cout << '\t';
                const auto values = v.to_vector();
                char buf[64];
                for (std::size_t i = 0; i < values.size(); ++i) {
                    if constexpr (std::is_floating_point_v<T>)
                        std::snprintf(buf, sizeof buf, "%a", stored(static_cast<double>(values[i]), dtype));
                    else
                        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(values[i]));
                    std::cout << (i ? " " : "") << buf;
                }
            },
            t.value);
        std::cout << '\n';
    }
}

// As torch.nn.Sequential(Conv2d(1, 4, 3), BatchNorm2d(4), ReLU(), MaxPool2d(2), Flatten(), Linear(36, 5)).
auto small_cnn() {
    namespace nn = xgrad::nn;
    return nn::sequential(nn::conv2d(1, 4, 3), nn::batch_norm2d(4), nn::relu(), nn::max_pool2d(2), nn::flatten(),
                          nn::linear(36, 5));
}

int model_mode(const std::string& mode, int argc, char** argv) {
    if (mode == "model-write" && argc == 4) {
        xgrad::nn::manual_seed(3);
        auto fresh = small_cnn();
        xgrad::rng g(5);
        for (auto& [name, t] : xgrad::nn::named_buffers(fresh))  // running statistics: mean any, var > 0
            for (std::size_t i = 0; i < t.size(); ++i)
                t.data()[i] = name.find("var") != std::string::npos ? static_cast<float>(g.uniform(0.5, 2.0))
                                                                     : static_cast<float>(g.normal(0, 0.5));
        fresh.eval();
        auto x = xgrad::randn<float>({2, 1, 8, 8}, g);
        auto y = xgrad::eval(fresh(x));
        xgrad::save(fresh, argv[2]);
        io::save_safetensors(argv[3], {{"input", x, ""}, {"output", y, ""}});
        return 0;
    }
    if (mode == "model-run" && argc == 5) {
        auto model = small_cnn();
        model.eval();
        xgrad::load(model, argv[2]);
        const auto x = io::load_safetensors(argv[3]).get<float>("input");
        io::save_safetensors(argv[4], {{"output", xgrad::eval(model(x)), ""}});
        return 0;
    }
    std::cerr << "usage: " << argv[0] << " model-write MODEL IO | model-run MODEL IO OUT\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::string(argv[1]).rfind("model-", 0) == 0) {
        try {
            return model_mode(argv[1], argc, argv);
        } catch (const xgrad::error& e) {
            std::cerr << "error: " << e.what() << '\n';
            return 1;
        }
    }
    if (argc != 3) {
        std::cerr << "usage: " << argv[0] << " write|read FILE\n";
        return 2;
    }
    const std::string mode = argv[1];
    try {
        if (mode == "write") {
            // names as a PyTorch nn.Sequential(conv, relu, pool, ..., linear) state dict has them
            auto w0 = make<float>({4, 1, 3, 3}, [](std::size_t i) { return std::sin(0.7f * static_cast<float>(i)) / 3.f; });
            auto b0 = make<float>({4}, [](std::size_t i) { return static_cast<float>(i) - 1.5f; });
            auto w7 = make<float>({10, 6}, [](std::size_t i) { return std::exp(-static_cast<float>(i) / 9.f); });
            auto special = xgrad::from_vector<float>({0.f, -0.f, std::numeric_limits<float>::infinity(),
                                                      std::numeric_limits<float>::denorm_min(), 3.4e38f, -1e-38f},
                                                     {2, 3});
            auto f64 = make<double>({3}, [](std::size_t i) { return std::acos(-1.0) * static_cast<double>(i + 1); });
            auto i64 = xgrad::from_vector<std::int64_t>({std::numeric_limits<std::int64_t>::min(), -1, 0,
                                                         std::numeric_limits<std::int64_t>::max()},
                                                        {2, 2});
            auto i32 = make<std::int32_t>({5}, [](std::size_t i) { return static_cast<std::int32_t>(i * 1000003) - 7; });
            auto i16 = xgrad::from_vector<std::int16_t>({-32768, 12345, 32767}, {3});
            auto i8 = xgrad::from_vector<std::int8_t>({-128, 0, 127}, {1, 3});
            auto u8 = make<std::uint8_t>({2, 2, 2}, [](std::size_t i) { return static_cast<std::uint8_t>(255 - 31 * i); });
            auto mask = xgrad::from_vector<std::uint8_t>({1, 0, 0, 1}, {4});
            auto halfs = xgrad::from_vector<float>({1.f, -2.5f, 0.1f, 65504.f, 6e-8f}, {5});
            auto scalar = xgrad::from_vector<float>({42.f}, {});
            auto empty = xgrad::tensor<float>::uninitialized({0, 3});
            io::safetensors_file f;
            f.tensors = {{"0.weight", w0, ""},
                         {"0.bias", b0, ""},
                         {"7.weight", w7, ""},
                         {"7.weight_T", w7.transpose(0, 1), ""},
                         {"special", special, ""},
                         {"f64", f64, ""},
                         {"num_batches_tracked", i64, ""},
                         {"i32", i32, ""},
                         {"i16", i16, ""},
                         {"i8", i8, ""},
                         {"u8", u8, ""},
                         {"mask", mask, "BOOL"},
                         {"half", halfs, "F16"},
                         {"bfloat", halfs, "BF16"},
                         {"scalar", scalar, ""},
                         {"empty", empty, ""},
                         {"unicode.\xc3\xa9\xe2\x82\xac", b0, ""}};
            f.metadata = {{"format", "pt"}, {"written_by", "xgrad"}};
            io::save_safetensors(argv[2], f.tensors, f.metadata);
            print(f);
        } else if (mode == "read") {
            print(io::load_safetensors(argv[2]));
        } else {
            std::cerr << "unknown mode '" << mode << "'\n";
            return 2;
        }
    } catch (const xgrad::error& e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
