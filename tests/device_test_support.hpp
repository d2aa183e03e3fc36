#pragma once
// What every device test suite (device_backend_suite.hpp, device_suite_nn.hpp,
// device_suite_dense.hpp, device_suite_train.hpp) needs to compare a device with its reference:
// a device tensor's elements on the host, and an elementwise closeness check.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include <xgrad/device.hpp>

namespace device_test {

/// The elements of a tensor on any device, copied to the host.
template <class T, class D>
std::vector<T> host(const xgrad::tensor<T, D>& t) {
    return xgrad::to<xgrad::device::cpu>(t).to_vector();
}

/// |got - want| <= atol + rtol |want| elementwise, NaN exactly where NaN is wanted; reports the
/// first five differing elements and how many differ.
template <class T>
void expect_close(const std::vector<T>& got, const std::vector<T>& want, const std::string& what, double rtol = 1e-5,
                  double atol = 1e-6) {
    BOOST_TEST_INFO(what);
    BOOST_TEST_REQUIRE(got.size() == want.size());
    int bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        const bool ok = std::isnan(w) ? std::isnan(g) : std::abs(g - w) <= atol + rtol * std::abs(w);
        if (!ok && bad++ < 5) BOOST_ERROR(what << ": element " << i << " is " << g << ", want " << w);
    }
    if (bad > 5) BOOST_ERROR(what << ": " << bad << " elements differ");
}

}  // namespace device_test
