#pragma once
// A small, bounded JSON reader and string writer for file headers (safetensors).
// Strict RFC 8259: no comments, no trailing commas, no NaN, UTF-8 checked, duplicate object
// keys rejected, nesting depth bounded so hostile input cannot exhaust the stack.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../core/config.hpp"
#include "../../core/error.hpp"
#include "bytes.hpp"

namespace xgrad::io::detail {

struct json_value {
    enum class kind { null, boolean, number, string, array, object };
    kind type = kind::null;
    bool boolean = false;
    std::string text;               // a string's decoded value, or a number's literal text
    std::vector<json_value> items;  // array elements, or object member values
    std::vector<std::string> keys;  // object member names, parallel to items
    std::size_t offset = 0;         // where the value starts in the document

    bool is(kind k) const noexcept { return type == k; }
    /// The member named `key`, or nullptr.
    const json_value* find(std::string_view key) const noexcept {
        for (std::size_t i = 0; i < keys.size(); ++i)
            if (keys[i] == key) return &items[i];
        return nullptr;
    }
    /// A number literal that is a non-negative integer fitting in 64 bits; false otherwise
    /// (fractions, exponents and signs are not integers here, as in serde's u64).
    bool to_u64(std::uint64_t& out) const noexcept {
        if (type != kind::number || text.empty()) return false;
        std::uint64_t v = 0;
        for (char c : text) {
            if (c < '0' || c > '9') return false;
            const auto d = static_cast<std::uint64_t>(c - '0');
            if (v > (UINT64_MAX - d) / 10) return false;
            v = v * 10 + d;
        }
        out = v;
        return true;
    }
};

inline const char* json_kind_name(json_value::kind k) {
    switch (k) {
        case json_value::kind::null: return "null";
        case json_value::kind::boolean: return "a boolean";
        case json_value::kind::number: return "a number";
        case json_value::kind::string: return "a string";
        case json_value::kind::array: return "an array";
        default: return "an object";
    }
}

/// Parses one JSON document; errors are format_error "name: byte N: reason" where N is
/// `base` plus the offset inside `text` (so messages point into the enclosing file).
class json_parser {
public:
    static constexpr std::size_t max_depth = 64;

    json_parser(std::string_view text, std::size_t base, std::string_view name) : s_(text), base_(base), name_(name) {}

    /// The document's single value; only whitespace may follow it.
    json_value parse() {
        ws();
        json_value v = value(0);
        ws();
        if (i_ != s_.size()) fail(i_, "unexpected text after the JSON value");
        return v;
    }

    [[noreturn]] void fail(std::size_t at, const std::string& what) const {
        throw format_error(at_byte(name_, base_ + at, what));
    }

private:
    int peek() const noexcept { return i_ < s_.size() ? static_cast<unsigned char>(s_[i_]) : -1; }
    void ws() noexcept {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
    }
    void expect(char c, const char* where) {
        if (peek() != static_cast<unsigned char>(c)) fail(i_, std::string("expected '") + c + "' " + where);
        ++i_;
    }

    XGRAD_OUTLINE json_value value(std::size_t depth);

    bool literal(std::string_view word) noexcept {
        if (s_.substr(i_, word.size()) != word) return false;
        i_ += word.size();
        return true;
    }

    static bool digit(int c) noexcept { return c >= '0' && c <= '9'; }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  kept as text; callers convert what they need
    XGRAD_OUTLINE std::string number();

    unsigned hex4() {
        unsigned v = 0;
        for (int k = 0; k < 4; ++k) {
            const int c = peek();
            unsigned d;
            if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
            else fail(i_, "expected four hex digits after \\u");
            v = v * 16 + d;
            ++i_;
        }
        return v;
    }

    static void put_utf8(std::string& out, std::uint32_t cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    // One UTF-8 sequence copied as is; rejects overlong forms, surrogates and > U+10FFFF.
    void utf8_sequence(std::string& out) {
        const std::size_t at = i_;
        const auto b0 = static_cast<unsigned char>(s_[i_]);
        std::size_t len;
        std::uint32_t cp;
        if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1Fu;
        else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0Fu;
        else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07u;
        else fail(at, "invalid UTF-8 in a JSON string");
        if (s_.size() - i_ < len) fail(at, "truncated UTF-8 sequence in a JSON string");
        for (std::size_t k = 1; k < len; ++k) {
            const auto b = static_cast<unsigned char>(s_[i_ + k]);
            if ((b & 0xC0) != 0x80) fail(at, "invalid UTF-8 in a JSON string");
            cp = (cp << 6) | (b & 0x3Fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            fail(at, "invalid UTF-8 in a JSON string");
        out.append(s_.substr(i_, len));
        i_ += len;
    }

    XGRAD_OUTLINE std::string string();

    std::string_view s_;
    std::size_t base_;
    std::string_view name_;
    std::size_t i_ = 0;
};

XGRAD_OUTLINE_DEF std::string json_parser::string() {
    const std::size_t start = i_;
    ++i_;  // opening quote
    std::string out;
    for (;;) {
        const int c = peek();
        if (c < 0) fail(start, "unterminated JSON string");
        if (c == '"') {
            ++i_;
            return out;
        }
        if (c < 0x20) fail(i_, "unescaped control character in a JSON string");
        if (c >= 0x80) {
            utf8_sequence(out);
            continue;
        }
        if (c != '\\') {
            out += static_cast<char>(c);
            ++i_;
            continue;
        }
        const std::size_t esc = i_++;
        switch (peek()) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '/': out += '/'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'n': out += '\n'; break;
            case 'r': out += '\r'; break;
            case 't': out += '\t'; break;
            case 'u': {
                ++i_;
                std::uint32_t cp = hex4();
                if (cp >= 0xDC00 && cp <= 0xDFFF) fail(esc, "unpaired surrogate in a JSON string");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (!literal("\\u")) fail(esc, "unpaired surrogate in a JSON string");
                    const std::uint32_t lo = hex4();
                    if (lo < 0xDC00 || lo > 0xDFFF) fail(esc, "unpaired surrogate in a JSON string");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(out, cp);
                continue;
            }
            default: fail(esc, "invalid escape sequence in a JSON string");
        }
        ++i_;
    }
}
XGRAD_INSTANCE(std::string json_parser::string())

XGRAD_OUTLINE_DEF std::string json_parser::number() {
    const std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
        ++i_;
    } else if (digit(peek())) {
        while (digit(peek())) ++i_;
    } else {
        fail(i_, "malformed JSON number");
    }
    if (peek() == '.') {
        ++i_;
        if (!digit(peek())) fail(i_, "malformed JSON number: digits must follow '.'");
        while (digit(peek())) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
        ++i_;
        if (peek() == '+' || peek() == '-') ++i_;
        if (!digit(peek())) fail(i_, "malformed JSON number: digits must follow the exponent");
        while (digit(peek())) ++i_;
    }
    return std::string(s_.substr(start, i_ - start));
}
XGRAD_INSTANCE(std::string json_parser::number())

XGRAD_OUTLINE_DEF json_value json_parser::value(std::size_t depth) {
    if (depth >= max_depth) fail(i_, "JSON nested deeper than " + std::to_string(max_depth) + " levels");
    json_value v;
    v.offset = i_;
    const int c = peek();
    if (c == '{') {
        v.type = json_value::kind::object;
        ++i_;
        ws();
        if (peek() == '}') {
            ++i_;
            return v;
        }
        for (;;) {
            ws();
            const std::size_t key_at = i_;
            if (peek() != '"') fail(i_, "expected a string key in a JSON object");
            std::string key = string();
            if (v.find(key)) fail(key_at, "duplicate key \"" + key + "\" in a JSON object");
            ws();
            expect(':', "after a key in a JSON object");
            ws();
            v.items.push_back(value(depth + 1));
            v.keys.push_back(std::move(key));
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            expect('}', "or ',' in a JSON object");
            return v;
        }
    }
    if (c == '[') {
        v.type = json_value::kind::array;
        ++i_;
        ws();
        if (peek() == ']') {
            ++i_;
            return v;
        }
        for (;;) {
            ws();
            v.items.push_back(value(depth + 1));
            ws();
            if (peek() == ',') {
                ++i_;
                continue;
            }
            expect(']', "or ',' in a JSON array");
            return v;
        }
    }
    if (c == '"') {
        v.type = json_value::kind::string;
        v.text = string();
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        v.type = json_value::kind::number;
        v.text = number();
        return v;
    }
    if (literal("true")) {
        v.type = json_value::kind::boolean;
        v.boolean = true;
        return v;
    }
    if (literal("false")) {
        v.type = json_value::kind::boolean;
        return v;
    }
    if (literal("null")) return v;
    if (c < 0) fail(i_, "unexpected end of the JSON text");
    fail(i_, "unexpected character in JSON text");
}
XGRAD_INSTANCE(json_value json_parser::value(std::size_t depth))

/// True when `s` is well-formed UTF-8 (what a JSON writer may emit unescaped).
XGRAD_OUTLINE bool valid_utf8(std::string_view s) {
    std::string quoted;
    quoted.reserve(s.size() + 2);
    quoted += '"';
    for (char c : s) {
        // escapes and control characters are irrelevant to UTF-8 validity: blank them out
        quoted += (c == '"' || c == '\\' || (static_cast<unsigned char>(c) < 0x20)) ? ' ' : c;
    }
    quoted += '"';
    try {
        json_parser(quoted, 0, "").parse();
    } catch (const format_error&) {
        return false;
    }
    return true;
}
XGRAD_INSTANCE(bool valid_utf8(std::string_view s))

/// Appends `s` as a JSON string literal (quotes, escapes for '"', '\\' and control characters).
XGRAD_OUTLINE void json_append_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += ch;
        }
    }
    out += '"';
}
XGRAD_INSTANCE(void json_append_string(std::string& out, std::string_view s))

}  // namespace xgrad::io::detail
