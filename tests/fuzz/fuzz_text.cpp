// libFuzzer target: the text readers. The first byte picks the reader (ARFF, CSV/TSV text
// columns, bzip2) and its options; the rest is the input.
#include <xgrad/io/arff.hpp>
#include <xgrad/io/bz2.hpp>
#include <xgrad/text/text_dataset.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::uint8_t pick = data[0];
    const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    try {
        switch (pick % 3) {
            case 0: {
                const auto t = xgrad::io::parse_arff(in, "fuzz");
                for (std::size_t c = 0; c < t.attributes.size(); ++c) {
                    const auto& a = t.attributes[c];
                    const bool textual = a.type == xgrad::io::arff_type::string || a.type == xgrad::io::arff_type::date;
                    if ((textual ? t.text[c].size() : t.numbers[c].size()) != t.rows) std::abort();
                    if (a.type == xgrad::io::arff_type::nominal)
                        for (double v : t.numbers[c])
                            if (!std::isnan(v) && (v < 0 || v >= static_cast<double>(a.values.size()))) std::abort();
                }
                break;
            }
            case 1: {
                xgrad::text::text_csv_options opt;
                opt.delimiter = (pick & 4) ? '\t' : ',';
                opt.header = pick & 8;
                if (pick & 16) opt.classes = {"neg", "pos"};
                opt.skip_other_labels = pick & 32;
                if (pick & 64) opt.text_column = std::string("text");
                const auto t = xgrad::text::parse_text_csv(in, "fuzz", opt);
                if (t.texts.size() != t.labels.size()) std::abort();
                for (auto l : t.labels)
                    if (l < 0 || (!opt.classes.empty() && l > 1)) std::abort();
                break;
            }
            default: {
                const auto out = xgrad::io::bunzip2(std::as_bytes(std::span(in.data(), in.size())), "fuzz", 1 << 20);
                if (out.size() > (1u << 20)) std::abort();
                break;
            }
        }
    } catch (const xgrad::error&) {
    }
    return 0;
}
