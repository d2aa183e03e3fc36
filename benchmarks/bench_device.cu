// sum(tanh(x*w + b) * sigmoid(x)) forward + backward on the GPU, as one fused kernel (plus the
// merge of the bias gradient and the value), next to a device-to-device copy measured in the
// same binary: the copy is the ceiling an elementwise kernel can approach.
// Bytes per element: fused 20 (x and w read; x's and w's gradients written; b's is a
// reduction), copy 8 (read + write). Also one training step (forward, cross-entropy, backward,
// Adam update) of the Keras-style Fashion-MNIST CNN at batch 256, in samples/s.
// Without a GPU the program says so and exits with 0.
#include <benchmark/benchmark.h>

#include <cstdio>

#include <cuda_runtime.h>

#include <xgrad/device.hpp>

namespace {

using dev = xgrad::device::cuda;

void set_bandwidth(benchmark::State& st, std::size_t n, double bytes_per_elem) {
    st.counters["GB/s"] = benchmark::Counter(bytes_per_elem * static_cast<double>(n),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void check(cudaError_t e) {
    if (e != cudaSuccess) throw std::runtime_error(cudaGetErrorString(e));
}

void bm_fused_chain(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    auto x = xgrad::param(xgrad::full<float, dev>({n}, 0.5f));
    auto w = xgrad::param(xgrad::full<float, dev>({n}, -0.25f));
    auto b = xgrad::param(xgrad::zeros<float, dev>({1}));
    for (auto _ : st) {
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
        // returns the value on the host: the loop waits for the kernels every iteration
        float v = xgrad::backward(xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)));
        benchmark::DoNotOptimize(v);
    }
    set_bandwidth(st, n, 20.0);
}

void bm_device_copy(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    auto src = xgrad::full<float, dev>({n}, 1.0f);
    auto dst = xgrad::empty<float, dev>({n});
    for (auto _ : st) {
        check(cudaMemcpyAsync(dst.data(), src.data(), n * sizeof(float), cudaMemcpyDeviceToDevice));
        check(cudaDeviceSynchronize());
    }
    set_bandwidth(st, n, 8.0);
}

/// The Keras-style CNN of examples/fashion_mnist_cnn.cpp on random 1x28x28 inputs.
void bm_cnn_train_step(benchmark::State& st) {
    namespace nn = xgrad::nn;
    const auto batch = static_cast<std::size_t>(st.range(0));
    nn::manual_seed(1);
    auto cpu_model = nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),   //
                                    nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),  //
                                    nn::flatten(), nn::linear(64 * 5 * 5, 10));
    auto model = xgrad::to<dev>(cpu_model);
    auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3});
    xgrad::rng gen(2);
    const auto x = xgrad::to<dev>(xgrad::uniform<float>({batch, 1, 28, 28}, gen, 0.0f, 1.0f));
    auto labels = xgrad::tensor<std::int64_t>::uninitialized({batch});
    for (std::size_t i = 0; i < batch; ++i) labels.data()[i] = static_cast<std::int64_t>(i % 10);
    const auto y = xgrad::to<dev>(labels);
    nn::cross_entropy loss_fn;
    for (auto _ : st) {
        opt.zero_grad();
        // the loss comes back to the host: the loop waits for the step's kernels every iteration
        float v = static_cast<float>(xgrad::backward(loss_fn(model(x), y)));
        opt.step();
        benchmark::DoNotOptimize(v);
    }
    check(cudaDeviceSynchronize());
    st.counters["samples/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

constexpr std::int64_t small = std::int64_t{1} << 24, large = std::int64_t{1} << 28;
BENCHMARK(bm_device_copy)->Arg(small)->Arg(large)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_fused_chain)->Arg(small)->Arg(large)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(bm_cnn_train_step)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        std::printf("bench_device: no CUDA device available (%s); nothing measured\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount reports 0 devices");
        return 0;
    }
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
