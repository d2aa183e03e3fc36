#pragma once
// A dataset held in memory as two tensors: inputs {N, ...} and labels {N}.
#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "sample.hpp"

namespace xgrad::data {

template <class X>
class tensor_dataset {
public:
    using sample_type = sample<X>;

    tensor_dataset() = default;

    /// Sample i is (inputs[i], labels[i]); shape_error unless both have the same first extent.
    tensor_dataset(tensor<X> inputs, tensor<std::int64_t> labels)
        : inputs_(inputs.contiguous()), labels_(labels.contiguous()) {
        if (inputs_.dim() == 0 || labels_.dim() != 1 || inputs_.shape()[0] != labels_.shape()[0])
            throw shape_error("tensor_dataset: inputs of shape " + to_string(inputs_.shape()) +
                              " and labels of shape " + to_string(labels_.shape()) +
                              " do not describe the same number of samples");
    }

    std::size_t size() const noexcept { return labels_.size(); }

    /// Sample i; its input is a view of the dataset's storage (transforms copy before writing).
    sample_type get(std::size_t i) const {
        if (i >= size())
            throw index_error("tensor_dataset::get: index " + std::to_string(i) + " is out of range for " +
                              std::to_string(size()) + " samples");
        return {inputs_.select(0, static_cast<std::ptrdiff_t>(i)), labels_.data()[i]};
    }
    sample_type get(std::size_t i, rng&) const { return get(i); }

    const tensor<X>& inputs() const noexcept { return inputs_; }
    const tensor<std::int64_t>& labels() const noexcept { return labels_; }

private:
    tensor<X> inputs_;
    tensor<std::int64_t> labels_{shape_t{0}};
};

}  // namespace xgrad::data
