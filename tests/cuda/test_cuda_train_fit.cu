// The training runs of the training suite (tests/device_suite_train.hpp: fit, an MLP, a small
// CNN) on an NVIDIA GPU against thrust_cpp, compiled by nvcc whenever XGRAD_USE_CUDA is on;
// test_cuda_train.cu compiles the other half. Without a usable GPU it exits with 77 (skipped).
#define BOOST_TEST_MODULE cuda_train_fit
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <cstdio>

#include <boost/mpl/list.hpp>
#include <cuda_runtime.h>

#include <xgrad/device.hpp>

namespace device_suite {
// thrust_cpp: the device code path on the host, checked against the CPU backend by
// test_thrust_train; it keeps the CPU's SIMD loops out of this nvcc build
using reference = xgrad::device::thrust_cpp;
using full = boost::mpl::list<xgrad::device::cuda>;
using subset = boost::mpl::list<xgrad::device::cuda>;
}  // namespace device_suite

#define XGRAD_TRAIN_SUITE_PART 2
#include "../device_suite_train.hpp"

int main(int argc, char* argv[]) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        std::printf("test_cuda_train_fit: skipped, no CUDA device available (%s)\n",
                    err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount reports 0 devices");
        return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::printf("test_cuda_train_fit: running on %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
    return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}
