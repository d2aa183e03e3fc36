#pragma once
// Pooling layers over the last two dimensions of {N, C, H, W}, as torch.nn.MaxPool2d,
// AvgPool2d and AdaptiveAvgPool2d (see ops/pool.hpp for windows and gradients). A stride of 0
// means "equal to the kernel", PyTorch's default.
#include "../ops/dense.hpp"
#include "module.hpp"

namespace xgrad::nn {

class max_pool2d : public module<max_pool2d> {
public:
    static constexpr const char* kind = "max_pool2d";
    explicit max_pool2d(size2 kernel_size, size2 stride = 0, size2 padding = 0)
        : kernel_(kernel_size), stride_(stride), padding_(padding) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::max_pool2d(std::forward<X>(x), kernel_, stride_, padding_);
    }
    size2 kernel_size() const { return kernel_; }
    size2 stride() const { return stride_; }  // 0: the kernel size
    size2 padding() const { return padding_; }

private:
    size2 kernel_, stride_, padding_;
};

class avg_pool2d : public module<avg_pool2d> {
public:
    static constexpr const char* kind = "avg_pool2d";
    explicit avg_pool2d(size2 kernel_size, size2 stride = 0, size2 padding = 0, bool count_include_pad = true)
        : kernel_(kernel_size), stride_(stride), padding_(padding), count_include_pad_(count_include_pad) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::avg_pool2d(std::forward<X>(x), kernel_, stride_, padding_, count_include_pad_);
    }
    size2 kernel_size() const { return kernel_; }
    size2 stride() const { return stride_; }  // 0: the kernel size
    size2 padding() const { return padding_; }
    bool count_include_pad() const { return count_include_pad_; }

private:
    size2 kernel_, stride_, padding_;
    bool count_include_pad_;
};

class adaptive_avg_pool2d : public module<adaptive_avg_pool2d> {
public:
    static constexpr const char* kind = "adaptive_avg_pool2d";
    explicit adaptive_avg_pool2d(size2 output_size) : size_(output_size) {}
    template <operand X>
    auto forward(X&& x) {
        return xgrad::adaptive_avg_pool2d(std::forward<X>(x), size_);
    }
    size2 output_size() const { return size_; }

private:
    size2 size_;
};

}  // namespace xgrad::nn
