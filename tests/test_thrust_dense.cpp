#define BOOST_TEST_MODULE thrust_dense
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

// The dense ops (matmul, linear, conv2d) on Thrust's host systems against the CPU backend:
// every check on thrust_omp, the core ones on thrust_cpp too. Small loops are split into
// several lanes (ctest sets OMP_NUM_THREADS=3), as in test_thrust_backend.
namespace device_suite {
using reference = xgrad::device::cpu;
using full = boost::mpl::list<xgrad::device::thrust_omp>;
using subset = boost::mpl::list<xgrad::device::thrust_omp, xgrad::device::thrust_cpp>;

struct many_lanes {
    many_lanes() { xgrad::detail::thrust_backend::host_parallel_grain() = 1; }
};
BOOST_TEST_GLOBAL_FIXTURE(many_lanes);
}  // namespace device_suite

#include "device_suite_dense.hpp"
