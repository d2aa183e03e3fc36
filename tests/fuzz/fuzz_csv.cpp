// libFuzzer target: CSV tables. The first byte picks the options, the rest is the text.
#include <xgrad/io/csv.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t pick = data[0];
    xgrad::io::csv_options opt;
    static constexpr char delims[] = {',', ';', '\t', ' '};
    opt.delimiter = delims[pick & 3];
    opt.header = static_cast<xgrad::io::csv_header>((pick >> 2) % 3);
    if (pick & 0x40)
        opt.label = std::string("label");
    else
        opt.label = static_cast<std::ptrdiff_t>(static_cast<std::int8_t>(pick << 4) >> 6);  // -2..1
    opt.num_classes = (pick & 0x80) ? 10 : 0;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        const auto t = xgrad::io::parse_csv(text, "fuzz", opt);
        if (t.features.shape()[0] != t.labels.size()) std::abort();
        for (auto v : t.labels.to_vector())
            if (v < 0 || (opt.num_classes && v >= 10)) std::abort();
    } catch (const xgrad::error&) {
    }
    return 0;
}
