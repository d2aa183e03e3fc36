#pragma once
// Helpers for the functional-op tests: PyTorch reference values from
// tests/data/functional_reference.txt (see gen_functional_reference.py), closeness checks,
// a gradcheck that reports, and exception-message checks.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <xgrad/xgrad.hpp>

#include "reference_file.hpp"

namespace xgrad_test {

/// Named float64 tensors read once from the reference file.
class reference {
public:
    static const reference& get() {
        static const reference r(std::string(XGRAD_TEST_DATA_DIR) + "/functional_reference.txt");
        return r;
    }

    xgrad::tensor<double> operator()(const std::string& name) const {
        auto it = t_.find(name);
        if (it == t_.end()) throw std::runtime_error("reference: no record named " + name);
        return it->second.clone();
    }
    template <class T>
    xgrad::tensor<T> as(const std::string& name) const {
        return (*this)(name).astype<T>();
    }
    xgrad::tensor<std::int64_t> labels(const std::string& name) const { return as<std::int64_t>(name); }

private:
    explicit reference(const std::string& path) : t_(read_reference_file(path)) {}
    std::map<std::string, xgrad::tensor<double>> t_;
};

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

/// gradcheck(f, params) must pass; the report names the first mismatches.
template <class F>
void expect_gradcheck(F&& f, const std::vector<xgrad::parameter<double>>& params, xgrad::rng& gen,
                      const std::string& what) {
    const auto r = xgrad::gradcheck(std::forward<F>(f), params, gen);
    BOOST_TEST(r.ok, what << ": gradcheck failed (max error " << r.max_abs_error << ")\n" << r.report);
    BOOST_TEST(r.checked > 0u, what << ": gradcheck compared nothing");
}

/// f() must throw E whose message contains every one of `parts`.
template <class E, class F>
void check_throws(F&& f, std::initializer_list<std::string> parts) {
    try {
        f();
        BOOST_ERROR("expected an exception mentioning '" << *parts.begin() << "'");
    } catch (const E& e) {
        const std::string msg = e.what();
        for (const auto& p : parts) BOOST_TEST(msg.find(p) != std::string::npos, "message '" << msg << "' lacks '" << p << "'");
    }
}

}  // namespace xgrad_test
