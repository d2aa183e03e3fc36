#pragma once
// The progress display of fit(): on a terminal, one line per epoch redrawn in place
//   Epoch 3/10  412/938 [=========>..........]  14s<18s  3012 samples/s  loss 0.3127  accuracy 0.8874
// that becomes the epoch's summary line when it ends; elsewhere (CI logs, files) only the
// summary lines, so logs stay readable.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <string>

#include "../core/config.hpp"
#include "history.hpp"

namespace xgrad {

/// "850ms", "12.3s", "4m05s", "1h02m"
XGRAD_OUTLINE std::string format_duration(double seconds) {
    if (!(seconds >= 0) || std::isinf(seconds)) return "?";
    char buf[32];
    if (seconds < 1) std::snprintf(buf, sizeof buf, "%.0fms", seconds * 1000);
    else if (seconds < 60) std::snprintf(buf, sizeof buf, "%.1fs", seconds);
    else if (seconds < 3600) {
        const auto s = static_cast<long>(seconds);
        std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
    } else {
        const auto m = static_cast<long>(seconds / 60);
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", m / 60, m % 60);
    }
    return buf;
}
XGRAD_INSTANCE(std::string format_duration(double seconds))

/// "loss 0.3127  accuracy 0.8874" (4 significant decimals, like Keras)
XGRAD_OUTLINE std::string format_logs(const logs& l) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(4);
    bool first = true;
    for (auto& [k, v] : l) {
        os << (first ? "" : "  ") << k << ' ' << v;
        first = false;
    }
    return os.str();
}
XGRAD_INSTANCE(std::string format_logs(const logs& l))

struct progress_options {
    std::ostream* out = &std::cerr;
    /// Redraw one line in place; default: when stderr is a terminal.
    bool interactive = ::isatty(2) != 0;
    std::size_t bar_width = 20;
    /// Minimum seconds between redraws (drawing every batch of a fast model costs time).
    double refresh = 0.1;
    /// Seconds since some fixed point; tests pass a fake clock.
    std::function<double()> clock = [] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
};

/// One epoch's (or one evaluation's) progress. `title` is "Epoch 3/10" or "Evaluate".
class progress_bar {
public:
    progress_bar(std::string title, std::size_t total_batches, progress_options o = {})
        : o_(std::move(o)), title_(std::move(title)), total_(total_batches), start_(o_.clock()) {}

    /// After each batch: batches and samples done so far and the running values.
    XGRAD_OUTLINE void update(std::size_t batches_done, std::size_t samples_done, const logs& running);

    /// Marks the end of the batches: samples/s in the summary counts only the time until here
    /// (not the validation that follows).
    void end_batches() { batches_elapsed_ = o_.clock() - start_; }

    /// The epoch's summary line (replacing the live line on a terminal); returns elapsed seconds.
    XGRAD_OUTLINE double finish(const logs& summary);

private:
    std::string counter() const {
        const std::string t = std::to_string(total_);
        std::string d = std::to_string(batches_);
        return std::string(t.size() > d.size() ? t.size() - d.size() : 0, ' ') + d + '/' + t;
    }
    std::string bar() const {
        const std::size_t w = o_.bar_width;
        const std::size_t filled = total_ ? batches_ * w / total_ : w;
        std::string b = "[";
        b.append(filled, '=');
        if (filled < w) {
            b += '>';
            b.append(w - filled - 1, '.');
        }
        return b + ']';
    }
    std::string rate(double elapsed) const {
        std::ostringstream os;
        os << std::fixed << std::setprecision(0)
           << (elapsed > 0 ? static_cast<double>(samples_) / elapsed : 0.0) << " samples/s";
        return os.str();
    }

    progress_options o_;
    std::string title_;
    std::size_t total_;
    double start_;
    double last_draw_ = -1e300;
    double batches_elapsed_ = -1;
    std::size_t batches_ = 0, samples_ = 0;
    bool drawn_ = false;
};

XGRAD_OUTLINE_DEF double progress_bar::finish(const logs& summary) {
    const double elapsed = o_.clock() - start_;
    std::ostringstream os;
    if (drawn_) os << '\r';
    os << title_ << "  " << counter() << "  " << format_duration(elapsed) << "  "
       << rate(batches_elapsed_ >= 0 ? batches_elapsed_ : elapsed);
    if (!summary.empty()) os << "  " << format_logs(summary);
    if (drawn_) os << "\033[K";
    os << '\n';
    *o_.out << os.str() << std::flush;
    return elapsed;
}
XGRAD_INSTANCE(double progress_bar::finish(const logs& summary))

XGRAD_OUTLINE_DEF void progress_bar::update(std::size_t batches_done, std::size_t samples_done, const logs& running) {
    batches_ = batches_done;
    samples_ = samples_done;
    if (!o_.interactive) return;
    const double now = o_.clock();
    if (batches_done < total_ && now - last_draw_ < o_.refresh) return;
    last_draw_ = now;
    const double elapsed = now - start_;
    std::ostringstream os;
    os << '\r' << title_ << "  " << counter() << ' ' << bar() << "  " << format_duration(elapsed);
    if (batches_done > 0 && batches_done < total_) {
        const double per_batch = elapsed / static_cast<double>(batches_done);
        os << '<' << format_duration(per_batch * static_cast<double>(total_ - batches_done));
    }
    os << "  " << rate(elapsed);
    if (!running.empty()) os << "  " << format_logs(running);
    os << "\033[K";  // clear what a longer previous line left
    *o_.out << os.str() << std::flush;
    drawn_ = true;
}
XGRAD_INSTANCE(void progress_bar::update(std::size_t batches_done, std::size_t samples_done, const logs& running))

}  // namespace xgrad
