// libFuzzer target: CIFAR-10 binary batches.
#include <xgrad/io/cifar10.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    try {
        const auto b = xgrad::io::parse_cifar10(bytes, "fuzz");
        // accepted input must decode to in-range labels and the exact pixels
        for (std::size_t i = 0; i < b.labels.size(); ++i) {
            if (b.labels.data()[i] < 0 || b.labels.data()[i] > 9) std::abort();
            if (b.images.data()[i * 3072 + 3071] != data[i * 3073 + 3073 - 1]) std::abort();
        }
    } catch (const xgrad::error&) {
    }
    return 0;
}
