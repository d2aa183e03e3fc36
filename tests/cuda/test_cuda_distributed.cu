// xgrad::distributed with NCCL on xgrad::device::cuda, compiled by nvcc when the target
// xgrad::nccl exists. Without a usable GPU it says why and exits with 77 (ctest: skipped);
// ctest runs it as one rank. `mpiexec -np N test_cuda_distributed` runs it on N ranks when the
// machine has at least N GPUs (fewer GPUs than ranks on a machine: skipped with 77 as well).
// Checked: an allreduce of known buffers gives the known sum and mean; the reducer averages
// known gradients, a gradient missing on some ranks is averaged with zeros and one missing on
// every rank stays missing; broadcast gives every rank rank 0's parameters; after N
// distributed Adam steps the parameters are bit-identical on every rank and equal a
// single-process run on the global batch.
#define BOOST_TEST_MODULE cuda_distributed
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <xgrad/device.hpp>
#include <xgrad/distributed.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim/adam.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "../distributed_check.hpp"
#include "cuda_suite_main.hpp"

#ifndef XGRAD_HAVE_NCCL
#error "test_cuda_distributed needs the CMake target xgrad::nccl"
#endif

namespace nn = xgrad::nn;
namespace dist = xgrad::distributed;
using gpu = xgrad::device::cuda;
template <class T>
using dtensor = xgrad::tensor<T, gpu>;
using distributed_check::flat;
using distributed_check::identical_on_all_ranks;
using distributed_check::mlp;

namespace {

}  // namespace

BOOST_AUTO_TEST_CASE(communicator_uses_this_ranks_gpu) {
    auto comm = dist::nccl_communicator::world();
    int count = 0, current = -1;
    cudaGetDeviceCount(&count);
    cudaGetDevice(&current);
    BOOST_TEST(comm->device() == dist::local_rank() % count);
    BOOST_TEST(current == comm->device());
    BOOST_TEST(comm->rank() == dist::rank());
    BOOST_TEST(comm->size() == dist::size());
    BOOST_TEST((dist::nccl_communicator::world() == comm));  // one per process while held
}

BOOST_AUTO_TEST_CASE(allreduce_of_known_buffers_gives_the_known_sum_and_mean) {
    auto comm = dist::nccl_communicator::world();
    const double n = dist::size(), r = dist::rank();
    const std::size_t len = 1000;
    std::vector<double> mine(len);
    for (std::size_t i = 0; i < len; ++i) mine[i] = (r + 1) * static_cast<double>(i);  // rank r: (r+1) i
    auto h = xgrad::tensor<double>::uninitialized({len});
    std::memcpy(h.data(), mine.data(), len * sizeof(double));
    const auto sum = xgrad::to<gpu>(h);
    const auto mean = xgrad::to<gpu>(h);
    comm->allreduce(sum, false);
    comm->allreduce(mean, true);
    const auto s = sum.to_vector(), m = mean.to_vector();
    for (std::size_t i = 0; i < len; ++i) {
        const double k = static_cast<double>(i);
        BOOST_TEST(s[i] == k * n * (n + 1) / 2);  // sum_r (r+1) k, exact in double
        BOOST_TEST(std::abs(m[i] - k * (n + 1) / 2) <= 1e-12 * k * n);
    }
    const auto strided = xgrad::zeros<double, gpu>({4, 4}).t();
    BOOST_CHECK_THROW(comm->allreduce(strided), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(reducer_averages_known_gradients_in_buckets) {
    const float n = static_cast<float>(dist::size());
    auto a = xgrad::param(xgrad::ones<float, gpu>({4}), "a");
    auto b = xgrad::param(xgrad::ones<float, gpu>({3}), "b");
    auto c = xgrad::param(xgrad::ones<float, gpu>({2}), "c");
    auto frozen = xgrad::param(xgrad::ones<float, gpu>({2}), "frozen");
    frozen.requires_grad(false);
    dist::gradient_reducer<float, gpu> red({a, b, c, frozen}, {.bucket_bytes = 8});
    BOOST_TEST(red.num_buckets() == 3u);  // c, b, a: reverse order, one each
    BOOST_TEST(red.bucket_parameters(0)[0].name() == "c");
    for (int round = 0; round < 2; ++round) {  // the second round reuses the buffers
        a.zero_grad();
        b.zero_grad();
        c.zero_grad();
        if (dist::rank() == 0) xgrad::backward(xgrad::sum(a * 3.f));  // only rank 0 reaches a
        xgrad::backward(xgrad::sum(b * static_cast<float>(dist::rank() + 1)));
        red.reduce();
        const float mean_b = (n + 1) / 2;  // (1 + 2 + ... + n) / n
        for (float v : a.grad().to_vector()) BOOST_TEST(v == 3.f / n, boost::test_tools::tolerance(1e-6f));
        for (float v : b.grad().to_vector()) BOOST_TEST(v == mean_b, boost::test_tools::tolerance(1e-6f));
        BOOST_TEST(!a.state().grad_zero);
        BOOST_TEST(c.state().grad_zero);  // nobody: an optimizer skips it on every rank
    }
    dist::gradient_reducer<float, gpu> sum({b}, {.average = false});
    b.zero_grad();
    xgrad::backward(xgrad::sum(b * 2.f));
    sum.reduce();
    for (float v : b.grad().to_vector()) BOOST_TEST(v == 2.f * n);
    BOOST_CHECK_THROW(red.finish(), xgrad::value_error);
    red.start();
    BOOST_CHECK_THROW(red.start(), xgrad::value_error);
    red.finish();
    using reducer = dist::gradient_reducer<float, gpu>;
    BOOST_CHECK_THROW(reducer({a, a}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(broadcast_gives_every_rank_rank0s_parameters) {
    mlp<gpu> model(100 + static_cast<std::uint64_t>(dist::rank()));  // different on each rank
    mlp<gpu> rank0(100);
    dist::gradient_reducer<float, gpu> red(model.parameters(), {.bucket_bytes = 200});
    BOOST_TEST(red.num_buckets() > 1u);
    red.broadcast_parameters(0);
    BOOST_TEST(identical_on_all_ranks(flat(model)));
    BOOST_TEST(flat(model) == flat(rank0), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ddp_steps_equal_a_single_process_run_on_the_global_batch) {
    const std::size_t local = 6, global = local * static_cast<std::size_t>(dist::size());
    xgrad::rng g(77);
    const auto x = xgrad::randn<float>({global, 5}, g);
    auto y = xgrad::tensor<std::int64_t>::uninitialized({global});
    for (std::size_t i = 0; i < global; ++i) y(i) = static_cast<std::int64_t>(g.below(3));
    const auto r = static_cast<std::ptrdiff_t>(dist::rank());
    const auto lo = r * static_cast<std::ptrdiff_t>(local), hi = lo + static_cast<std::ptrdiff_t>(local);
    const auto xs = xgrad::to<gpu>(x.slice(0, lo, hi).contiguous());
    const auto ys = xgrad::to<gpu>(y.slice(0, lo, hi).contiguous());
    const auto xg = xgrad::to<gpu>(x);
    const auto yg = xgrad::to<gpu>(y);

    for (const dist::reducer_options ro : {dist::reducer_options{.bucket_bytes = 64}, dist::reducer_options{}}) {
        distributed_check::check_ddp_matches_single(xg, yg, xs, ys, ro);
    }
}

int main(int argc, char* argv[]) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        std::printf("test_cuda_distributed: skipped, no CUDA device available (%s)\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount reports 0 devices");
        return 77;
    }
    dist::environment env(argc, argv, {.timeout_s = 120});
    const int local_ranks = dist::local_rank_and_size().second;
    if (local_ranks > count) {  // NCCL refuses two ranks on one GPU
        std::printf("test_cuda_distributed: skipped, %d ranks on this machine but %d GPU(s)\n", local_ranks, count);
        return 77;
    }
    return cuda_suite::run("test_cuda_distributed", argc, argv);
}
