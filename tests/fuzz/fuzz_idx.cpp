// libFuzzer target: IDX files, plain and gzip (the same parse_idx that read_idx calls).
#include <xgrad/io/idx.hpp>

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    try {
        const auto a = xgrad::io::parse_idx(bytes, "fuzz");
        std::visit([](const auto& t) { (void)t.to_vector(); }, a);  // touch every element
    } catch (const xgrad::error&) {
        // typed rejection is the expected outcome for bad input
    }
    return 0;
}
