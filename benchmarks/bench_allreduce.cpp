// Data-parallel costs on MPI, a plain timed program (run it under mpirun):
//
//   mpirun -np 2 bench_allreduce [--reps N] [--threads N] [--only-overlap]
//
// 1. allreduce: the gradients of 8 equal parameters (1, 16 and 64 MiB in all) reduced by
//    xgrad's gradient_reducer (buckets of 1, 4 and 25 MiB: pack, MPI_Iallreduce per bucket,
//    unpack and average) against one MPI_Allreduce of a flat buffer of the same size. Figures:
//    median time, algorithm bandwidth bytes/t and ring "bus" bandwidth 2(N-1)/N bytes/t.
// 2. step: one training step (forward, backward, optimizer) of the MLP 784-256-128-10 (batch
//    64 per rank, SGD momentum) and of the Keras-style CNN of fashion_mnist_cnn (batch 32 per
//    rank, Adam), with the plain optimizer and with distributed_optimizer; per-rank batch is
//    fixed (weak scaling), so global samples/s = size * batch / step time.
// 3. overlap: the same steps with distributed_optimizer reducing after backward (overlap off)
//    and with the buckets started inside backward (overlap on), with 25 MiB buckets and with
//    buckets of 64 KiB (several per model); the step split into backward() and step() (the
//    wait for the allreduce, unpacking, the update), medians of the slowest rank.
// Every rank uses --threads compute threads (default 1: two ranks on a 2-core machine).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <xgrad/distributed.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;
namespace dist = xgrad::distributed;

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/// Times f() `reps` times after a warm-up, all ranks starting together; returns the median of
/// the slowest rank's times (in seconds).
template <class F>
double timed(int reps, F&& f) {
    f();
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        const auto t0 = clock_type::now();
        f();
        double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        t.push_back(s);
    }
    return median(t);
}

void bench_allreduce(const dist::environment& env, int reps) {
    const int n = env.size();
    const double ring = n > 1 ? 2.0 * (n - 1) / n : 0.0;
    if (env.is_root())
        std::printf("# allreduce on %d ranks: median time, algorithm bandwidth, ring bus bandwidth\n"
                    "%-10s %-22s %10s %10s %10s\n",
                    n, "size", "method", "ms", "GB/s", "bus GB/s");
    for (std::size_t mib : {1u, 16u, 64u}) {
        const std::size_t elems = (mib << 20) / sizeof(float);
        const double bytes = static_cast<double>(elems * sizeof(float));
        auto report = [&](const std::string& method, double s) {
            if (env.is_root())
                std::printf("%-10s %-22s %10.3f %10.2f %10.2f\n", (std::to_string(mib) + " MiB").c_str(),
                            method.c_str(), 1e3 * s, bytes / s / 1e9, ring * bytes / s / 1e9);
        };
        std::vector<float> flat(elems, 1.0f);
        report("flat MPI_Allreduce", timed(reps, [&] {
                   MPI_Allreduce(MPI_IN_PLACE, flat.data(), static_cast<int>(elems), MPI_FLOAT, MPI_SUM,
                                 MPI_COMM_WORLD);
               }));
        std::vector<xgrad::parameter<float>> ps;
        for (int i = 0; i < 8; ++i) ps.push_back(xgrad::param(xgrad::ones<float>({elems / 8})));
        for (std::size_t bucket_mib : {1u, 4u, 25u, 0u}) {  // 0: 25 MiB, blocking MPI_Allreduce per bucket
            const bool nb = bucket_mib != 0;
            dist::gradient_reducer<float> red(
                ps, {.bucket_bytes = (nb ? bucket_mib : 25u) << 20, .non_blocking = nb});
            report((nb ? "buckets of " + std::to_string(bucket_mib) : std::string("blocking, 25")) + " MiB (" +
                       std::to_string(red.num_buckets()) + ")",
                   timed(reps, [&] {
                       for (auto& p : ps) xgrad::backward(xgrad::sum(p));  // a gradient to reduce
                       red.reduce();
                   }));
        }
        // the backward that gives the gradients above, alone (subtract it from the bucketed times)
        report("(gradients only)", timed(reps, [&] {
                   for (auto& p : ps) {
                       p.zero_grad();
                       xgrad::backward(xgrad::sum(p));
                   }
               }));
    }
}

template <class Model, class Opt, class Loss>
double step_time(Model& model, Opt& opt, Loss& loss, const xgrad::tensor<float>& x,
                 const xgrad::tensor<std::int64_t>& y, int reps) {
    return timed(reps, [&] {
        opt.zero_grad();
        xgrad::backward(loss(model(x), y));
        opt.step();
    });
}

struct split_times {
    double total, backward, step;
};

/// Like timed() for a training step, with backward() and step() timed apart.
template <class Model, class Opt, class Loss>
split_times split_step_time(Model& model, Opt& opt, Loss& loss, const xgrad::tensor<float>& x,
                            const xgrad::tensor<std::int64_t>& y, int reps) {
    std::vector<double> tot, bwd, stp;
    for (int r = -1; r < reps; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        const auto t0 = clock_type::now();
        opt.zero_grad();
        xgrad::backward(loss(model(x), y));
        const auto t1 = clock_type::now();
        opt.step();
        const auto t2 = clock_type::now();
        double s[3] = {std::chrono::duration<double>(t2 - t0).count(), std::chrono::duration<double>(t1 - t0).count(),
                       std::chrono::duration<double>(t2 - t1).count()};
        MPI_Allreduce(MPI_IN_PLACE, s, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r < 0) continue;  // warm-up
        tot.push_back(s[0]);
        bwd.push_back(s[1]);
        stp.push_back(s[2]);
    }
    return {median(tot), median(bwd), median(stp)};
}

/// This rank's random batch of `batch` samples of shape `sample`, labels in [0, 10).
std::pair<xgrad::tensor<float>, xgrad::tensor<std::int64_t>> rank_batch(const dist::environment& env, std::size_t batch,
                                                                         xgrad::shape_t sample) {
    xgrad::rng g(1 + static_cast<std::uint64_t>(env.rank()));
    sample.insert(sample.begin(), batch);
    auto x = xgrad::randn<float>(sample, g);
    auto y = xgrad::tensor<std::int64_t>::uninitialized({batch});
    for (std::size_t i = 0; i < batch; ++i) y(i) = static_cast<std::int64_t>(g.below(10));
    return {std::move(x), std::move(y)};
}

/// Overlap off and on, alternating rounds of `reps` steps so that both see the same load.
template <class Model, class MakeOpt>
void bench_overlap(const dist::environment& env, const char* name, Model& model, MakeOpt make_opt, std::size_t batch,
                   xgrad::shape_t sample, int reps) {
    if (env.size() < 2) return;
    const auto data = rank_batch(env, batch, std::move(sample));
    const auto& x = data.first;
    const auto& y = data.second;
    auto loss = [](auto&& out, const xgrad::tensor<std::int64_t>& t) { return xgrad::cross_entropy(out, t); };
    for (std::size_t bucket : {std::size_t{25} << 20, std::size_t{64} << 10}) {
        std::vector<double> a_tot, a_bwd, a_stp, o_tot, o_bwd, o_stp;
        std::size_t buckets = 0;
        std::size_t started = 0, completed = 0;  // in backward, over the overlapped steps
        // one reducer alive at a time: an overlapping one acts in every backward over its parameters
        auto measure = [&](bool overlap) {
            dist::distributed_optimizer opt(make_opt(model.parameters()), {.bucket_bytes = bucket, .overlap = overlap});
            buckets = opt.reducer().num_buckets();
            const auto t = split_step_time(model, opt, loss, x, y, reps);
            if (overlap) {  // what the last step's backward started and finished
                started += opt.reducer().overlapped_last_round().first;
                completed += opt.reducer().overlapped_last_round().second;
            }
            return t;
        };
        for (int round = 0; round < 5; ++round) {
            const auto a = measure(false);
            const auto o = measure(true);
            a_tot.push_back(a.total), a_bwd.push_back(a.backward), a_stp.push_back(a.step);
            o_tot.push_back(o.total), o_bwd.push_back(o.backward), o_stp.push_back(o.step);
        }
        if (env.is_root())
            std::printf("%-4s %zu buckets of %5zu KiB: after backward %8.3f ms (backward %7.3f + step %7.3f), "
                        "overlapped %8.3f ms (backward %7.3f + step %7.3f): %.3fx; per step %.1f buckets started "
                        "in backward, %.1f of them done before step()\n",
                        name, buckets, bucket >> 10, 1e3 * median(a_tot), 1e3 * median(a_bwd),
                        1e3 * median(a_stp), 1e3 * median(o_tot), 1e3 * median(o_bwd), 1e3 * median(o_stp),
                        median(a_tot) / median(o_tot), started / 5.0, completed / 5.0);
    }
}

template <class Model, class MakeOpt>
void bench_step(const dist::environment& env, const char* name, Model& model, MakeOpt make_opt, std::size_t batch,
                xgrad::shape_t sample, int reps) {
    const auto data = rank_batch(env, batch, std::move(sample));
    const auto& x = data.first;
    const auto& y = data.second;
    auto loss = [](auto&& out, const xgrad::tensor<std::int64_t>& t) { return xgrad::cross_entropy(out, t); };
    auto local = make_opt(model.parameters());
    const double plain = step_time(model, local, loss, x, y, reps);
    dist::distributed_optimizer ddp(make_opt(model.parameters()));
    ddp.broadcast_parameters();
    const double with_ddp = step_time(model, ddp, loss, x, y, reps);
    std::size_t bytes = 0;
    for (auto& p : model.parameters()) bytes += p.size() * sizeof(float);
    if (env.is_root())
        std::printf("%-4s %d rank(s), batch %3zu/rank, %8.2f MB grads: step %8.3f ms without allreduce, %8.3f ms "
                    "with (%+.3f ms); %8.0f samples/s global\n",
                    name, env.size(), batch, bytes / 1e6, 1e3 * plain, 1e3 * with_ddp, 1e3 * (with_ddp - plain),
                    static_cast<double>(batch) * env.size() / with_ddp);
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 20;
    std::size_t threads = 1;
    bool only_overlap = false;
    for (int i = 1; i < argc; ++i) {
        const std::string k = argv[i];
        if (k == "--only-overlap") only_overlap = true;
        else if (i + 1 < argc && k == "--reps") reps = std::max(1, std::atoi(argv[++i]));
        else if (i + 1 < argc && k == "--threads") threads = static_cast<std::size_t>(std::max(1, std::atoi(argv[++i])));
    }
    return dist::run(argc, argv, [&](dist::environment& env) {
        xgrad::set_num_threads(threads);
        if (!only_overlap) bench_allreduce(env, reps);
        nn::manual_seed(0);
        auto mlp = nn::sequential(nn::flatten(), nn::linear(784, 256), nn::relu(), nn::linear(256, 128), nn::relu(),
                                  nn::linear(128, 10));
        auto cnn = nn::sequential(nn::conv2d(1, 32, 3), nn::relu(), nn::max_pool2d(2),   //
                                  nn::conv2d(32, 64, 3), nn::relu(), nn::max_pool2d(2),  //
                                  nn::flatten(), nn::linear(64 * 5 * 5, 10));
        auto sgd = [](auto ps) { return xgrad::optim::sgd(std::move(ps), {.lr = 0.01, .momentum = 0.9}); };
        auto adam = [](auto ps) { return xgrad::optim::adam(std::move(ps), {.lr = 1e-3}); };
        if (!only_overlap) {
            if (env.is_root()) std::printf("# training step, %zu thread(s) per rank\n", threads);
            bench_step(env, "mlp", mlp, sgd, 64, {784}, reps);
            bench_step(env, "cnn", cnn, adam, 32, {1, 28, 28}, std::max(3, reps / 4));
        }
        if (env.is_root())
            std::printf("# overlap of the gradient allreduce with backward, %zu thread(s) per rank\n", threads);
        bench_overlap(env, "mlp", mlp, sgd, 64, {784}, reps);
        bench_overlap(env, "cnn", cnn, adam, 32, {1, 28, 28}, std::max(3, reps / 4));
        return 0;
    });
}
