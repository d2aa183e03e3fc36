#pragma once
// Flatten layer, as torch.nn.Flatten: dimensions start_dim..end_dim merged into one (by
// default everything but the batch dimension).
#include "../ops/nn_functional.hpp"
#include "module.hpp"

namespace xgrad::nn {

class flatten : public module<flatten> {
public:
    static constexpr const char* kind = "flatten";
    explicit flatten(std::ptrdiff_t start_dim = 1, std::ptrdiff_t end_dim = -1) : start_(start_dim), end_(end_dim) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::flatten(std::forward<X>(x), start_, end_);
    }
    std::ptrdiff_t start_dim() const { return start_; }
    std::ptrdiff_t end_dim() const { return end_; }

private:
    std::ptrdiff_t start_, end_;
};

}  // namespace xgrad::nn
