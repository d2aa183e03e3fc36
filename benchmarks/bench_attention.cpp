// One transformer encoder layer (d_model 256, 4 heads, feed-forward 1024, post-norm, ReLU,
// dropout 0) on a {32, 128, 256} batch: forward + backward with a fixed upstream gradient, at 1
// and 2 threads. benchmarks/peers/encoder_layer.py runs this next to PyTorch (eager and
// torch.compile) on the same shapes and prints the ratios.
#include <benchmark/benchmark.h>

#include <xgrad/nn/attention.hpp>
#include <xgrad/xgrad.hpp>

namespace {

constexpr std::size_t B = 32, S = 128, E = 256, H = 4, F = 1024;

void bm_encoder_layer(benchmark::State& st) {
    xgrad::set_num_threads(static_cast<std::size_t>(st.range(0)));
    xgrad::rng gen(1);
    xgrad::nn::transformer_encoder_layer<float> layer(E, H, {.dim_feedforward = F, .dropout = 0.0}, gen);
    auto x = xgrad::param(xgrad::randn<float>({B, S, E}, gen));
    const auto g = xgrad::randn<float>({B, S, E}, gen);
    for (auto _ : st) {
        for (auto& p : layer.parameters()) p.zero_grad();
        x.zero_grad();
        xgrad::backward(layer.forward(x), g);
        benchmark::DoNotOptimize(x.grad().data());
    }
    st.counters["samples/s"] = benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(bm_encoder_layer)->ArgName("threads")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
