// xgrad's side of the LSTM peer benchmark (benchmarks/peers/lstm.sh runs it next to PyTorch):
// one nn::lstm layer, batch 64, sequence 50, input 128, hidden 256, float32, time-major;
// forward + backward (gradients of the input and of every weight) against a fixed random
// upstream gradient. Prints one line: "xgrad lstm threads=N median_ms=... min_ms=...".
// --clock cpu times the calling thread's CPU time instead of the wall clock: on a machine shared
// with other jobs it counts the work done, not the time spent waiting for a core (at 1 thread
// all the work runs on the calling thread).
//
//   bench_lstm [--threads N] [--warmup 3] [--reps 15] [--kind lstm|gru] [--gemm blas|builtin] [--clock wall|cpu]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/xgrad.hpp>

bool cpu_clock = false;

double now_ms() {
    if (cpu_clock) {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class M>
double run(M& m, std::size_t warmup, std::size_t reps, double& best) {
    xgrad::rng gen(1);
    constexpr std::size_t Tn = 50, B = 64, I = 128, H = 256;
    auto x = xgrad::param(xgrad::randn<float>({Tn, B, I}, gen));
    const auto g = xgrad::randn<float>({Tn, B, H}, gen);
    auto ps = m.parameters();
    auto step = [&] {
        x.zero_grad();
        for (auto& p : ps) p.zero_grad();
        xgrad::backward(m(x).output, g);
    };
    for (std::size_t i = 0; i < warmup; ++i) step();
    std::vector<double> ms;
    for (std::size_t i = 0; i < reps; ++i) {
        const double t0 = now_ms();
        step();
        ms.push_back(now_ms() - t0);
    }
    std::sort(ms.begin(), ms.end());
    best = ms.front();
    return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
    std::size_t threads = 1, warmup = 3, reps = 15;
    std::string kind = "lstm";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--threads") threads = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--warmup") warmup = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--reps") reps = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--kind") kind = argv[i + 1];
        else if (a == "--clock") cpu_clock = std::string(argv[i + 1]) == "cpu";
        else if (a == "--gemm") xgrad::set_gemm_backend(std::string(argv[i + 1]) == "builtin" ? xgrad::gemm_backend::builtin
                                                                                            : xgrad::gemm_backend::blas);
        else {
            std::fprintf(stderr, "usage: bench_lstm [--threads N] [--warmup N] [--reps N] [--kind lstm|gru] [--gemm blas|builtin] [--clock wall|cpu]\n");
            return 2;
        }
    }
    xgrad::set_num_threads(threads);
    double best = 0, med = 0;
    if (kind == "gru") {
        xgrad::nn::gru<float> m(128, 256);
        med = run(m, warmup, reps, best);
    } else {
        xgrad::nn::lstm<float> m(128, 256);
        med = run(m, warmup, reps, best);
    }
    std::printf("xgrad %s threads=%zu median_ms=%.3f min_ms=%.3f\n", kind.c_str(), threads, med, best);
}
