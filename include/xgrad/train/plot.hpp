#pragma once
// plot(history, "curves.svg"): a fit's curves as an SVG file, for users without TensorBoard.
// One panel per quantity, its training and validation series together ("loss" with "val_loss",
// "accuracy" with "val_accuracy"), epochs on the x axis (1-based), the y range from the data;
// NaN entries (epochs without a value) break the line.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "history.hpp"

namespace xgrad {

struct plot_options {
    /// Series to draw (empty: all of them).
    std::vector<std::string> series = {};
    std::string title = {};
    std::size_t panel_width = 560, panel_height = 260;
};

namespace detail::plot {

inline std::string num(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
}

inline std::string escape(const std::string& s) {
    std::string o;
    for (char ch : s) {
        if (ch == '<') o += "&lt;";
        else if (ch == '>') o += "&gt;";
        else if (ch == '&') o += "&amp;";
        else if (ch == '"') o += "&quot;";
        else o += ch;
    }
    return o;
}

}  // namespace detail::plot

/// The SVG document of `h`'s curves. value_error for an empty history or an unknown series.
inline std::string plot_svg(const history& h, const plot_options& o = {}) {
    namespace d = detail::plot;
    if (h.empty()) throw value_error("plot: the history has no epochs");
    std::vector<std::string> names = o.series.empty() ? h.keys() : o.series;
    for (auto& n : names)
        if (!h.contains(n)) throw value_error("plot: the history has no series '" + n + "' (have: " + [&] {
                std::string s;
                for (auto& k : h.keys()) s += (s.empty() ? "" : ", ") + k;
                return s;
            }() + ")");
    // panels: a quantity and its val_ twin
    std::vector<std::vector<std::string>> panels;
    auto base = [](const std::string& n) { return n.rfind("val_", 0) == 0 ? n.substr(4) : n; };
    for (auto& n : names) {
        auto it = std::find_if(panels.begin(), panels.end(), [&](auto& p) { return base(p[0]) == base(n); });
        if (it == panels.end()) panels.push_back({n});
        else it->push_back(n);
    }
    static constexpr const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};
    const double W = static_cast<double>(o.panel_width), H = static_cast<double>(o.panel_height);
    const double left = 60, right = 130, top = o.title.empty() ? 10 : 34, gap = 30, bottom = 30;
    const double total_h = top + static_cast<double>(panels.size()) * (H + gap) + bottom - gap;
    const std::size_t n = h.size();
    std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + d::num(left + W + right) + "\" height=\"" +
                    d::num(total_h) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    if (!o.title.empty())
        s += "<text x=\"" + d::num(left) + "\" y=\"22\" font-size=\"15\">" + d::escape(o.title) + "</text>\n";
    for (std::size_t pi = 0; pi < panels.size(); ++pi) {
        const double y0 = top + static_cast<double>(pi) * (H + gap);
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (auto& name : panels[pi])
            for (double v : h[name])
                if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
        if (!std::isfinite(lo)) lo = 0, hi = 1;
        if (hi == lo) lo -= 0.5, hi += 0.5;
        const double pad = (hi - lo) * 0.05;
        lo -= pad, hi += pad;
        auto px = [&](std::size_t i) { return left + (n > 1 ? W * static_cast<double>(i) / static_cast<double>(n - 1) : W / 2); };
        auto py = [&](double v) { return y0 + H * (hi - v) / (hi - lo); };
        s += "<rect x=\"" + d::num(left) + "\" y=\"" + d::num(y0) + "\" width=\"" + d::num(W) + "\" height=\"" + d::num(H) +
             "\" fill=\"none\" stroke=\"#888\"/>\n";
        for (int k = 0; k <= 4; ++k) {  // y ticks
            const double v = lo + (hi - lo) * k / 4, y = py(v);
            s += "<line x1=\"" + d::num(left - 4) + "\" y1=\"" + d::num(y) + "\" x2=\"" + d::num(left + W) + "\" y2=\"" +
                 d::num(y) + "\" stroke=\"#ddd\"/><text x=\"" + d::num(left - 6) + "\" y=\"" + d::num(y + 4) +
                 "\" text-anchor=\"end\">" + d::num(v) + "</text>\n";
        }
        s += "<text x=\"" + d::num(left + W) + "\" y=\"" + d::num(y0 + H + 16) + "\" dx=\"14\">epoch</text>\n";
        const std::size_t step = std::max<std::size_t>(1, (n + 9) / 10);
        for (std::size_t i = 0; i < n; i += step)  // x ticks: epochs
            s += "<text x=\"" + d::num(px(i)) + "\" y=\"" + d::num(y0 + H + 16) + "\" text-anchor=\"middle\">" +
                 std::to_string(h.epochs()[i] + 1) + "</text>\n";
        for (std::size_t si = 0; si < panels[pi].size(); ++si) {
            const std::string& name = panels[pi][si];
            const char* color = colors[(pi + si) % 6];
            const auto& v = h[name];
            std::string pts;
            auto flush = [&] {
                if (!pts.empty())
                    s += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"2\"" +
                         (name.rfind("val_", 0) == 0 ? " stroke-dasharray=\"6 3\"" : "") + " points=\"" + pts + "\"/>\n";
                pts.clear();
            };
            for (std::size_t i = 0; i < n; ++i) {
                if (!std::isfinite(v[i])) {
                    flush();
                    continue;
                }
                pts += (pts.empty() ? "" : " ") + d::num(px(i)) + "," + d::num(py(v[i]));
                s += "<circle cx=\"" + d::num(px(i)) + "\" cy=\"" + d::num(py(v[i])) + "\" r=\"2.5\" fill=\"" + color +
                     "\"><title>" + d::escape(name) + " " + d::num(v[i]) + "</title></circle>\n";
            }
            flush();
            const double ly = y0 + 16 + 18 * static_cast<double>(si);
            s += "<line x1=\"" + d::num(left + W + 10) + "\" y1=\"" + d::num(ly - 4) + "\" x2=\"" + d::num(left + W + 30) +
                 "\" y2=\"" + d::num(ly - 4) + "\" stroke=\"" + color + "\" stroke-width=\"2\"/><text x=\"" +
                 d::num(left + W + 34) + "\" y=\"" + d::num(ly) + "\">" + d::escape(name) + "</text>\n";
        }
    }
    s += "</svg>\n";
    return s;
}

/// Writes plot_svg(h, o) to `path` (its extension must be .svg: value_error otherwise); io_error
/// naming the path when it cannot be written.
inline void plot(const history& h, const std::filesystem::path& path, const plot_options& o = {}) {
    if (path.extension() != ".svg")
        throw value_error("plot: '" + path.string() + "': plot writes SVG, so the file name must end in .svg");
    const std::string svg = plot_svg(h, o);
    std::ofstream f(path, std::ios::trunc);
    if (!f) throw io_error("plot: cannot open '" + path.string() + "' for writing");
    f << svg;
    if (!f.flush()) throw io_error("plot: write to '" + path.string() + "' failed");
}

}  // namespace xgrad
