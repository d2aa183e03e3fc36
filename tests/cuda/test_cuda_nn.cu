// The barrier-op device suite (tests/device_suite_nn.hpp) on an NVIDIA GPU, compiled by nvcc
// whenever XGRAD_USE_CUDA is on. Without a usable GPU it says why and exits with 77, which
// ctest reports as skipped.
#define BOOST_TEST_MODULE cuda_nn
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

#include "cuda_suite_main.hpp"

namespace nn_suite {
// thrust_cpp: the device code path on the host, checked against the CPU backend by
// test_thrust_nn; comparing with it keeps the CPU's SIMD loops out of this nvcc build
using reference = xgrad::device::thrust_cpp;
using full = boost::mpl::list<xgrad::device::cuda>;
using subset = boost::mpl::list<xgrad::device::cuda>;
}  // namespace nn_suite

#include "../device_suite_nn.hpp"

int main(int argc, char* argv[]) { return cuda_suite::run("test_cuda_nn", argc, argv); }
