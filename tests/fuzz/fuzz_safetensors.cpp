// libFuzzer target: safetensors files. Whatever parses must survive a write/read round trip
// with the same names, dtypes, shapes, bytes and metadata.
#include <xgrad/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto bytes = std::as_bytes(std::span(data, size));
    xgrad::io::safetensors_file f;
    try {
        f = xgrad::io::parse_safetensors(bytes, "fuzz");
    } catch (const xgrad::format_error&) {
        return 0;
    }
    // write back with the dtypes read (F16/BF16 values came from halves, so they convert back exactly)
    const auto again = xgrad::io::parse_safetensors(xgrad::io::to_safetensors(f.tensors, f.metadata), "again");
    if (again.tensors.size() != f.tensors.size() || again.metadata != f.metadata) std::abort();
    for (const auto& t : f.tensors) {
        const auto* u = again.find(t.name);
        if (!u || u->dtype != t.dtype || u->value.index() != t.value.index()) std::abort();
        std::visit(
            [&](const auto& a) {
                using T = typename std::remove_cvref_t<decltype(a)>::value_type;
                const auto& b = std::get<xgrad::tensor<T>>(u->value);
                if (a.shape() != b.shape()) std::abort();
                if (a.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) != 0) std::abort();
            },
            t.value);
    }
    return 0;
}
