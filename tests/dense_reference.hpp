#pragma once
// Helpers for the dense-op tests: the PyTorch reference files of tests/data (written by
// tests/data/gen_dense_reference.py) and element-wise comparisons with a readable failure.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <xgrad/xgrad.hpp>
#include <xgrad/ops/dense.hpp>

#include "reference_file.hpp"
#include "test_support.hpp"
#ifndef XGRAD_TEST_DATA_DIR
#define XGRAD_TEST_DATA_DIR "data"
#endif

namespace dense_test {

/// The tensors of one reference file, by "<case>.<name>".
class reference {
public:
    explicit reference(const std::string& file)
        : tensors_(xgrad_test::read_reference_file(std::string(XGRAD_TEST_DATA_DIR) + "/" + file)) {}
    /// A copy of tensor `name` of case `c` (copies: tests may hand it to a parameter).
    xgrad::tensor<double> operator()(const std::string& c, const std::string& name) const {
        auto it = tensors_.find(c + "." + name);
        if (it == tensors_.end()) throw std::runtime_error("reference tensor " + c + "." + name + " is missing");
        return it->second.clone();
    }
    bool has(const std::string& c, const std::string& name) const { return tensors_.count(c + "." + name) > 0; }

private:
    std::map<std::string, xgrad::tensor<double>> tensors_;
};

using xgrad_test::check_close;

/// Tolerances for element type T against float64 references.
template <class T>
constexpr double rtol() {
    return std::is_same_v<T, float> ? 2e-4 : 1e-10;
}
template <class T>
constexpr double atol() {
    return std::is_same_v<T, float> ? 2e-4 : 1e-10;
}

/// Loads the inputs `names` of case c as parameters of type T, runs make(params...), and
/// checks the output and every parameter's gradient of sum(y * up) against the file.
template <class T, class Make>
void run_reference_case(const reference& ref, const std::string& c, const std::vector<std::string>& names,
                        Make&& make) {
    std::vector<xgrad::parameter<T>> ps;
    for (const auto& n : names) ps.push_back(xgrad::param(ref(c, n).template astype<T>()));
    auto y = make(ps);
    check_close(xgrad::eval(y), ref(c, "y"), rtol<T>(), atol<T>(), c + ": output");
    xgrad::backward(y, ref(c, "up").template astype<T>());
    for (std::size_t i = 0; i < names.size(); ++i)
        check_close(ps[i].grad(), ref(c, "d" + names[i]), rtol<T>(), atol<T>(), c + ": gradient of " + names[i]);
}

/// Asserts that `f` throws E whose message contains every string in `parts`.
template <class E, class F>
void check_throws(F&& f, const std::vector<std::string>& parts) {
    bool thrown = false;
    try {
        f();
    } catch (const E& e) {
        thrown = true;
        const std::string msg = e.what();
        for (const auto& p : parts) BOOST_TEST(msg.find(p) != std::string::npos, "'" << p << "' not in: " << msg);
    }
    BOOST_TEST(thrown);
}

/// A gradcheck that reports its mismatches through Boost.Test.
template <class F>
void check_gradients(const std::string& what, F&& f, const std::vector<xgrad::parameter<double>>& ps, xgrad::rng& g) {
    const auto r = xgrad::gradcheck(std::forward<F>(f), ps, g);
    BOOST_TEST(r.ok, what << ": gradcheck failed (max error " << r.max_abs_error << ")\n" << r.report);
    BOOST_TEST(r.checked > 0u);
}

/// Backends to run each case with: the CBLAS one when built in, and always the built-in GEMM.
inline std::vector<xgrad::gemm_backend> gemm_backends() {
    std::vector<xgrad::gemm_backend> v;
    if (xgrad::have_blas()) v.push_back(xgrad::gemm_backend::blas);
    v.push_back(xgrad::gemm_backend::builtin);  // automatic runs one of the two per product
    return v;
}
inline const char* backend_name(xgrad::gemm_backend b) {
    return b == xgrad::gemm_backend::blas ? "blas" : b == xgrad::gemm_backend::builtin ? "builtin" : "automatic";
}

/// Restores the GEMM backend and thread count when a test case ends.
struct settings_guard {
    xgrad::gemm_backend backend = xgrad::get_gemm_backend();
    std::size_t threads = xgrad::num_threads();
    ~settings_guard() {
        xgrad::set_gemm_backend(backend);
        xgrad::set_num_threads(threads);
    }
};

}  // namespace dense_test
