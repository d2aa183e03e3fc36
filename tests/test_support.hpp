#pragma once
// Helpers shared by the unit tests: the message of an expected exception, substring checks.
#include <string>

#include <boost/test/unit_test.hpp>

#include <xgrad/core/error.hpp>

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

}  // namespace xgrad_test
