// conv2d forward+backward on the seed CNN layers at batch 64 (28x28 inputs), float:
//   cnn1:  1 -> 32, 3x3, 28x28 -> 26x26   (input layer: no dx)
//   cnn2: 32 -> 64, 3x3, 13x13 -> 11x11
//   lenet1: 1 -> 6, 5x5, 28x28 -> 24x24   (input layer: no dx)
//   lenet2: 6 -> 16, 5x5, 12x12 -> 8x8
// Each with im2col + GEMM (algo 1) and the direct xsimd kernels (algo 2); next to them, the
// GEMM ceiling: one GEMM of the same total work (OC x batch*OH*OW x C*KH*KW)
// through the same backend. Rates count 2 flops per multiply-add of the forward product and
// of each gradient computed (dW, and dx where the input needs it).
#include <benchmark/benchmark.h>

#include <xgrad/ops/dense.hpp>
#include <xgrad/xgrad.hpp>

#if defined(XGRAD_BENCH_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace {

using namespace xgrad;

struct layer {
    const char* name;
    std::size_t C, H, OC, K;
    bool input_grad;
};
const layer layers[] = {
    {"cnn1", 1, 28, 32, 3, false},
    {"cnn2", 32, 13, 64, 3, true},
    {"lenet1", 1, 28, 6, 5, false},
    {"lenet2", 6, 12, 16, 5, true},
};
constexpr std::size_t batch = 64;

void set_threads(std::int64_t t) {
    set_num_threads(static_cast<std::size_t>(t));
#if defined(XGRAD_BENCH_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    openblas_set_num_threads(static_cast<int>(t));
#endif
}

/// GFLOP/s over wall time, and MFLOP per iteration (to divide by the CPU time of all threads).
void gflops(benchmark::State& s, double flops_per_iter) {
    const double total = flops_per_iter * static_cast<double>(s.iterations());
    s.counters["GFLOP/s"] = benchmark::Counter(total / 1e9, benchmark::Counter::kIsRate);
    s.counters["MFLOP"] = benchmark::Counter(total / 1e6, benchmark::Counter::kAvgIterations);
}

double product_flops(const layer& l) {
    const std::size_t o = l.H - l.K + 1;
    return 2.0 * batch * l.OC * o * o * l.C * l.K * l.K;
}

/// range(0): layer, range(1): threads, range(2): 1 forward+backward, 0 forward only,
/// range(3): algorithm (0 automatic, 1 im2col + GEMM, 2 direct)
void bm_conv2d(benchmark::State& s) {
    const layer& l = layers[s.range(0)];
    const bool with_backward = s.range(2) != 0;
    set_threads(s.range(1));
    const conv_algorithm algo[] = {conv_algorithm::automatic, conv_algorithm::im2col, conv_algorithm::direct};
    set_conv_algorithm(algo[s.range(3)]);
    s.SetLabel(l.name);
    rng g(3);
    auto xt = randn<float>({batch, l.C, l.H, l.H}, g);
    auto x = param(xt);
    auto w = param(randn<float>({l.OC, l.C, l.K, l.K}, g, 0.f, 0.1f));
    auto b = param(randn<float>({l.OC}, g));
    const std::size_t o = l.H - l.K + 1;
    auto up = randn<float>({batch, l.OC, o, o}, g);
    // The op itself: forward, then backward from a given upstream gradient (inside a network
    // the upstream comes from the next fused loop; eval()/backward() on a bare op add a copy).
    auto step = [&](const auto& node) {
        detail::pass_scope pass;
        auto y = node.forward_value();
        benchmark::DoNotOptimize(y.data());
        if (with_backward) node.backward_from(up);
    };
    for (auto _ : s) {
        if (l.input_grad && with_backward)
            step(conv2d(x, w, b));
        else
            step(conv2d(xt, w, b));
    }
    const double passes = with_backward ? (l.input_grad ? 3.0 : 2.0) : 1.0;
    gflops(s, product_flops(l) * passes);
}

/// The same multiply-adds as one GEMM: W {OC, CKK} x cols {CKK, batch*OH*OW}.
void bm_gemm_ceiling(benchmark::State& s) {
    const layer& l = layers[s.range(0)];
    set_threads(s.range(1));
    s.SetLabel(l.name);
    const std::size_t o = l.H - l.K + 1, M = l.OC, K = l.C * l.K * l.K, N = batch * o * o;
    rng g(4);
    auto a = randn<float>({M, K}, g), bm = randn<float>({K, N}, g), c = zeros<float>({M, N});
    for (auto _ : s) {
        detail::gemm<float>(false, false, M, N, K, 1.f, a.data(), K, bm.data(), N, 0.f, c.data(), N);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    gflops(s, product_flops(l));
}

}  // namespace

BENCHMARK(bm_conv2d)
    ->ArgNames({"layer", "threads", "backward", "algo"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 2}, {1, 0}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();
BENCHMARK(bm_gemm_ceiling)
    ->ArgNames({"layer", "threads"})
    ->ArgsProduct({{0, 1, 2, 3}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
