#pragma once
// Helpers shared by the unit tests: the message of an expected exception, substring checks,
// elementwise comparison with float64 references and its tolerances.
#include <cmath>
#include <string>
#include <type_traits>

#include <boost/test/unit_test.hpp>

#include <xgrad/core/error.hpp>
#include <xgrad/core/tensor.hpp>

namespace xgrad_test {

/// The message of the E that `f` throws; fails the test if it throws nothing.
template <class E = xgrad::format_error, class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    BOOST_FAIL("expected an exception");
    return {};
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// |actual - expected| <= atol + rtol |expected| for every element, with equal shapes.
template <class T>
void check_close(const xgrad::tensor<T>& actual, const xgrad::tensor<double>& expected, double rtol, double atol,
                 const std::string& what) {
    BOOST_TEST_REQUIRE(actual.shape() == expected.shape(), what << ": shape " << xgrad::to_string(actual.shape())
                                                                << " vs expected " << xgrad::to_string(expected.shape()));
    const auto a = actual.to_vector();
    const auto e = expected.to_vector();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - e[i]);
        if (!(d <= atol + rtol * std::fabs(e[i])) && bad++ < 3)
            BOOST_ERROR(what << ": element " << i << " is " << static_cast<double>(a[i]) << ", expected " << e[i]);
    }
    BOOST_TEST(bad == 0u, what << ": " << bad << " of " << a.size() << " elements differ");
}

/// Tolerances for comparing against float64 references: tight in double, float-sized in float.
template <class T>
constexpr double rtol_for() {
    return std::is_same_v<T, double> ? 1e-10 : 2e-5;
}
template <class T>
constexpr double atol_for() {
    return std::is_same_v<T, double> ? 1e-12 : 2e-6;
}

}  // namespace xgrad_test
