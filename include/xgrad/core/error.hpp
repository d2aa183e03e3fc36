#pragma once
// Typed exceptions. Every message names the operation and the offending value.
#include <stdexcept>
#include <string>

namespace xgrad {

/// Base of every exception xgrad throws.
struct error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
/// Shapes that do not fit together (broadcasting, matmul inner dims, reshape sizes).
struct shape_error : error {
    using error::error;
};
/// A bad argument value (negative learning rate, NaN, out-of-range label ...).
struct value_error : error {
    using error::error;
};
/// An axis, index or view range outside the tensor.
struct index_error : error {
    using error::error;
};
/// A device runtime or library (CUDA, cuBLAS) reporting a failure.
struct device_error : error {
    using error::error;
};
/// A file that cannot be opened, read or written.
struct io_error : error {
    using error::error;
};
/// A file whose contents do not follow its format.
struct format_error : error {
    using error::error;
};

}  // namespace xgrad
