#define BOOST_TEST_MODULE thrust_nn
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include <xgrad/device.hpp>

// The barrier-op device suite on Thrust's host systems against the CPU backend: every check
// on thrust_omp, the core ones on thrust_cpp too. The fused engine's loops (batch_norm's
// channel sums) are forced into several lanes even at these small shapes (ctest sets
// OMP_NUM_THREADS=3), so their partial copies are exercised too.
namespace nn_suite {
using reference = xgrad::device::cpu;
using full = boost::mpl::list<xgrad::device::thrust_omp>;
using subset = boost::mpl::list<xgrad::device::thrust_omp, xgrad::device::thrust_cpp>;

struct many_lanes {
    many_lanes() { xgrad::detail::thrust_backend::host_parallel_grain() = 1; }
};
BOOST_TEST_GLOBAL_FIXTURE(many_lanes);
}  // namespace nn_suite

#include "device_suite_nn.hpp"
