// The training suite (tests/device_suite_train.hpp) on an NVIDIA GPU, compiled by nvcc whenever
// XGRAD_USE_CUDA is on: optimizers, clipping, models, fit and checkpoints on xgrad::device::cuda
// against thrust_cpp. Without a usable GPU it says why and exits with 77 (ctest: skipped).
#define BOOST_TEST_MODULE cuda_train
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

// the other half, the training runs, is test_cuda_train_fit.cu
#define XGRAD_TRAIN_SUITE_PART 1
#include "../device_suite_train.hpp"

int main(int argc, char* argv[]) { return cuda_suite::run("test_cuda_train", argc, argv); }
