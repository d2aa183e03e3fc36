#define BOOST_TEST_MODULE thrust_train_fit
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

// The training runs of the training suite (fit, an MLP, a small CNN) on thrust_omp against the
// CPU backend; test_thrust_train compiles the other half. Small loops run in several lanes, as
// there.
namespace device_suite {
using reference = xgrad::device::cpu;
using full = boost::mpl::list<xgrad::device::thrust_omp>;
using subset = boost::mpl::list<xgrad::device::thrust_omp, xgrad::device::thrust_cpp>;

struct many_lanes {
    many_lanes() { xgrad::detail::thrust_backend::host_parallel_grain() = 1; }
};
BOOST_TEST_GLOBAL_FIXTURE(many_lanes);
}  // namespace device_suite

#define XGRAD_TRAIN_SUITE_PART 2
#include "device_suite_train.hpp"
