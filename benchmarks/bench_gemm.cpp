// Dense kernels, single precision:
//   - SGEMM C = A B (n x n) through xgrad::matmul (OpenBLAS behind it), OpenBLAS's cblas_sgemm
//     called directly, and xgrad's built-in xsimd GEMM, at 1 and 2 threads;
//   - a dense layer relu(matmul(x, W) + b), 784 -> 256, forward and forward+backward, with the
//     fused epilogue and unfused (matmul, then relu(z + b) as an elementwise loop).
// Rates are GFLOP/s of the GEMM work (2 M N K per product) over wall time.
#include <benchmark/benchmark.h>

#include <xgrad/ops/dense.hpp>
#include <xgrad/xgrad.hpp>

#if defined(XGRAD_BENCH_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace {

using namespace xgrad;

void set_threads(std::int64_t t) {
    set_num_threads(static_cast<std::size_t>(t));
#if defined(XGRAD_BENCH_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    openblas_set_num_threads(static_cast<int>(t));
#endif
}

/// GFLOP/s over wall time, and MFLOP per iteration (to divide by the CPU time of all threads:
/// on a busy machine the CPU time says what the kernel costs, the wall time what it waited).
void gflops(benchmark::State& s, double flops_per_iter) {
    const double total = flops_per_iter * static_cast<double>(s.iterations());
    s.counters["GFLOP/s"] = benchmark::Counter(total / 1e9, benchmark::Counter::kIsRate);
    s.counters["MFLOP"] = benchmark::Counter(total / 1e6, benchmark::Counter::kAvgIterations);
}

#if defined(XGRAD_BENCH_HAVE_CBLAS)
void bm_sgemm_openblas(benchmark::State& s) {
    const auto n = static_cast<std::size_t>(s.range(0));
    set_threads(s.range(1));
    rng g(1);
    auto a = randn<float>({n, n}, g), b = randn<float>({n, n}, g), c = zeros<float>({n, n});
    const int m = static_cast<int>(n);
    for (auto _ : s) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.f, a.data(), m, b.data(), m, 0.f, c.data(), m);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    gflops(s, 2.0 * n * n * n);
}
#endif

/// The matmul op's forward: node construction (shape checks), output allocation, GEMM.
void sgemm_xgrad(benchmark::State& s, gemm_backend be) {
    const auto n = static_cast<std::size_t>(s.range(0));
    set_threads(s.range(1));
    set_gemm_backend(be);
    rng g(1);
    auto a = randn<float>({n, n}, g), b = randn<float>({n, n}, g);
    for (auto _ : s) {
        auto y = matmul(a, b).forward_value();
        benchmark::DoNotOptimize(y.data());
    }
    gflops(s, 2.0 * n * n * n);
}
void bm_sgemm_xgrad(benchmark::State& s) {
    if (!have_blas()) {
        s.SkipWithError("built without CBLAS");
        return;
    }
    sgemm_xgrad(s, gemm_backend::blas);
}
void bm_sgemm_builtin(benchmark::State& s) { sgemm_xgrad(s, gemm_backend::builtin); }

/// y = eval(matmul(a, b)): as above, plus the copy eval() makes of a barrier op's output.
void bm_sgemm_xgrad_eval(benchmark::State& s) {
    const auto n = static_cast<std::size_t>(s.range(0));
    set_threads(s.range(1));
    set_gemm_backend(have_blas() ? gemm_backend::blas : gemm_backend::builtin);
    rng g(1);
    auto a = randn<float>({n, n}, g), b = randn<float>({n, n}, g);
    for (auto _ : s) {
        auto y = eval(matmul(a, b));
        benchmark::DoNotOptimize(y.data());
    }
    gflops(s, 2.0 * n * n * n);
}

/// relu(x W + b), x {batch, 784}, W {784, 256}; range(1): 1 fused, 0 unfused; range(2): 1 with
/// backward (dx, dW, db), 0 forward only.
void bm_dense_layer(benchmark::State& s) {
    const auto batch = static_cast<std::size_t>(s.range(0));
    const bool fused = s.range(1) != 0, with_backward = s.range(2) != 0;
    set_threads(s.range(3));
    set_gemm_backend(have_blas() ? gemm_backend::blas : gemm_backend::builtin);
    rng g(2);
    auto x = param(randn<float>({batch, 784}, g));
    auto W = param(randn<float>({784, 256}, g, 0.f, 0.05f));
    auto b = param(randn<float>({256}, g));
    auto up = randn<float>({batch, 256}, g);
    // One layer inside a network: its output is computed, then the gradient from above arrives.
    for (auto _ : s) {
        detail::pass_scope pass;  // one training step: the matmul inside runs once
        if (fused) {
            auto y = relu(matmul(x, W) + b);  // one op node: GEMM with a bias+relu epilogue
            auto v = y.forward_value();
            benchmark::DoNotOptimize(v.data());
            if (with_backward) y.backward_from(up);
        } else {
            auto y = detail::make_unary(ops::relu{}, matmul(x, W) + b);  // matmul, then a fused loop
            auto v = eval(y);
            benchmark::DoNotOptimize(v.data());
            if (with_backward) backward(y, up);
        }
    }
    gflops(s, 2.0 * batch * 784 * 256 * (with_backward ? 3 : 1));
}

void gemm_args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"n", "threads"});
    for (int t : {1, 2})
        for (int n : {256, 512, 1024, 2048}) b->Args({n, t});
    b->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime();
}

}  // namespace

#if defined(XGRAD_BENCH_HAVE_CBLAS)
BENCHMARK(bm_sgemm_openblas)->Apply(gemm_args);
#endif
BENCHMARK(bm_sgemm_xgrad)->Apply(gemm_args);
BENCHMARK(bm_sgemm_builtin)->Apply(gemm_args);
BENCHMARK(bm_sgemm_xgrad_eval)->Apply(gemm_args);
BENCHMARK(bm_dense_layer)
    ->ArgNames({"batch", "fused", "backward", "threads"})
    ->ArgsProduct({{64, 256}, {1, 0}, {0, 1}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

BENCHMARK_MAIN();
