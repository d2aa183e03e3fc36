#pragma once
// Weka's ARFF tables: numeric, nominal, string and date attributes, dense rows, '?' for a
// missing value, single- or double-quoted values with backslash escapes (\n \t \' \\ ...),
// '%' comments. Sparse rows ("{3 x, 7 y}") and relational attributes are refused.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "bz2.hpp"
#include "csv.hpp"
#include "detail/bytes.hpp"

namespace xgrad::io {

enum class arff_type { numeric, nominal, string, date };

struct arff_attribute {
    std::string name;
    arff_type type = arff_type::numeric;
    std::vector<std::string> values;  ///< a nominal attribute's values, in declaration order
};

/// A parsed ARFF file, stored by column.
struct arff_table {
    std::string relation;
    std::vector<arff_attribute> attributes;
    std::size_t rows = 0;
    /// Per attribute: numeric value, or the nominal value's index; NaN when missing ('?').
    /// Empty for string and date attributes.
    std::vector<std::vector<double>> numbers;
    /// Per attribute: the text of string and date values ("" when missing). Empty otherwise.
    std::vector<std::vector<std::string>> text;

    /// The index of the attribute named `name` (case-sensitive); value_error if none is.
    std::size_t column(std::string_view name) const {
        for (std::size_t c = 0; c < attributes.size(); ++c)
            if (attributes[c].name == name) return c;
        throw value_error("arff: no attribute is named \"" + std::string(name) + "\" in relation \"" + relation + "\"");
    }

    /// A string or date column; value_error for other types.
    const std::vector<std::string>& strings(std::string_view name) const {
        const std::size_t c = column(name);
        if (attributes[c].type != arff_type::string && attributes[c].type != arff_type::date)
            throw value_error("arff: attribute \"" + std::string(name) + "\" is not a string attribute");
        return text[c];
    }

    /// A nominal column as class indices; value_error for other types or a missing value.
    std::vector<std::int64_t> labels(std::string_view name) const {
        const std::size_t c = column(name);
        if (attributes[c].type != arff_type::nominal)
            throw value_error("arff: attribute \"" + std::string(name) + "\" is not nominal");
        std::vector<std::int64_t> out(rows);
        for (std::size_t r = 0; r < rows; ++r) {
            if (std::isnan(numbers[c][r]))
                throw value_error("arff: attribute \"" + std::string(name) + "\" is missing in data row " +
                                  std::to_string(r + 1));
            out[r] = static_cast<std::int64_t>(numbers[c][r]);
        }
        return out;
    }
};

namespace detail {

/// Reads ARFF tokens from one line at a time.
class arff_lexer {
public:
    arff_lexer(std::string_view line, std::string_view name, std::size_t lineno)
        : s_(line), name_(name), line_(lineno) {}

    void skip_space() {
        while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\r')) ++p_;
    }
    bool at_end() {
        skip_space();
        return p_ >= s_.size() || s_[p_] == '%';
    }
    char peek() {
        skip_space();
        return p_ < s_.size() ? s_[p_] : '\0';
    }
    bool eat(char c) {
        if (peek() != c) return false;
        ++p_;
        return true;
    }
    std::string_view rest() {
        skip_space();
        auto r = s_.substr(p_);
        while (!r.empty() && (r.back() == ' ' || r.back() == '\t' || r.back() == '\r')) r.remove_suffix(1);
        p_ = s_.size();
        return r;
    }

    /// A word or quoted string; bare words stop at white space and at any of `stops`.
    /// `quoted` tells whether it was quoted (so "?" in quotes is not a missing value).
    std::string word(std::string_view stops, bool& quoted) {
        skip_space();
        quoted = false;
        if (p_ >= s_.size()) throw fail("a value is missing at the end of the line");
        const char q = s_[p_];
        std::string out;
        if (q == '\'' || q == '"') {
            quoted = true;
            ++p_;
            for (;;) {
                if (p_ >= s_.size())
                    throw fail(std::string("quoted value is never closed (") + q + " expected)");
                const char c = s_[p_++];
                if (c == q) break;
                if (c != '\\') {
                    out.push_back(c);
                    continue;
                }
                if (p_ >= s_.size()) throw fail("a backslash ends the line inside a quoted value");
                const char e = s_[p_++];
                switch (e) {
                    case 'n': out.push_back('\n'); break;
                    case 'r': out.push_back('\r'); break;
                    case 't': out.push_back('\t'); break;
                    default: out.push_back(e); break;  // \\ \' \" \% and any other: the character itself
                }
            }
            return out;
        }
        const std::size_t start = p_;
        while (p_ < s_.size() && s_[p_] != ' ' && s_[p_] != '\t' && s_[p_] != '\r' &&
               stops.find(s_[p_]) == std::string_view::npos)
            ++p_;
        if (p_ == start) throw fail(std::string("unexpected '") + s_[p_] + "'");
        return std::string(s_.substr(start, p_ - start));
    }

    format_error fail(std::string_view what) const { return format_error(at_line(name_, line_, what)); }

private:
    std::string_view s_;
    std::string_view name_;
    std::size_t line_;
    std::size_t p_ = 0;
};

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

}  // namespace detail

/// Parses ARFF text held in memory; `name` appears in errors. format_error names the line for
/// a bad header, an unknown type, a row with the wrong number of values, a value that is not
/// a number or not one of its nominal attribute's values, or a file without @data.
inline arff_table parse_arff(std::string_view text, std::string_view name) {
    arff_table t;
    bool have_relation = false, in_data = false;
    std::size_t lineno = 0, pos = 0;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") pos = 3;
    while (pos < text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        const std::string_view line = text.substr(pos, eol - pos);
        pos = eol + 1;
        ++lineno;
        detail::arff_lexer lx(line, name, lineno);
        if (lx.at_end()) continue;  // blank or comment

        if (!in_data) {
            bool quoted;
            if (lx.peek() != '@') throw lx.fail("expected @relation, @attribute or @data");
            const std::string kw = lx.word("", quoted);
            if (detail::iequals(kw, "@relation")) {
                if (have_relation) throw lx.fail("a second @relation");
                t.relation = lx.word("", quoted);
                have_relation = true;
            } else if (detail::iequals(kw, "@attribute")) {
                if (!have_relation) throw lx.fail("@attribute before @relation");
                arff_attribute a;
                a.name = lx.word("{", quoted);
                for (const auto& other : t.attributes)
                    if (other.name == a.name) throw lx.fail("attribute \"" + a.name + "\" is declared twice");
                if (lx.eat('{')) {
                    a.type = arff_type::nominal;
                    if (!lx.eat('}')) {
                        for (;;) {
                            a.values.push_back(lx.word(",}", quoted));
                            if (lx.eat('}')) break;
                            if (!lx.eat(',')) throw lx.fail("expected ',' or '}' in the list of nominal values");
                        }
                    }
                    if (!lx.at_end()) throw lx.fail("unexpected text after the nominal values");
                } else {
                    if (lx.at_end()) throw lx.fail("attribute \"" + a.name + "\" has no type");
                    const std::string type = lx.word("", quoted);
                    if (detail::iequals(type, "numeric") || detail::iequals(type, "real") ||
                        detail::iequals(type, "integer")) {
                        a.type = arff_type::numeric;
                    } else if (detail::iequals(type, "string")) {
                        a.type = arff_type::string;
                    } else if (detail::iequals(type, "date")) {
                        a.type = arff_type::date;
                        lx.rest();  // the date format is kept as text
                    } else {
                        throw lx.fail("attribute \"" + a.name + "\": unsupported type \"" + type + "\"");
                    }
                    if (!lx.at_end()) throw lx.fail("unexpected text after the type of \"" + a.name + "\"");
                }
                t.attributes.push_back(std::move(a));
            } else if (detail::iequals(kw, "@data")) {
                if (t.attributes.empty()) throw lx.fail("@data before any @attribute");
                in_data = true;
                t.numbers.resize(t.attributes.size());
                t.text.resize(t.attributes.size());
            } else {
                throw lx.fail("unknown keyword \"" + kw + "\"");
            }
            continue;
        }

        if (lx.peek() == '{') throw lx.fail("sparse rows are not supported");
        const std::size_t n = t.attributes.size();
        for (std::size_t c = 0; c < n; ++c) {
            if (c > 0 && !lx.eat(','))
                throw lx.fail(std::to_string(c) + " values where " + std::to_string(n) + " attributes are declared");
            bool quoted;
            std::string v = lx.word(",", quoted);
            const bool missing = !quoted && v == "?";
            const arff_attribute& a = t.attributes[c];
            switch (a.type) {
                case arff_type::numeric: {
                    double x = std::numeric_limits<double>::quiet_NaN();
                    if (!missing && !detail::parse_number(v, x))
                        throw lx.fail("attribute \"" + a.name + "\": \"" + v + "\" is not a number");
                    t.numbers[c].push_back(x);
                    break;
                }
                case arff_type::nominal: {
                    double x = std::numeric_limits<double>::quiet_NaN();
                    if (!missing) {
                        std::size_t k = 0;
                        while (k < a.values.size() && a.values[k] != v) ++k;
                        if (k == a.values.size())
                            throw lx.fail("attribute \"" + a.name + "\": \"" + v + "\" is not one of its values");
                        x = static_cast<double>(k);
                    }
                    t.numbers[c].push_back(x);
                    break;
                }
                case arff_type::string:
                case arff_type::date:
                    t.text[c].push_back(missing ? std::string() : std::move(v));
                    break;
            }
        }
        if (lx.eat('{')) throw lx.fail("instance weights are not supported");
        if (!lx.at_end()) throw lx.fail("more values than the " + std::to_string(n) + " declared attributes");
        ++t.rows;
    }
    if (!in_data) throw format_error(detail::at_line(name, lineno, "no @data section"));
    return t;
}

/// Reads an ARFF file (plain, .bz2 or .gz); io_error when it cannot be read.
inline arff_table read_arff(const std::filesystem::path& path) {
    const std::string text = read_text(path);
    return parse_arff(text, path.string());
}

}  // namespace xgrad::io
