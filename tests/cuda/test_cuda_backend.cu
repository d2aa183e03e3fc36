// The device suite on an NVIDIA GPU (xgrad::device::cuda), compiled by nvcc whenever
// XGRAD_USE_CUDA is on. Without a usable GPU it says why and exits with 77, which ctest
// reports as skipped; with one it runs every check of tests/device_backend_suite.hpp.
#define BOOST_TEST_MODULE cuda_backend
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

#include "cuda_suite_main.hpp"

namespace device_suite {
// thrust_cpp: the device code path on the host, checked against the CPU backend by
// test_thrust_backend; comparing with it keeps the CPU's SIMD loops out of this nvcc build
using reference = xgrad::device::thrust_cpp;
using full = boost::mpl::list<xgrad::device::cuda>;
using subset = boost::mpl::list<xgrad::device::cuda>;
}  // namespace device_suite

#include "../device_backend_suite.hpp"

int main(int argc, char* argv[]) { return cuda_suite::run("test_cuda_backend", argc, argv); }
