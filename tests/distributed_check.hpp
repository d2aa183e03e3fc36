#pragma once
// What the CPU (MPI) and CUDA (NCCL) distributed suites share: a small model on any device,
// its parameters as one host vector, a byte-for-byte comparison across ranks, and the check
// that N data-parallel Adam steps equal a single-process run on the global batch.
// Include after <boost/test/unit_test.hpp>, <xgrad/distributed.hpp> and the device headers.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/ops/loss.hpp>
#include <xgrad/optim/adam.hpp>

namespace distributed_check {

namespace nn = xgrad::nn;
namespace dist = xgrad::distributed;

/// 5 -> 16 -> 3 with tanh on Device; every rank draws the same values from `seed`.
template <class Device = xgrad::device::cpu>
struct mlp : nn::module<mlp<Device>> {
    xgrad::parameter<float, Device> w1, b1, w2, b2;
    explicit mlp(std::uint64_t seed) {
        xgrad::rng g(seed);
        w1 = xgrad::param(xgrad::to<Device>(xgrad::randn<float>({16, 5}, g, 0.f, 0.5f)));
        b1 = xgrad::param(xgrad::to<Device>(xgrad::randn<float>({16}, g, 0.f, 0.1f)));
        w2 = xgrad::param(xgrad::to<Device>(xgrad::randn<float>({3, 16}, g, 0.f, 0.3f)));
        b2 = xgrad::param(xgrad::zeros<float, Device>({3}));
    }
    template <class X>
    auto forward(X&& x) {
        return xgrad::linear(xgrad::tanh(xgrad::linear(std::forward<X>(x), w1, b1)), w2, b2);
    }
    XGRAD_MODULE(w1, b1, w2, b2)
};

template <class Device>
std::vector<float> flat(mlp<Device>& m) {
    std::vector<float> v;
    for (auto& p : m.parameters())
        for (float f : p.value().to_vector()) v.push_back(f);
    return v;
}

/// Every rank's copy of `v` (rank-major).
template <class T>
std::vector<T> gather(const std::vector<T>& v) {
    std::vector<T> all(v.size() * static_cast<std::size_t>(dist::size()));
    MPI_Allgather(v.data(), static_cast<int>(v.size() * sizeof(T)), MPI_BYTE, all.data(),
                  static_cast<int>(v.size() * sizeof(T)), MPI_BYTE, MPI_COMM_WORLD);
    return all;
}

/// True when every rank holds exactly the same bytes.
inline bool identical_on_all_ranks(const std::vector<float>& v) {
    const auto all = gather(v);
    for (int r = 1; r < dist::size(); ++r)
        if (std::memcmp(all.data(), all.data() + static_cast<std::size_t>(r) * v.size(), v.size() * sizeof(float)))
            return false;
    return true;
}

/// Six Adam steps of a distributed_optimizer (reducer options `ro`) on this rank's shard
/// (xs, ys) against six steps of a plain one on the global batch (x, y): the parameters must
/// be bit-identical on every rank, equal the single-process ones within float reordering, and
/// differ from the untrained ones.
template <class Device>
void check_ddp_matches_single(const xgrad::tensor<float, Device>& x, const xgrad::tensor<std::int64_t, Device>& y,
                              const xgrad::tensor<float, Device>& xs, const xgrad::tensor<std::int64_t, Device>& ys,
                              const dist::reducer_options& ro) {
    mlp<Device> single(5), ddp(5 + static_cast<std::uint64_t>(dist::rank()));
    xgrad::optim::adam<float, Device> ref_opt(single.parameters(), {.lr = 0.05});
    dist::distributed_optimizer opt(xgrad::optim::adam<float, Device>(ddp.parameters(), {.lr = 0.05}), ro);
    opt.broadcast_parameters();
    for (int step = 0; step < 6; ++step) {
        ref_opt.zero_grad();
        xgrad::backward(xgrad::cross_entropy(single(x), y));
        ref_opt.step();
        opt.zero_grad();
        xgrad::backward(xgrad::cross_entropy(ddp(xs), ys));
        opt.step();
    }
    const auto mine = flat(ddp), want = flat(single);
    BOOST_TEST(identical_on_all_ranks(mine));
    BOOST_TEST_REQUIRE(mine.size() == want.size());
    // float sums in another order: |difference| <= 1e-6 + 1e-4 |value| (Adam divides by
    // sqrt(v), which magnifies rounding in the smallest gradients)
    for (std::size_t i = 0; i < mine.size(); ++i)
        BOOST_TEST(std::abs(mine[i] - want[i]) <= 1e-6f + 1e-4f * std::abs(want[i]),
                   "parameter element " << i << ": " << mine[i] << " vs " << want[i]);
    mlp<Device> untrained(5);
    BOOST_TEST(mine != flat(untrained));  // it did train
}

}  // namespace distributed_check
