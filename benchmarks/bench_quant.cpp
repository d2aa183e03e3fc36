// int8 inference against float32, side by side in one run:
//
//   gemm_f32/<threads>      the float32 GEMM (xgrad::matmul, backend/cpu/gemm.hpp) 1024 x 1024 x 1024
//   gemm_int8/<threads>     the int8 GEMM (uint8 x int8 -> int32, backend/cpu/gemm_int8.hpp), same size
//   linear_f32/<threads>    nn::linear 1024 -> 1024 on a batch of 1024 (GEMM + bias)
//   linear_int8/<threads>   quant::quantized_linear of it: quantizing the input (min/max, round),
//                           int8 GEMM, dequantizing + bias in the store
//   mlp_f32/<threads>       MLP 784-512-512-10 (relu) inference on a batch of 256
//   mlp_int8/<threads>      quant::quantize_dynamic of it
//
// Each pair runs in the same process, one after the other, and the end of the run prints the
// ratio float time / int8 time for each pair (wall time and the CPU time of all threads: the
// machine is shared, the CPU time says what the work costs).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/nn/quantized.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;
namespace quant = xgrad::quant;

namespace {

constexpr std::size_t n = 1024;

void ops(benchmark::State& s, double per_iter) {
    s.counters["GOP/s"] = benchmark::Counter(per_iter * static_cast<double>(s.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void gemm_f32(benchmark::State& s) {
    xgrad::set_num_threads(static_cast<std::size_t>(s.range(0)));
    xgrad::rng g(1);
    auto a = xgrad::randn<float>({n, n}, g), b = xgrad::randn<float>({n, n}, g);
    for (auto _ : s) {
        auto y = xgrad::matmul(a, b).forward_value();
        benchmark::DoNotOptimize(y.data());
    }
    ops(s, 2.0 * n * n * n);
}

void gemm_int8(benchmark::State& s) {
    const auto threads = static_cast<std::size_t>(s.range(0));
    std::vector<std::uint8_t> a(n * n);
    std::vector<std::int8_t> b(n * n);
    for (std::size_t i = 0; i < a.size(); ++i) {
        a[i] = static_cast<std::uint8_t>(i * 7 % 256);
        b[i] = static_cast<std::int8_t>(static_cast<int>(i * 13 % 255) - 127);
    }
    quant::packed_int8_weights w(b.data(), n, n);
    std::vector<std::int32_t> c(n * n);
    for (auto _ : s) {
        quant::int8_gemm(a.data(), n, w, {.c32 = c.data()}, threads);
        benchmark::DoNotOptimize(c.data());
    }
    ops(s, 2.0 * n * n * n);
}

void linear_f32(benchmark::State& s) {
    xgrad::set_num_threads(static_cast<std::size_t>(s.range(0)));
    nn::manual_seed(1);
    nn::linear fc(n, n);
    xgrad::rng g(2);
    auto x = xgrad::randn<float>({n, n}, g);
    for (auto _ : s) {
        auto y = xgrad::eval(fc(x));
        benchmark::DoNotOptimize(y.data());
    }
    ops(s, 2.0 * n * n * n);
}

void linear_int8(benchmark::State& s) {
    xgrad::set_num_threads(static_cast<std::size_t>(s.range(0)));
    nn::manual_seed(1);
    nn::linear fc(n, n);
    quant::quantized_linear q(fc);
    xgrad::rng g(2);
    auto x = xgrad::randn<float>({n, n}, g);
    for (auto _ : s) {
        auto y = q(x);
        benchmark::DoNotOptimize(y.data());
    }
    ops(s, 2.0 * n * n * n);
}

auto make_mlp() {
    nn::manual_seed(3);
    return nn::sequential(nn::linear(784, 512), nn::relu(), nn::linear(512, 512), nn::relu(), nn::linear(512, 10));
}
constexpr double mlp_ops = 2.0 * 256 * (784 * 512 + 512 * 512 + 512 * 10);

void mlp_f32(benchmark::State& s) {
    xgrad::set_num_threads(static_cast<std::size_t>(s.range(0)));
    auto m = make_mlp();
    nn::eval(m);
    xgrad::rng g(4);
    auto x = xgrad::randn<float>({256, 784}, g);
    for (auto _ : s) {
        auto y = xgrad::eval(m(x));
        benchmark::DoNotOptimize(y.data());
    }
    ops(s, mlp_ops);
}

void mlp_int8(benchmark::State& s) {
    xgrad::set_num_threads(static_cast<std::size_t>(s.range(0)));
    auto m = make_mlp();
    auto q = quant::quantize_dynamic(m);
    xgrad::rng g(4);
    auto x = xgrad::randn<float>({256, 784}, g);
    for (auto _ : s) {
        auto y = xgrad::eval(q(x));
        benchmark::DoNotOptimize(y.data());
    }
    ops(s, mlp_ops);
}

/// The console output, plus the time per iteration of every run for the ratios at the end.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    std::map<std::string, std::pair<double, double>> seconds;  // name -> {wall, cpu} per iteration
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        for (auto& r : runs)
            if (!r.error_occurred && r.run_type == Run::RT_Iteration && r.iterations > 0)
                seconds[r.benchmark_name()] = {r.real_accumulated_time / static_cast<double>(r.iterations),
                                               r.cpu_accumulated_time / static_cast<double>(r.iterations)};
    }
};

}  // namespace

BENCHMARK(gemm_f32)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(gemm_int8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(linear_f32)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(linear_int8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(mlp_f32)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();
BENCHMARK(mlp_int8)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->MeasureProcessCPUTime()->UseRealTime();

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    ratio_reporter rep;
    benchmark::RunSpecifiedBenchmarks(&rep);
    std::printf("\nint8 kernel: %s\nspeed-up of int8 over float32 (float time / int8 time):\n",
                quant::int8_gemm_uses_vnni() ? "AVX-512 VNNI (vpdpbusd)" : "portable");
    for (const char* pair : {"gemm", "linear", "mlp"})
        for (const char* t : {"1", "2"}) {
            const std::string f = std::string(pair) + "_f32/" + t + "/process_time/real_time";
            const std::string q = std::string(pair) + "_int8/" + t + "/process_time/real_time";
            if (!rep.seconds.count(f) || !rep.seconds.count(q)) continue;
            const auto [fw, fc] = rep.seconds[f];
            const auto [qw, qc] = rep.seconds[q];
            std::printf("  %-7s %s thread(s): %.2fx wall, %.2fx CPU time\n", pair, t, fw / qw, fc / qc);
        }
    benchmark::Shutdown();
    return 0;
}
