// The training runs of the training suite (tests/device_suite_train.hpp: fit, an MLP, a small
// CNN) on an NVIDIA GPU against thrust_cpp, compiled by nvcc whenever XGRAD_USE_CUDA is on;
// test_cuda_train.cu compiles the other half. Without a usable GPU it exits with 77 (skipped).
#define BOOST_TEST_MODULE cuda_train_fit
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

#include "cuda_suite_main.hpp"

namespace device_suite {
// thrust_cpp: the device code path on the host, checked against the CPU backend by
// test_thrust_train; it keeps the CPU's SIMD loops out of this nvcc build
using reference = xgrad::device::thrust_cpp;
using full = boost::mpl::list<xgrad::device::cuda>;
using subset = boost::mpl::list<xgrad::device::cuda>;
}  // namespace device_suite

#define XGRAD_TRAIN_SUITE_PART 2
#include "../device_suite_train.hpp"

int main(int argc, char* argv[]) { return cuda_suite::run("test_cuda_train_fit", argc, argv); }
