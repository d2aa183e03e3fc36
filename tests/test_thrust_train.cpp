#define BOOST_TEST_MODULE thrust_train
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

// The training suite on Thrust's host systems against the CPU backend: every check on
// thrust_omp, the core ones on thrust_cpp too. As in test_thrust_backend, small loops are split
// into several lanes (ctest sets OMP_NUM_THREADS=3) so that the partial copies are exercised.
namespace device_suite {
using reference = xgrad::device::cpu;
using full = boost::mpl::list<xgrad::device::thrust_omp>;
using subset = boost::mpl::list<xgrad::device::thrust_omp, xgrad::device::thrust_cpp>;

struct many_lanes {
    many_lanes() { xgrad::detail::thrust_backend::host_parallel_grain() = 1; }
};
BOOST_TEST_GLOBAL_FIXTURE(many_lanes);
}  // namespace device_suite

// the other half, the training runs, is test_thrust_train_fit
#define XGRAD_TRAIN_SUITE_PART 1
#include "device_suite_train.hpp"
