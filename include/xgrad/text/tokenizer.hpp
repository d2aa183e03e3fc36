#pragma once
// A simple word tokenizer: ASCII lower-casing, white-space splitting, and every ASCII
// punctuation character as a token of its own ("Don't!" -> don ' t !).
#include <string>
#include <string_view>
#include <vector>

namespace xgrad::text {

struct tokenizer_options {
    bool lowercase = true;    ///< map A-Z to a-z (bytes >= 0x80, i.e. UTF-8, are kept as they are)
    bool punctuation = true;  ///< keep punctuation characters as tokens; false drops them
};

class tokenizer {
public:
    tokenizer() = default;
    explicit tokenizer(tokenizer_options opt) : opt_(opt) {}

    /// The tokens of `s`, in order. Never throws except std::bad_alloc.
    std::vector<std::string> tokenize(std::string_view s) const {
        std::vector<std::string> out;
        std::string word;
        auto flush = [&] {
            if (!word.empty()) out.push_back(std::move(word));
            word.clear();
        };
        for (const char ch : s) {
            const auto c = static_cast<unsigned char>(ch);
            if (c <= ' ' || c == 0x7f) {  // space, tab, newline, other control bytes
                flush();
            } else if (c < 0x80 && is_punct(c)) {
                flush();
                if (opt_.punctuation) out.emplace_back(1, ch);
            } else {
                word.push_back(opt_.lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
            }
        }
        flush();
        return out;
    }
    std::vector<std::string> operator()(std::string_view s) const { return tokenize(s); }

    const tokenizer_options& options() const noexcept { return opt_; }

private:
    static bool is_punct(unsigned char c) noexcept {
        return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
    }
    tokenizer_options opt_;
};

}  // namespace xgrad::text
