#pragma once
// The text format of the PyTorch reference files in tests/data (written by the gen_*_reference.py
// scripts): records of two lines, "<name> <rank> <dims...>" then the values; '#' lines are
// comments. One reader for every test that uses them.
#include <cstddef>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <xgrad/core/tensor.hpp>

namespace xgrad_test {

/// Every record of the reference file at `path`, by name, as float64 tensors.
inline std::map<std::string, xgrad::tensor<double>> read_reference_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("reference file: cannot open " + path);
    std::map<std::string, xgrad::tensor<double>> records;
    std::string header, values;
    while (std::getline(in, header)) {
        if (header.empty() || header[0] == '#') continue;
        if (!std::getline(in, values)) throw std::runtime_error("reference file " + path + ": no values for " + header);
        std::istringstream hs(header), vs(values);
        std::string name;
        std::size_t rank = 0;
        hs >> name >> rank;
        xgrad::shape_t shape(rank);
        for (auto& d : shape) hs >> d;
        if (!hs) throw std::runtime_error("reference file " + path + ": malformed header " + header);
        std::vector<double> v;
        for (double x; vs >> x;) v.push_back(x);
        records.insert_or_assign(name, xgrad::from_vector(v, shape));
    }
    return records;
}

}  // namespace xgrad_test
