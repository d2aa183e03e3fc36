// The dense-op suite (tests/device_suite_dense.hpp: matmul, linear and its epilogues, conv2d,
// the cuBLAS GEMM) on an NVIDIA GPU, compiled by nvcc whenever XGRAD_USE_CUDA is on. Without a
// usable GPU it says why and exits with 77, which ctest reports as skipped.
#define BOOST_TEST_MODULE cuda_dense
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

#include "cuda_suite_main.hpp"

namespace device_suite {
// thrust_cpp runs the same kernels and the CPU GEMM on the host, and test_thrust_dense checks
// it against the CPU backend; comparing with it keeps the CPU's SIMD loops out of this build
using reference = xgrad::device::thrust_cpp;
using full = boost::mpl::list<xgrad::device::cuda>;
using subset = boost::mpl::list<xgrad::device::cuda>;
}  // namespace device_suite

#include "../device_suite_dense.hpp"

int main(int argc, char* argv[]) { return cuda_suite::run("test_cuda_dense", argc, argv); }
