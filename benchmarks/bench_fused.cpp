// sum(tanh(x*w + b) * sigmoid(x)) forward + backward: xgrad's fused loop against a
// hand-written fused loop, an unfused op-by-op evaluation with temporaries, and a
// STREAM-style triad measuring this machine's memory bandwidth, all in one binary.
// Bytes per element: 20 (x and w read, three gradients written; b's is a reduction).
#include <benchmark/benchmark.h>

#include <cmath>
#include <thread>
#include <vector>

#include <xgrad/xgrad.hpp>

namespace {

constexpr double bytes_per_elem = 20.0;

void set_counters(benchmark::State& st, std::size_t n, double bytes) {
    st.counters["GB/s"] = benchmark::Counter(bytes * static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
}

struct data {
    xgrad::tensor<float> x, w;
    explicit data(std::size_t n) {
        xgrad::rng g(1);
        x = xgrad::randn<float>({n}, g);
        w = xgrad::randn<float>({n}, g);
    }
};

void bm_xgrad_fused(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    xgrad::set_num_threads(static_cast<std::size_t>(st.range(1)));
    data d(n);
    auto x = xgrad::param(d.x), w = xgrad::param(d.w);
    auto b = xgrad::param(xgrad::zeros<float>({1}));
    for (auto _ : st) {
        x.zero_grad();
        w.zero_grad();
        b.zero_grad();
        float v = xgrad::backward(xgrad::sum(xgrad::tanh(x * w + b) * xgrad::sigmoid(x)));
        benchmark::DoNotOptimize(v);
    }
    set_counters(st, n, bytes_per_elem);
}

// The same math written by hand as one scalar loop per thread (compiled with the same flags).
void hand_fused(const float* x, const float* w, float b, float* gx, float* gw, std::size_t lo, std::size_t hi,
                double& val, double& gb) {
    float v = 0, g = 0;
    for (std::size_t i = lo; i < hi; ++i) {
        const float t = std::tanh(x[i] * w[i] + b);
        const float s = 1.0f / (1.0f + std::exp(-x[i]));
        const float dt = (1.0f - t * t) * s;  // d/d(pre-activation)
        v += t * s;
        g += dt;
        gx[i] = dt * w[i] + t * s * (1.0f - s);
        gw[i] = dt * x[i];
    }
    val = v;
    gb = g;
}

// The same loop hand-vectorized with xsimd: the speed a careful engineer gets by hand.
void hand_simd(const float* x, const float* w, float b, float* gx, float* gw, std::size_t lo, std::size_t hi,
               double& val, double& gb) {
    using B = xsimd::batch<float>;
    B v(0.f), g(0.f);
    const B one(1.f), bb(b);
    std::size_t i = lo;
    for (; i + B::size <= hi; i += B::size) {
        const B xi = B::load_unaligned(x + i), wi = B::load_unaligned(w + i);
        const B t = xsimd::tanh(xsimd::fma(xi, wi, bb));
        const B s = one / (one + xsimd::exp(-xi));
        const B dt = (one - t * t) * s;
        v += t * s;
        g += dt;
        xsimd::fma(dt, wi, t * s * (one - s)).store_unaligned(gx + i);
        (dt * xi).store_unaligned(gw + i);
    }
    double vs = xsimd::hadd(v), gs = xsimd::hadd(g);
    double vt = 0, gt = 0;
    hand_fused(x, w, b, gx, gw, i, hi, vt, gt);
    val = vs + vt;
    gb = gs + gt;
}

template <auto Kernel>
void bm_hand(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    const auto nt = static_cast<std::size_t>(st.range(1));
    data d(n);
    std::vector<float> gx(n), gw(n);
    for (auto _ : st) {
        std::vector<double> v(nt), gb(nt);
        auto part = [&](std::size_t t) {
            Kernel(d.x.data(), d.w.data(), 0.0f, gx.data(), gw.data(), n * t / nt, n * (t + 1) / nt, v[t], gb[t]);
        };
        if (nt == 1) {
            part(0);
        } else {
            std::vector<std::thread> th;
            for (std::size_t t = 1; t < nt; ++t) th.emplace_back(part, t);
            part(0);
            for (auto& t : th) t.join();
        }
        benchmark::DoNotOptimize(v.data());
    }
    set_counters(st, n, bytes_per_elem);
}

// Op by op, as an eager framework runs it: every intermediate is a tensor.
void bm_unfused(benchmark::State& st) {
    const auto n = static_cast<std::size_t>(st.range(0));
    xgrad::set_num_threads(static_cast<std::size_t>(st.range(1)));
    data d(n);
    auto b = xgrad::zeros<float>({1});
    for (auto _ : st) {
        using xgrad::eval;
        auto xw = eval(d.x * d.w);
        auto pre = eval(xw + b);
        auto t = eval(xgrad::tanh(pre));
        auto s = eval(xgrad::sigmoid(d.x));
        auto prod = eval(t * s);
        float v = eval(xgrad::sum(prod)).item();
        // backward, one op at a time
        auto dt = eval(s);                               // d prod / d t, upstream 1
        auto ds = eval(t);                               // d prod / d s
        auto dpre = eval(dt * (1.0f - t * t));           // tanh'
        auto gb = eval(xgrad::sum(dpre)).item();
        auto gw = eval(dpre * d.x);
        auto gx1 = eval(dpre * d.w);
        auto gx2 = eval(ds * s * (1.0f - s));            // sigmoid'
        auto gx = eval(gx1 + gx2);
        benchmark::DoNotOptimize(v);
        benchmark::DoNotOptimize(gb);
        benchmark::DoNotOptimize(gw.data());
        benchmark::DoNotOptimize(gx.data());
    }
    set_counters(st, n, bytes_per_elem);
}

// a = b + s * c over 2^26 floats: 12 bytes per element, the machine's bandwidth ceiling.
void bm_triad(benchmark::State& st) {
    const std::size_t n = std::size_t{1} << 26;
    const auto nt = static_cast<std::size_t>(st.range(0));
    std::vector<float> a(n, 0.f), b(n, 1.f), c(n, 2.f);
    for (auto _ : st) {
        auto part = [&](std::size_t t) {
            const std::size_t lo = n * t / nt, hi = n * (t + 1) / nt;
            float* __restrict pa = a.data();
            const float* __restrict pb = b.data();
            const float* __restrict pc = c.data();
            for (std::size_t i = lo; i < hi; ++i) pa[i] = pb[i] + 3.0f * pc[i];
        };
        std::vector<std::thread> th;
        for (std::size_t t = 1; t < nt; ++t) th.emplace_back(part, t);
        part(0);
        for (auto& t : th) t.join();
        benchmark::ClobberMemory();
    }
    set_counters(st, n, 12.0);
}

void sizes(benchmark::internal::Benchmark* b) {
    for (int lg : {10, 16, 20, 24})
        for (int t : {1, 2}) b->Args({1 << lg, t});
    b->ArgNames({"n", "threads"})->UseRealTime();
}

}  // namespace

BENCHMARK(bm_triad)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_xgrad_fused)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_hand<hand_fused>)->Name("bm_hand_scalar")->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_hand<hand_simd>)->Name("bm_hand_xsimd")->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_unfused)->Apply(sizes)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
