#pragma once
// Token <-> id maps. Id 0 is "<pad>", id 1 is "<unk>" (every token the vocabulary does not
// hold); the others follow by descending count, ties in byte order, so a build is
// deterministic. Saved as one token per line, in id order.
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../io/detail/bytes.hpp"

namespace xgrad::text {

struct vocabulary_options {
    std::size_t min_count = 1;  ///< tokens seen fewer times map to <unk>
    std::size_t max_size = 0;   ///< at most this many ids in all, <pad> and <unk> included; 0: no limit
};

/// Counts tokens; vocabulary::build turns the counts into ids.
class token_counter {
public:
    void add(std::string_view token) { ++counts_[std::string(token)]; }
    void add(std::span<const std::string> tokens) {
        for (const auto& t : tokens) add(t);
    }
    std::size_t count(std::string_view token) const {
        const auto it = counts_.find(std::string(token));
        return it == counts_.end() ? 0 : it->second;
    }
    const std::unordered_map<std::string, std::size_t>& counts() const noexcept { return counts_; }

private:
    std::unordered_map<std::string, std::size_t> counts_;
};

class vocabulary {
public:
    static constexpr std::int64_t pad_id = 0;
    static constexpr std::int64_t unk_id = 1;
    static constexpr std::string_view pad_token = "<pad>";
    static constexpr std::string_view unk_token = "<unk>";

    /// Only <pad> and <unk>.
    vocabulary() : tokens_{std::string(pad_token), std::string(unk_token)} { reindex(); }

    /// The tokens in id order; value_error unless it starts with <pad>, <unk> and holds no
    /// duplicate or empty token.
    explicit vocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
        if (tokens_.size() < 2 || tokens_[0] != pad_token || tokens_[1] != unk_token)
            throw value_error("vocabulary: the token list must start with <pad>, <unk>");
        reindex();
    }

    /// From counted tokens: value_error for max_size 1 (no room for <pad> and <unk>).
    static vocabulary build(const token_counter& counter, const vocabulary_options& opt = {}) {
        if (opt.max_size == 1) throw value_error("vocabulary: max_size 1 leaves no room for <pad> and <unk>");
        std::vector<std::pair<std::string_view, std::size_t>> kept;
        for (const auto& [tok, n] : counter.counts())
            if (n >= opt.min_count && tok != pad_token && tok != unk_token) kept.emplace_back(tok, n);
        std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
            return a.second != b.second ? a.second > b.second : a.first < b.first;
        });
        if (opt.max_size != 0 && kept.size() > opt.max_size - 2) kept.resize(opt.max_size - 2);
        std::vector<std::string> tokens{std::string(pad_token), std::string(unk_token)};
        for (const auto& k : kept) tokens.emplace_back(k.first);
        return vocabulary(std::move(tokens));
    }

    /// From token streams (one vector of tokens per document).
    static vocabulary build(std::span<const std::vector<std::string>> docs, const vocabulary_options& opt = {}) {
        token_counter c;
        for (const auto& d : docs) c.add(d);
        return build(c, opt);
    }

    std::size_t size() const noexcept { return tokens_.size(); }

    /// The id of `token`; unk_id when the vocabulary does not hold it.
    std::int64_t id(std::string_view token) const {
        const auto it = ids_.find(std::string(token));
        return it == ids_.end() ? unk_id : it->second;
    }
    bool contains(std::string_view token) const { return ids_.count(std::string(token)) != 0; }

    /// The token of `id`; index_error outside 0..size()-1.
    const std::string& token(std::int64_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size())
            throw index_error("vocabulary: token id " + std::to_string(id) + " is outside 0.." +
                              std::to_string(tokens_.size() - 1));
        return tokens_[static_cast<std::size_t>(id)];
    }

    std::vector<std::int64_t> encode(std::span<const std::string> tokens) const {
        std::vector<std::int64_t> out;
        out.reserve(tokens.size());
        for (const auto& t : tokens) out.push_back(id(t));
        return out;
    }

    /// The tokens of `ids` joined by single spaces, <pad> skipped; index_error for a bad id.
    std::string decode(std::span<const std::int64_t> ids) const {
        std::string out;
        for (const auto i : ids) {
            const auto& t = token(i);
            if (i == pad_id) continue;
            if (!out.empty()) out.push_back(' ');
            out += t;
        }
        return out;
    }

    const std::vector<std::string>& tokens() const noexcept { return tokens_; }

    /// One token per line in id order; io_error when the file cannot be written.
    void save(const std::filesystem::path& path) const {
        std::string s;
        for (const auto& t : tokens_) {
            s += t;
            s.push_back('\n');
        }
        io::detail::write_file(path, std::as_bytes(std::span(s.data(), s.size())));
    }

    /// Reads a file written by save(): io_error when it cannot be read, format_error naming
    /// the line for a missing <pad>/<unk> header, an empty line or a duplicate token.
    static vocabulary load(const std::filesystem::path& path) {
        const auto bytes = io::detail::read_file(path);
        const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
        const std::string name = path.string();
        std::vector<std::string> tokens;
        std::size_t pos = 0;
        while (pos < text.size()) {
            std::size_t eol = text.find('\n', pos);
            if (eol == std::string_view::npos) eol = text.size();
            std::string_view line = text.substr(pos, eol - pos);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            pos = eol + 1;
            const std::size_t lineno = tokens.size() + 1;
            if (line.empty()) throw format_error(io::detail::at_line(name, lineno, "empty token"));
            if ((lineno == 1 && line != pad_token) || (lineno == 2 && line != unk_token))
                throw format_error(io::detail::at_line(name, lineno,
                                                       "expected \"" + std::string(lineno == 1 ? pad_token : unk_token) +
                                                           "\", found \"" + std::string(line) + "\""));
            tokens.emplace_back(line);
        }
        if (tokens.size() < 2)
            throw format_error(io::detail::at_line(name, tokens.size() + 1, "the file ends before <pad> and <unk>"));
        vocabulary v;
        v.tokens_ = std::move(tokens);
        v.reindex(&name);
        return v;
    }

private:
    void reindex(const std::string* file = nullptr) {
        ids_.clear();
        ids_.reserve(tokens_.size());
        for (std::size_t i = 0; i < tokens_.size(); ++i) {
            const auto& t = tokens_[i];
            std::string problem;
            if (t.empty())
                problem = "empty token";
            else if (t.find('\n') != std::string::npos || t.find('\r') != std::string::npos)
                problem = "token \"" + t + "\" holds a line break";
            else if (!ids_.emplace(t, static_cast<std::int64_t>(i)).second)
                problem = "token \"" + t + "\" appears twice";
            if (problem.empty()) continue;
            if (file) throw format_error(io::detail::at_line(*file, i + 1, problem));
            throw value_error("vocabulary: id " + std::to_string(i) + ": " + problem);
        }
    }

    std::vector<std::string> tokens_;
    std::unordered_map<std::string, std::int64_t> ids_;
};

}  // namespace xgrad::text
