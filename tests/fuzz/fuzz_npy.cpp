// libFuzzer target: .npy files. Whatever parses must survive a write/read round trip.
#include <xgrad/io/npy.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    try {
        const auto a = xgrad::io::parse_npy(bytes, "fuzz");
        std::visit(
            [](const auto& t) {
                using T = typename std::remove_cvref_t<decltype(t)>::value_type;
                const auto again = std::get<xgrad::tensor<T>>(xgrad::io::parse_npy(xgrad::io::to_npy(t), "again"));
                if (again.shape() != t.shape()) std::abort();
                if (t.size() && std::memcmp(again.data(), t.data(), t.size() * sizeof(T)) != 0) std::abort();
            },
            a);
    } catch (const xgrad::error&) {
    }
    return 0;
}
