// Training an MLP 784-256-128-10 (ReLU, cross-entropy, SGD with momentum 0.9) with xgrad's
// nn and optim, and the optimizers' update throughput against a STREAM-style triad.
//
//   mlp_step/<batch>/<threads>      one training step: samples/s, and the shares of the step's
//                                   time spent in GEMM, in the optimizer update, and elsewhere
//                                   (loss, epilogues, bias gradients, the framework itself).
//                                   Measured in the same run: xgrad's GEMM on exactly the step's
//                                   eight products (3 forward, 5 backward), and opt.step() alone,
//                                   each repeated as often as the step ran.
//   optim_<rule>/<threads>          one step() over a 2^24-element parameter: GB/s counting each
//                                   tensor read or written once (sgd momentum: p, g, b read, p, b
//                                   written = 20 B/elem; adam: 28 B/elem)
//   triad/<threads>                 a = b + s c over 2^24 floats with xsimd (12 B/elem)
//
// The machine these run on is shared, so every benchmark measures the CPU time of all its
// threads (MeasureProcessCPUTime) and rates are per CPU-second; the shares are ratios of CPU
// times measured in the same run. Compare 1 and 2 threads as CPU time for the same work.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <ctime>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;

namespace {

/// CPU time of the whole process (all threads), in seconds.
double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// The step's eight products, shapes as the dense ops issue them (row-major, W {out, in}).
void mlp_gemms(std::size_t B, const std::vector<float*>& buf) {
    using xgrad::detail::gemm;
    float *x = buf[0], *w1 = buf[1], *w2 = buf[2], *w3 = buf[3], *h1 = buf[4], *h2 = buf[5], *z = buf[6];
    float *g3 = buf[7], *g2 = buf[8], *g1 = buf[9], *dw1 = buf[10], *dw2 = buf[11], *dw3 = buf[12];
    gemm<float>(false, true, B, 256, 784, 1.f, x, 784, w1, 784, 0.f, h1, 256);   // h1 = x W1^T
    gemm<float>(false, true, B, 128, 256, 1.f, h1, 256, w2, 256, 0.f, h2, 128);  // h2 = h1 W2^T
    gemm<float>(false, true, B, 10, 128, 1.f, h2, 128, w3, 128, 0.f, z, 10);     // z = h2 W3^T
    gemm<float>(true, false, 10, 128, B, 1.f, g3, 10, h2, 128, 0.f, dw3, 128);   // dW3 = g3^T h2
    gemm<float>(false, false, B, 128, 10, 1.f, g3, 10, w3, 128, 0.f, g2, 128);   // dh2 = g3 W3
    gemm<float>(true, false, 128, 256, B, 1.f, g2, 128, h1, 256, 0.f, dw2, 256);  // dW2 = g2^T h1
    gemm<float>(false, false, B, 256, 128, 1.f, g2, 128, w2, 256, 0.f, g1, 256);  // dh1 = g2 W2
    gemm<float>(true, false, 256, 784, B, 1.f, g1, 256, x, 784, 0.f, dw1, 784);   // dW1 = g1^T x
}

void bm_mlp_step(benchmark::State& st) {
    const auto B = static_cast<std::size_t>(st.range(0));
    xgrad::set_num_threads(static_cast<std::size_t>(st.range(1)));
    nn::manual_seed(0);
    auto model = nn::sequential(nn::linear(784, 256), nn::relu(), nn::linear(256, 128), nn::relu(), nn::linear(128, 10));
    auto opt = xgrad::optim::sgd(model.parameters(), {.lr = 0.01, .momentum = 0.9});
    xgrad::rng gen(1);
    const auto x = xgrad::randn<float>({B, 784}, gen);
    const auto y = xgrad::uniform<std::int64_t>({B}, gen, 0, 10);

    std::int64_t steps = 0;
    const double t0 = cpu_seconds();
    for (auto _ : st) {
        opt.zero_grad();
        const float loss = xgrad::backward(xgrad::cross_entropy(model(x), y));
        opt.step();
        benchmark::DoNotOptimize(loss);
        ++steps;
    }
    const double step_s = cpu_seconds() - t0;

    // the same number of GEMM-only passes, timed the same way
    const std::vector<std::size_t> sizes{B * 784, 256 * 784, 128 * 256, 10 * 128, B * 256, B * 128, B * 10,
                                         B * 10,  B * 128,   B * 256,   256 * 784, 128 * 256, 10 * 128};
    std::vector<xgrad::tensor<float>> mem;
    std::vector<float*> buf;
    for (auto n : sizes) {
        mem.push_back(xgrad::randn<float>({n}, gen));
        buf.push_back(mem.back().data());
    }
    mlp_gemms(B, buf);  // warm
    const double t1 = cpu_seconds();
    for (std::int64_t i = 0; i < steps; ++i) mlp_gemms(B, buf);
    const double gemm_s = cpu_seconds() - t1;
    const double t2 = cpu_seconds();
    for (std::int64_t i = 0; i < steps; ++i) opt.step();
    const double update_s = cpu_seconds() - t2;

    st.counters["samples/s"] = benchmark::Counter(static_cast<double>(B), benchmark::Counter::kIsIterationInvariantRate);
    st.counters["gemm_share"] = gemm_s / step_s;
    st.counters["outside_gemm"] = 1.0 - gemm_s / step_s;
    st.counters["update_share"] = update_s / step_s;
}

constexpr std::size_t update_n = std::size_t{1} << 24;

template <class Make>
void run_update(benchmark::State& st, Make make, double bytes_per_elem) {
    xgrad::set_num_threads(static_cast<std::size_t>(st.range(0)));
    xgrad::rng gen(2);
    auto p = xgrad::param(xgrad::randn<float>({update_n}, gen));
    auto g = xgrad::randn<float>({update_n}, gen);
    xgrad::backward(xgrad::sum(p * g));  // grad = g
    auto opt = make(std::vector{p});
    opt.step();  // creates the state
    for (auto _ : st) opt.step();
    st.counters["GB/s"] = benchmark::Counter(bytes_per_elem * static_cast<double>(update_n),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

void bm_optim_sgd_momentum(benchmark::State& st) {
    run_update(st, [](auto ps) { return xgrad::optim::sgd(ps, {.lr = 0.01, .momentum = 0.9}); }, 20.0);
}
void bm_optim_adam(benchmark::State& st) {
    run_update(st, [](auto ps) { return xgrad::optim::adam(ps, {.lr = 1e-3}); }, 28.0);
}
void bm_optim_adamw_amsgrad(benchmark::State& st) {
    run_update(st, [](auto ps) { return xgrad::optim::adamw(ps, {.amsgrad = true}); }, 36.0);
}
void bm_optim_rmsprop_centered(benchmark::State& st) {
    run_update(st, [](auto ps) { return xgrad::optim::rmsprop(ps, {.centered = true}); }, 28.0);
}

// a = b + s c, split across xgrad's pool like its own loops
void bm_triad(benchmark::State& st) {
    const auto nt = static_cast<std::size_t>(st.range(0));
    xgrad::set_num_threads(nt);
    xgrad::rng gen(3);
    auto a = xgrad::zeros<float>({update_n});  // touched: no page faults inside the loop
    auto b = xgrad::randn<float>({update_n}, gen), c = xgrad::randn<float>({update_n}, gen);
    using V = xsimd::batch<float>;
    for (auto _ : st) {
        xgrad::detail::parallel_run(nt, [&](std::size_t t) {
            const std::size_t lo = update_n * t / nt, hi = update_n * (t + 1) / nt;
            const V s(0.5f);
            for (std::size_t i = lo; i < hi; i += V::size)
                xsimd::fma(s, V::load_aligned(c.data() + i), V::load_aligned(b.data() + i)).store_aligned(a.data() + i);
        });
        benchmark::ClobberMemory();
    }
    st.counters["GB/s"] = benchmark::Counter(12.0 * static_cast<double>(update_n),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

}  // namespace

BENCHMARK(bm_mlp_step)->ArgsProduct({{64, 256}, {1, 2}})->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime();
BENCHMARK(bm_optim_sgd_momentum)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(bm_optim_adam)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(bm_optim_adamw_amsgrad)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(bm_optim_rmsprop_centered)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();
BENCHMARK(bm_triad)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime();

BENCHMARK_MAIN();
