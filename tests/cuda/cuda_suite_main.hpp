#pragma once
// The main() of every CUDA test suite (tests/cuda/test_cuda_*.cu, each defining
// BOOST_TEST_NO_MAIN): without a usable GPU it says why and exits with 77, which ctest reports
// as skipped; with one it names the GPU and runs the suite.
#include <boost/test/unit_test.hpp>

#include <cstdio>

#include <cuda_runtime.h>

namespace cuda_suite {

inline int run(const char* name, int argc, char* argv[]) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        std::printf("%s: skipped, no CUDA device available (%s)\n", name,
                    err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount reports 0 devices");
        return 77;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        std::printf("%s: running on %s (sm_%d%d)\n", name, prop.name, prop.major, prop.minor);
    return boost::unit_test::unit_test_main(&init_unit_test, argc, argv);
}

}  // namespace cuda_suite
