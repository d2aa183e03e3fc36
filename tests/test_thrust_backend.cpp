#define BOOST_TEST_MODULE thrust_backend
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

// The device suite on Thrust's host systems: every check on thrust_omp, the core ones on
// thrust_cpp too. Lanes are forced down to one element of grain so that even small loops run
// in several lanes (ctest sets OMP_NUM_THREADS=3) and exercise the partial copies.
namespace device_suite {
using reference = xgrad::device::cpu;
using full = boost::mpl::list<xgrad::device::thrust_omp>;
using subset = boost::mpl::list<xgrad::device::thrust_omp, xgrad::device::thrust_cpp>;

struct many_lanes {
    many_lanes() { xgrad::detail::thrust_backend::host_parallel_grain() = 1; }
};
BOOST_TEST_GLOBAL_FIXTURE(many_lanes);
}  // namespace device_suite

#include "device_backend_suite.hpp"

BOOST_AUTO_TEST_CASE(omp_loops_run_in_several_lanes) {
    // ctest sets OMP_NUM_THREADS=3; run by hand with one thread, the partial copies see one lane
    const auto lanes = xgrad::detail::thrust_backend::system<xgrad::device::thrust_omp>::lanes();
    BOOST_TEST_MESSAGE("thrust_omp lanes: " << lanes);
    BOOST_WARN(lanes > 1u);
    BOOST_TEST(xgrad::detail::thrust_backend::system<xgrad::device::thrust_cpp>::lanes() == 1u);
}
