#pragma once
// CSV tables of numeric features plus one integer label column (RFC 4180 quoting:
// fields in double quotes may hold delimiters, newlines and "" for a quote).
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "../core/tensor.hpp"
#include "detail/bytes.hpp"

namespace xgrad::io {

/// Whether the first row names the columns.
enum class csv_header {
    detect,   ///< a header when any field of the first row is not a number
    present,  ///< the first row is a header
    absent,   ///< every row is data
};

struct csv_options {
    char delimiter = ',';
    csv_header header = csv_header::detect;
    /// The label column: an index (negative counts from the end) or a header name.
    std::variant<std::ptrdiff_t, std::string> label = std::ptrdiff_t{-1};
    /// Labels must lie in 0..num_classes-1; 0 accepts any non-negative integer.
    std::size_t num_classes = 0;
};

/// Features {rows, columns - 1} (file order, label column removed) and labels {rows}.
struct csv_table {
    tensor<float> features;
    tensor<std::int64_t> labels;
    std::vector<std::string> feature_names;  ///< from the header; empty without one
    std::string label_name;                  ///< from the header; empty without one
};

namespace detail {

/// Splits CSV text into records; tracks physical line numbers for error messages.
class csv_records {
public:
    csv_records(std::string_view text, std::string_view name, char delimiter)
        : text_(text), name_(name), delim_(delimiter) {
        if (text_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;  // UTF-8 byte-order mark
    }

    /// The line on which the record last returned by next() starts.
    std::size_t line() const noexcept { return record_line_; }

    /// Reads the next non-blank record into `fields`; false at the end of the text.
    bool next(std::vector<std::string>& fields) {
        fields.clear();
        skip_blank_lines();
        if (pos_ >= text_.size()) return false;
        record_line_ = line_;
        for (;;) {
            fields.emplace_back();
            read_field(fields.back());
            if (pos_ >= text_.size()) return true;
            const char c = text_[pos_];
            if (c == delim_) {
                ++pos_;
                continue;
            }
            // read_field stops only at the delimiter, a line end or the end of the text
            ++pos_;
            if (c == '\r' && pos_ < text_.size() && text_[pos_] == '\n') ++pos_;
            ++line_;
            return true;
        }
    }

private:
    bool is_space(char c) const noexcept { return (c == ' ' || c == '\t') && c != delim_; }
    bool is_end(char c) const noexcept { return c == delim_ || c == '\n' || c == '\r'; }

    void skip_blank_lines() {
        for (;;) {
            std::size_t p = pos_;
            while (p < text_.size() && is_space(text_[p])) ++p;
            if (p >= text_.size()) {
                pos_ = p;
                return;
            }
            if (text_[p] == '\n' || text_[p] == '\r') {
                if (text_[p] == '\r' && p + 1 < text_.size() && text_[p + 1] == '\n') ++p;
                pos_ = p + 1;
                ++line_;
                continue;
            }
            return;
        }
    }

    void read_field(std::string& out) {
        while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
        if (pos_ < text_.size() && text_[pos_] == '"') {
            const std::size_t opened = line_;
            ++pos_;
            for (;;) {
                const std::size_t q = text_.find('"', pos_);
                if (q == std::string_view::npos)
                    throw format_error(at_line(name_, opened, "quoted field is never closed"));
                const auto part = text_.substr(pos_, q - pos_);
                for (char c : part)
                    if (c == '\n') ++line_;
                out.append(part);
                pos_ = q + 1;
                if (pos_ < text_.size() && text_[pos_] == '"') {  // "" is one quote
                    out.push_back('"');
                    ++pos_;
                    continue;
                }
                break;
            }
            while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
            if (pos_ < text_.size() && !is_end(text_[pos_]))
                throw format_error(at_line(name_, line_,
                                           std::string("unexpected character '") + text_[pos_] +
                                               "' after a closing quote"));
            return;
        }
        const std::size_t start = pos_;
        while (pos_ < text_.size() && !is_end(text_[pos_])) ++pos_;
        std::size_t stop = pos_;
        while (stop > start && is_space(text_[stop - 1])) --stop;
        out.assign(text_.substr(start, stop - start));
    }

    std::string_view text_;
    std::string_view name_;
    char delim_;
    std::size_t pos_ = 0;
    std::size_t line_ = 1;
    std::size_t record_line_ = 1;
};

/// Parses a whole field as a number; false when it is not one.
template <class T>
bool parse_number(std::string_view s, T& out) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    if (s.empty()) return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc{} && r.ptr == s.data() + s.size();
}

inline std::string column_name(std::size_t col) { return "column " + std::to_string(col + 1); }

}  // namespace detail

/// Parses CSV text held in memory; `name` appears in errors.
/// format_error (naming the line) for ragged rows, non-numeric features, bad labels,
/// unclosed quotes or a table without data; value_error when `opt.label` names no column.
inline csv_table parse_csv(std::string_view text, std::string_view name, const csv_options& opt = {}) {
    if (opt.delimiter == '"' || opt.delimiter == '\n' || opt.delimiter == '\r')
        throw value_error(std::string(name) + ": the delimiter cannot be a quote or a line break");
    detail::csv_records rec(text, name, opt.delimiter);
    std::vector<std::string> fields;
    if (!rec.next(fields)) throw format_error(detail::at_line(name, 1, "no rows"));

    bool header = opt.header == csv_header::present;
    if (opt.header == csv_header::detect) {
        double v;
        for (const auto& f : fields) header = header || !detail::parse_number(f, v);
    }
    const std::size_t columns = fields.size();
    const std::size_t first_line = rec.line();
    if (columns < 2)
        throw format_error(detail::at_line(name, first_line,
                                           "1 field: a table needs at least one feature column and a label column"));

    std::size_t label_col = 0;
    if (const auto* idx = std::get_if<std::ptrdiff_t>(&opt.label)) {
        const auto c = static_cast<std::ptrdiff_t>(columns);
        if (*idx < -c || *idx >= c)
            throw value_error(std::string(name) + ": label column " + std::to_string(*idx) + " is out of range for " +
                              std::to_string(columns) + " columns");
        label_col = static_cast<std::size_t>(*idx < 0 ? *idx + c : *idx);
    } else {
        const auto& want = std::get<std::string>(opt.label);
        if (!header)
            throw value_error(std::string(name) + ": label column \"" + want + "\" given by name, but there is no header");
        std::size_t found = columns;
        for (std::size_t c = 0; c < columns && found == columns; ++c)
            if (fields[c] == want) found = c;
        if (found == columns)
            throw value_error(detail::at_line(name, first_line, "no column is named \"" + want + "\""));
        label_col = found;
    }

    csv_table out;
    if (header) {
        for (std::size_t c = 0; c < columns; ++c) {
            if (c == label_col)
                out.label_name = fields[c];
            else
                out.feature_names.push_back(fields[c]);
        }
    }

    std::vector<float> features;
    std::vector<std::int64_t> labels;
    bool have = !header || rec.next(fields);
    while (have) {
        const std::size_t line = rec.line();
        if (fields.size() != columns)
            throw format_error(detail::at_line(name, line,
                                               std::to_string(fields.size()) + " fields where line " +
                                                   std::to_string(first_line) + " has " + std::to_string(columns)));
        for (std::size_t c = 0; c < columns; ++c) {
            if (c == label_col) {
                double v;
                const bool ok = detail::parse_number(fields[c], v);
                if (!ok || !(v >= 0) || v != std::floor(v) || v > 9007199254740992.0)
                    throw format_error(detail::at_line(name, line,
                                                       detail::column_name(c) + ": label \"" + fields[c] +
                                                           "\" is not a non-negative integer"));
                if (opt.num_classes != 0 && v >= static_cast<double>(opt.num_classes))
                    throw format_error(detail::at_line(name, line,
                                                       detail::column_name(c) + ": label " + fields[c] +
                                                           " is outside 0.." + std::to_string(opt.num_classes - 1)));
                labels.push_back(static_cast<std::int64_t>(v));
            } else {
                float v;
                if (!detail::parse_number(fields[c], v))
                    throw format_error(detail::at_line(name, line,
                                                       detail::column_name(c) + ": \"" + fields[c] +
                                                           "\" is not a number"));
                features.push_back(v);
            }
        }
        have = rec.next(fields);
    }
    if (labels.empty()) throw format_error(detail::at_line(name, first_line, "a header but no data rows"));
    out.features = from_vector(features, {labels.size(), columns - 1});
    out.labels = from_vector(labels, {labels.size()});
    return out;
}

/// Reads a CSV file; io_error when it cannot be read. See parse_csv for the rest.
inline csv_table read_csv(const std::filesystem::path& path, const csv_options& opt = {}) {
    const auto bytes = detail::read_file(path);
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return parse_csv(text, path.string(), opt);
}

}  // namespace xgrad::io
