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
#include "test_support.hpp"

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
