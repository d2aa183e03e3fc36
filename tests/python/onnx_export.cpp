// ONNX export: C++ checks, and the models that check_onnx_export.py verifies with onnx's checker
// (full_check) and runs with onnxruntime.
//   onnx_export DIR   runs the checks below (exit status 1 on a failure) and writes, for each
//                     model NAME, DIR/NAME.onnx (exported for a batch of 2), DIR/NAME_input.npy
//                     (a random batch of 5: the batch dimension is symbolic) and
//                     DIR/NAME_output.npy (xgrad's evaluation-mode output), printing "model NAME".
//   mlp   linear, relu, dropout, linear, gelu, linear, softmax                  {N, 20}
//   seq   linear (MatMul on rank 3), tanh, layer_norm, leaky_relu, linear, log_softmax {N, 5, 8}
//   cnn   conv2d, batch_norm2d, relu, max_pool2d, conv2d (groups 2, dilation), batch_norm2d,
//         leaky_relu, avg_pool2d (padding), adaptive_avg_pool2d {2, 2}, flatten, linear,
//         batch_norm1d, sigmoid, linear, log_softmax                              {N, 3, 16, 16}
//   gap   conv2d (stride 2, no bias), adaptive_avg_pool2d {1, 1}, flatten(2), flatten, linear  {N, 3, 9, 9}
//   lstm  linear (MatMul on rank 3), lstm (2 layers, bidirectional, batch_first)  {N, 7, 6}
//   gru   gru (2 layers, bidirectional, batch_first) as the model                 {N, 7, 6}
//   lstm_t  lstm (1 layer, forward, time-major) as the model; dimension 0 (time) symbolic {T, 3, 6}
#include <xgrad/io/npy.hpp>
#include <xgrad/io/onnx.hpp>
#include <xgrad/nn.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

namespace fs = std::filesystem;
namespace nn = xgrad::nn;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        ++failures;
        std::cerr << "FAIL: " << what << '\n';
    }
}

template <class E, class F>
void check_throws(F&& f, const std::string& must_name, const std::string& what) {
    try {
        f();
        check(false, what + ": no exception");
    } catch (const E& e) {
        check(std::string(e.what()).find(must_name) != std::string::npos,
              what + ": message '" + e.what() + "' does not name '" + must_name + "'");
    } catch (const std::exception& e) {
        check(false, what + ": wrong exception type: " + e.what());
    }
}

/// Random batch-norm statistics and affine parameters, so that inference differs from training.
template <class BN>
void randomize(BN& bn, xgrad::rng& g) {
    for (std::size_t i = 0; i < bn.num_features(); ++i) {
        bn.running_mean.data()[i] = static_cast<float>(g.normal(0, 0.5));
        bn.running_var.data()[i] = static_cast<float>(g.uniform(0.5, 2.0));
        bn.weight.value().data()[i] = static_cast<float>(g.uniform(0.5, 1.5));
        bn.bias.value().data()[i] = static_cast<float>(g.normal(0, 0.3));
    }
}

template <class M>
void write_case(const fs::path& dir, const std::string& name, M& model, xgrad::shape_t shape, xgrad::rng& g) {
    xgrad::onnx::save(model, shape, dir / (name + ".onnx"));
    check(model.is_training(), name + ": the model's training mode is restored");
    shape[0] = 5;
    const auto x = xgrad::randn<float>(shape, g);
    nn::eval(model);
    xgrad::tensor<float> y;
    if constexpr (requires { model(x).output; })  // a recurrent layer last: its output sequence
        y = xgrad::eval(model(x).output);
    else
        y = xgrad::eval(model(x));
    nn::train(model);
    xgrad::io::write_npy(dir / (name + "_input.npy"), x);
    xgrad::io::write_npy(dir / (name + "_output.npy"), y);
    std::cout << "model\t" << name << '\n';
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: onnx_export DIR\n";
        return 2;
    }
    const fs::path dir = argv[1];
    fs::remove_all(dir);
    fs::create_directories(dir);
    nn::manual_seed(11);
    xgrad::rng g(5);

    auto mlp = nn::sequential(nn::linear(20, 32), nn::relu(), nn::dropout(0.3), nn::linear(32, 16), nn::gelu(),
                              nn::linear(16, 10), nn::softmax());
    write_case(dir, "mlp", mlp, {2, 20}, g);

    auto seq = nn::sequential(nn::linear(8, 16), nn::tanh(), nn::layer_norm(16), nn::leaky_relu(0.2),
                              nn::linear(16, 4, {.bias = false}), nn::log_softmax(1));
    for (float& v : std::span(seq.get<2>().weight.value().data(), 16)) v = static_cast<float>(g.uniform(0.5, 1.5));
    write_case(dir, "seq", seq, {2, 5, 8}, g);

    auto cnn = nn::sequential(
        nn::conv2d(3, 8, 3, {.padding = 1}), nn::batch_norm2d(8), nn::relu(), nn::max_pool2d(2),
        nn::sequential(nn::conv2d(8, 16, 3, {.padding = 2, .dilation = 2, .groups = 2}), nn::batch_norm2d(16),
                       nn::leaky_relu()),
        nn::avg_pool2d(3, 2, 1), nn::adaptive_avg_pool2d({2, 2}), nn::flatten(), nn::linear(64, 32), nn::batch_norm1d(32),
        nn::sigmoid(), nn::linear(32, 10), nn::log_softmax());
    randomize(cnn.get<1>(), g);
    randomize(cnn.get<4>().get<1>(), g);
    randomize(cnn.get<9>(), g);
    // every layer gets its own mode back: a frozen batch norm inside a training model stays frozen
    cnn.get<1>().eval();
    xgrad::onnx::save(cnn, {2, 3, 16, 16}, dir / "frozen.onnx");
    check(cnn.is_training() && !cnn.get<1>().is_training() && cnn.get<4>().get<1>().is_training(),
          "cnn: each layer's mode is restored after the export");
    fs::remove(dir / "frozen.onnx");
    nn::train(cnn);
    write_case(dir, "cnn", cnn, {2, 3, 16, 16}, g);

    auto gap = nn::sequential(nn::conv2d(3, 6, 3, {.stride = 2, .bias = false}), nn::adaptive_avg_pool2d({1, 1}),
                              nn::flatten(2), nn::flatten(), nn::linear(6, 3));
    write_case(dir, "gap", gap, {2, 3, 9, 9}, g);

    auto lstm = nn::sequential(nn::linear(6, 8), nn::lstm(8, 5, {.num_layers = 2, .bidirectional = true, .batch_first = true}));
    write_case(dir, "lstm", lstm, {2, 7, 6}, g);
    auto gru = nn::gru(6, 5, {.num_layers = 2, .bidirectional = true, .batch_first = true});
    write_case(dir, "gru", gru, {2, 7, 6}, g);
    auto lstm_t = nn::lstm(6, 4);
    write_case(dir, "lstm_t", lstm_t, {2, 3, 6}, g);

    // the encoding starts with ir_version 8 and names opset 17 at the end
    const std::string bytes = xgrad::onnx::to_bytes(mlp, {2, 20});
    check(bytes.compare(0, 2, "\x08\x08", 2) == 0, "ModelProto starts with ir_version = 8");
    check(bytes.compare(bytes.size() - 6, 6, "\x42\x04\x0a\x00\x10\x11", 6) == 0, "opset_import {\"\", 17} last");

    // bad input: typed errors naming the layer or the path
    auto with_embedding = nn::sequential(nn::linear(4, 4), nn::embedding(10, 4));
    check_throws<xgrad::value_error>([&] { xgrad::onnx::save(with_embedding, {2, 4}, dir / "x.onnx"); },
                                     "layer '1' (embedding) has no ONNX mapping", "a layer without a mapping");
    auto no_stats = nn::sequential(nn::batch_norm1d(4, {.track_running_stats = false}));
    check_throws<xgrad::value_error>([&] { xgrad::onnx::save(no_stats, {2, 4}, dir / "x.onnx"); }, "layer '0' (batch_norm1d)",
                                     "batch norm without running statistics");
    auto odd_pool = nn::sequential(nn::adaptive_avg_pool2d({2, 2}));
    check_throws<xgrad::value_error>([&] { xgrad::onnx::save(odd_pool, {1, 1, 5, 5}, dir / "x.onnx"); }, "layer '0'",
                                     "adaptive pooling that ONNX cannot express");
    check_throws<xgrad::shape_error>([&] { xgrad::onnx::save(mlp, {2, 21}, dir / "x.onnx"); }, "layer '0' (linear)",
                                     "an example shape the model refuses");
    check_throws<xgrad::value_error>([&] { xgrad::onnx::save(mlp, {}, dir / "x.onnx"); }, "example input shape",
                                     "an empty example shape");
    check_throws<xgrad::io_error>([&] { xgrad::onnx::save(mlp, {2, 20}, dir / "missing" / "m.onnx"); },
                                  (dir / "missing" / "m.onnx").string(), "an unwritable path");
    check(!fs::exists(dir / "x.onnx"), "no file is written for a model that fails to export");

    if (failures) std::cerr << failures << " check(s) failed\n";
    return failures ? 1 : 0;
}
