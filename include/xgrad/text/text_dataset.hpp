#pragma once
// Labelled texts as token-id sequences padded to one length, for data::loader, and the
// reader of (text, label) columns from CSV/TSV files (plain, .bz2 or .gz).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../data/sample.hpp"
#include "../io/bz2.hpp"
#include "../io/csv.hpp"
#include "tokenizer.hpp"
#include "vocabulary.hpp"

namespace xgrad::text {

/// Which end of a sequence longer than max_len is kept.
enum class truncation { keep_head, keep_tail };

/// Sample i: input = token ids {max_len} (int64, <pad> = 0 after the text), label = class.
/// length(i) is the unpadded length, 1..max_len: a text without tokens becomes one <unk>, so
/// every length fits recurrent layers. Padding only ever follows the text, so lengths() of
/// a batch recovers the lengths from the ids alone.
class text_dataset {
public:
    using sample_type = data::sample<std::int64_t>;

    text_dataset() = default;

    /// Tokenizes and encodes `texts`; value_error when texts and labels differ in number,
    /// for max_len 0 or a negative label.
    text_dataset(std::span<const std::string> texts, std::span<const std::int64_t> labels, const vocabulary& vocab,
                 std::size_t max_len, const tokenizer& tok = {}, truncation trunc = truncation::keep_head) {
        check_counts(texts.size(), labels.size(), max_len);
        std::vector<std::vector<std::int64_t>> ids;
        ids.reserve(texts.size());
        for (const auto& t : texts) ids.push_back(vocab.encode(tok.tokenize(t)));
        fill(ids, labels, max_len, trunc);
    }

    /// From already encoded sequences; value_error as above, and for an id that is negative
    /// or <pad> (0) inside a sequence.
    static text_dataset from_ids(std::span<const std::vector<std::int64_t>> ids, std::span<const std::int64_t> labels,
                                 std::size_t max_len, truncation trunc = truncation::keep_head) {
        check_counts(ids.size(), labels.size(), max_len);
        for (std::size_t i = 0; i < ids.size(); ++i)
            for (const auto v : ids[i])
                if (v <= 0)
                    throw value_error("text_dataset: sequence " + std::to_string(i) + " holds id " + std::to_string(v) +
                                      (v == 0 ? " (<pad>)" : "") + "; ids must be positive");
        text_dataset d;
        d.fill(ids, labels, max_len, trunc);
        return d;
    }

    std::size_t size() const noexcept { return labels_.size(); }
    std::size_t max_len() const noexcept { return max_len_; }

    /// Sample i; its input is a view of the dataset's storage. index_error when i >= size().
    sample_type get(std::size_t i) const {
        if (i >= size())
            throw index_error("text_dataset::get: index " + std::to_string(i) + " is out of range for " +
                              std::to_string(size()) + " samples");
        return {ids_.select(0, static_cast<std::ptrdiff_t>(i)), labels_[i]};
    }
    sample_type get(std::size_t i, rng&) const { return get(i); }

    /// The unpadded length of sample i (what bucketing in data::loader sorts by).
    std::size_t length(std::size_t i) const {
        if (i >= size())
            throw index_error("text_dataset::length: index " + std::to_string(i) + " is out of range for " +
                              std::to_string(size()) + " samples");
        return lengths_[i];
    }

    const tensor<std::int64_t>& ids() const noexcept { return ids_; }  ///< {size, max_len}
    const std::vector<std::int64_t>& labels() const noexcept { return labels_; }
    /// Samples whose text was longer than max_len.
    std::size_t truncated() const noexcept { return truncated_; }

private:
    static void check_counts(std::size_t texts, std::size_t labels, std::size_t max_len) {
        if (texts != labels)
            throw value_error("text_dataset: " + std::to_string(texts) + " texts but " + std::to_string(labels) +
                              " labels");
        if (max_len == 0) throw value_error("text_dataset: max_len must be positive");
    }

    void fill(std::span<const std::vector<std::int64_t>> ids, std::span<const std::int64_t> labels,
              std::size_t max_len, truncation trunc) {
        max_len_ = max_len;
        ids_ = tensor<std::int64_t>(shape_t{ids.size(), max_len});  // zeros: <pad>
        std::int64_t* out = ids_.data();
        lengths_.resize(ids.size());
        labels_.assign(labels.begin(), labels.end());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            if (labels_[i] < 0)
                throw value_error("text_dataset: sample " + std::to_string(i) + " has the negative label " +
                                  std::to_string(labels_[i]));
            const auto& seq = ids[i];
            std::int64_t* row = out + i * max_len;
            if (seq.empty()) {
                row[0] = vocabulary::unk_id;
                lengths_[i] = 1;
                continue;
            }
            const std::size_t n = std::min(seq.size(), max_len);
            truncated_ += seq.size() > max_len;
            const std::size_t first = trunc == truncation::keep_tail ? seq.size() - n : 0;
            std::copy_n(seq.begin() + static_cast<std::ptrdiff_t>(first), n, row);
            lengths_[i] = n;
        }
    }

    tensor<std::int64_t> ids_{shape_t{0, 1}};
    std::vector<std::size_t> lengths_;
    std::vector<std::int64_t> labels_;
    std::size_t max_len_ = 1;
    std::size_t truncated_ = 0;
};

/// The unpadded length of every row of padded ids {N, L} (the position after the last
/// non-<pad> id), as int64 {N}; shape_error unless ids is 2-D.
inline tensor<std::int64_t> lengths(const tensor<std::int64_t>& ids) {
    if (ids.dim() != 2) throw shape_error("text::lengths: ids must be {N, L}, got " + to_string(ids.shape()));
    const auto c = ids.contiguous();
    const std::size_t n = c.shape()[0], l = c.shape()[1];
    auto out = tensor<std::int64_t>::uninitialized({n});
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t len = l;
        while (len > 0 && c.data()[i * l + len - 1] == vocabulary::pad_id) --len;
        out.data()[i] = static_cast<std::int64_t>(len);
    }
    return out;
}

/// Cuts padded ids {N, L} to {N, longest row}: with bucketing, a batch then costs what its
/// longest text costs, not max_len. shape_error unless ids is 2-D.
inline tensor<std::int64_t> trim_padding(const tensor<std::int64_t>& ids) {
    const auto len = lengths(ids);
    const std::size_t n = ids.shape()[0], l = ids.shape()[1];
    std::size_t keep = 1;
    for (std::size_t i = 0; i < n; ++i) keep = std::max(keep, static_cast<std::size_t>(len.data()[i]));
    keep = std::min(keep, l);
    const auto c = ids.contiguous();
    auto out = tensor<std::int64_t>::uninitialized({n, keep});
    for (std::size_t i = 0; i < n; ++i) std::copy_n(c.data() + i * l, keep, out.data() + i * keep);
    return out;
}

// ---------------------------------------------------------------------------------------
// (text, label) columns of a CSV/TSV file
// ---------------------------------------------------------------------------------------

struct text_csv_options {
    char delimiter = ',';                                      ///< '\t' for TSV
    bool header = true;                                        ///< the first row names the columns
    std::variant<std::ptrdiff_t, std::string> text_column = std::ptrdiff_t{0};   ///< index or header name
    std::variant<std::ptrdiff_t, std::string> label_column = std::ptrdiff_t{1};  ///< index or header name
    /// Empty: labels are non-negative integers. Otherwise the label names: class k is
    /// classes[k], and a row with another label is a format_error, or skipped when
    /// skip_other_labels (e.g. keep "rotten"/"fresh", drop "plot").
    std::vector<std::string> classes{};
    bool skip_other_labels = false;
};

struct text_table {
    std::vector<std::string> texts;
    std::vector<std::int64_t> labels;
    std::size_t skipped = 0;  ///< rows dropped by skip_other_labels
};

namespace detail {
inline std::size_t resolve_column(const std::variant<std::ptrdiff_t, std::string>& col,
                                  const std::vector<std::string>& first_row, bool header, std::string_view name,
                                  std::size_t line, std::string_view what) {
    const std::size_t columns = first_row.size();
    if (const auto* idx = std::get_if<std::ptrdiff_t>(&col)) {
        const auto c = static_cast<std::ptrdiff_t>(columns);
        if (*idx < -c || *idx >= c)
            throw value_error(io::detail::at_line(name, line,
                                                  std::string(what) + " column " + std::to_string(*idx) +
                                                      " is out of range for " + std::to_string(columns) + " columns"));
        return static_cast<std::size_t>(*idx < 0 ? *idx + c : *idx);
    }
    const auto& want = std::get<std::string>(col);
    if (!header)
        throw value_error(std::string(name) + ": " + std::string(what) + " column \"" + want +
                          "\" given by name, but there is no header");
    for (std::size_t c = 0; c < columns; ++c)
        if (first_row[c] == want) return c;
    throw value_error(io::detail::at_line(name, line, "no column is named \"" + want + "\""));
}
}  // namespace detail

/// Parses CSV/TSV text (RFC 4180 quoting, as io::parse_csv). format_error naming the line
/// for a row with too few fields, a bad label or a file without data rows; value_error for
/// a column that does not exist.
inline text_table parse_text_csv(std::string_view text, std::string_view name, const text_csv_options& opt = {}) {
    if (opt.delimiter == '"' || opt.delimiter == '\n' || opt.delimiter == '\r')
        throw value_error(std::string(name) + ": the delimiter cannot be a quote or a line break");
    io::detail::csv_records rec(text, name, opt.delimiter);
    std::vector<std::string> fields;
    if (!rec.next(fields)) throw format_error(io::detail::at_line(name, 1, "no rows"));
    const std::size_t first_line = rec.line();
    const std::size_t tc = detail::resolve_column(opt.text_column, fields, opt.header, name, first_line, "text");
    const std::size_t lc = detail::resolve_column(opt.label_column, fields, opt.header, name, first_line, "label");
    const std::size_t need = std::max(tc, lc) + 1;

    text_table out;
    bool have = !opt.header || rec.next(fields);
    while (have) {
        const std::size_t line = rec.line();
        if (fields.size() < need)
            throw format_error(io::detail::at_line(name, line,
                                                   std::to_string(fields.size()) + " fields; the text and label need " +
                                                       std::to_string(need)));
        const std::string& lab = fields[lc];
        std::int64_t label = -1;
        if (opt.classes.empty()) {
            double v;
            if (!io::detail::parse_number(lab, v) || !(v >= 0) || v > 9007199254740992.0 || v != std::floor(v))
                throw format_error(io::detail::at_line(name, line,
                                                       "label \"" + lab + "\" is not a non-negative integer"));
            label = static_cast<std::int64_t>(v);
        } else {
            const auto it = std::find(opt.classes.begin(), opt.classes.end(), lab);
            if (it != opt.classes.end()) label = it - opt.classes.begin();
            else if (!opt.skip_other_labels)
                throw format_error(io::detail::at_line(name, line, "label \"" + lab + "\" is not one of the classes"));
        }
        if (label >= 0) {
            out.texts.push_back(std::move(fields[tc]));
            out.labels.push_back(label);
        } else {
            ++out.skipped;
        }
        have = rec.next(fields);
    }
    if (out.texts.empty()) throw format_error(io::detail::at_line(name, first_line, "no data rows"));
    return out;
}

/// Reads a CSV/TSV file, decompressing .bz2/.gz by content; io_error when it cannot be read.
inline text_table read_text_csv(const std::filesystem::path& path, const text_csv_options& opt = {}) {
    const std::string text = io::read_text(path);
    return parse_text_csv(text, path.string(), opt);
}

}  // namespace xgrad::text
