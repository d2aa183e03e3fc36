#pragma once
// Reads tests/data/optim_reference.txt (written by tests/data/gen_optim_reference.py): named
// float64 tensors, one record per two lines ("<name> <rank> <dims...>" then the values).
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <xgrad/core/tensor.hpp>

#include "reference_file.hpp"

namespace optim_test {

class reference {
public:
    static const reference& get() {
        static const reference r(std::string(XGRAD_TEST_DATA_DIR) + "/optim_reference.txt");
        return r;
    }
    bool has(const std::string& name) const { return t_.count(name) != 0; }
    /// A fresh copy of the named tensor, converted to T.
    template <class T = double>
    xgrad::tensor<T> at(const std::string& name) const {
        auto it = t_.find(name);
        if (it == t_.end()) throw std::runtime_error("optim_reference: no record named " + name);
        return it->second.astype<T>();
    }

private:
    explicit reference(const std::string& path) : t_(xgrad_test::read_reference_file(path)) {}
    std::map<std::string, xgrad::tensor<double>> t_;
};

/// Checks |a - e| <= rtol |e| + atol elementwise; returns the largest |a - e| / |e|.
template <class T>
double check_close(const xgrad::tensor<T>& a, const xgrad::tensor<double>& e, double rtol, double atol,
                   const std::string& what) {
    BOOST_TEST_REQUIRE(a.shape() == e.shape(), what << ": shape " << xgrad::to_string(a.shape()) << " vs "
                                                    << xgrad::to_string(e.shape()));
    const auto av = a.to_vector();
    const auto ev = e.to_vector();
    double worst = 0;
    int bad = 0;
    for (std::size_t i = 0; i < av.size(); ++i) {
        const double d = std::fabs(static_cast<double>(av[i]) - ev[i]);
        if (ev[i] != 0) worst = std::max(worst, d / std::fabs(ev[i]));
        if (!(d <= rtol * std::fabs(ev[i]) + atol) && bad++ < 3)
            BOOST_ERROR(what << "[" << i << "] = " << static_cast<double>(av[i]) << ", expected " << ev[i]);
    }
    BOOST_TEST(bad == 0, what << ": " << bad << " of " << av.size() << " elements differ");
    return worst;
}

}  // namespace optim_test
