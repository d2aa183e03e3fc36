// sum(tanh(x*w + b) * sigmoid(x)) forward + backward on Thrust's OpenMP system next to the CPU
// backend, same threads, same binary: what the device code path costs when it runs on the
// host (one scalar element per call, no SIMD) against the fused xsimd loop.
// Bytes per element: 20 (x and w read; x's and w's gradients written; b's is a reduction).
#include <benchmark/benchmark.h>

#include <omp.h>

#include <xgrad/device.hpp>

namespace {

void set_bandwidth(benchmark::State& st, std::size_t n) {
    st.counters["GB/s"] = benchmark::Counter(20.0 * static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}

template <class Device>
void bm_fused_chain(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto threads = static_cast<int>(st.range(1));
    xgrad::set_num_threads(static_cast<std::size_t>(threads));
    omp_set_num_threads(threads);
    xgrad::rng g(1);
    auto x = xgrad::param(xgrad::to<Device>(xgrad::randn<float>({n}, g)));
    auto w = xgrad::param(xgrad::to<Device>(xgrad::randn<float>({n}, g)));
    auto b = xgrad::param(xgrad::zeros<float, Device>({1}));
    for (auto _ : st) {
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
        float v = xgrad::backward(xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)));
        benchmark::DoNotOptimize(v);
    }
    set_bandwidth(st, n);
}

constexpr std::int64_t n24 = std::int64_t{1} << 24;
BENCHMARK(bm_fused_chain<xgrad::device::cpu>)->Args({n24, 1})->Args({n24, 2})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_fused_chain<xgrad::device::thrust_omp>)->Args({n24, 1})->Args({n24, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
