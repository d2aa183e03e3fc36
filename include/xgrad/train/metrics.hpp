#pragma once
// Classification metrics, accumulated batch by batch: accuracy, top-k accuracy, precision,
// recall and F1 (per class, macro, micro, weighted) and the confusion matrix.
//
// Every metric takes the model's class scores {N, C} (logits or probabilities: only their
// order matters) and the targets, either class indices {N} or one-hot/probability rows {N, C}
// (their argmax is the class). A metric is a small class with
//   std::string name() const;  void reset();  void update(scores, targets);
//   std::vector<std::pair<std::string, double>> values() const;   // what history records
//   std::string report() const;                                   // optional table
// and `metric` holds any of them, so fit() and evaluate() take a list of mixed metrics.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <memory>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace xgrad::metrics {

namespace detail {

/// Row-major contiguous float copy of class scores {N, C}; shape_error naming `who` otherwise.
template <class T>
tensor<float> scores_of(const tensor<T>& s, const char* who) {
    static_assert(std::is_arithmetic_v<T>, "metrics: scores must be numeric");
    if (s.dim() != 2 || s.shape()[1] == 0)
        throw shape_error(std::string(who) + ": expects class scores of shape {N, C}, got " + to_string(s.shape()));
    if constexpr (std::is_same_v<T, float>)
        return s.contiguous();
    else
        return s.template astype<float>();
}

/// Class indices {N} from index targets {N} or one-hot/probability rows {N, C}; value_error
/// for an index outside [0, classes).
template <class T>
std::vector<std::int64_t> targets_of(const tensor<T>& t, std::size_t n, std::size_t classes, const char* who) {
    std::vector<std::int64_t> out;
    if (t.dim() == 1) {
        if (t.shape()[0] != n)
            throw shape_error(std::string(who) + ": " + std::to_string(t.shape()[0]) + " targets for " +
                              std::to_string(n) + " score rows");
        out.reserve(n);
        for (auto v : t.to_vector()) out.push_back(static_cast<std::int64_t>(v));
    } else if (t.dim() == 2 && t.shape()[0] == n && t.shape()[1] == classes) {
        const auto c = t.contiguous();
        out.resize(n);
        for (std::size_t i = 0; i < n; ++i) {
            const T* row = c.data() + i * classes;
            out[i] = static_cast<std::int64_t>(std::max_element(row, row + classes) - row);
        }
    } else {
        throw shape_error(std::string(who) + ": targets of shape " + to_string(t.shape()) +
                          " do not match scores of shape {" + std::to_string(n) + ", " + std::to_string(classes) +
                          "} (expected {N} class indices or {N, C} rows)");
    }
    for (std::size_t i = 0; i < out.size(); ++i)
        if (out[i] < 0 || static_cast<std::size_t>(out[i]) >= classes)
            throw value_error(std::string(who) + ": target " + std::to_string(out[i]) + " at row " + std::to_string(i) +
                              " is not a class index in [0, " + std::to_string(classes) + ")");
    return out;
}

/// Index of the largest score in a row (the first one on ties, like argmax).
inline std::size_t argmax(const float* row, std::size_t c) {
    return static_cast<std::size_t>(std::max_element(row, row + c) - row);
}

inline std::string fixed(double v, int digits) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(digits) << v;
    return os.str();
}

}  // namespace detail

/// Fraction of rows whose highest score is the target class.
class accuracy {
public:
    std::string name() const { return "accuracy"; }
    void reset() { correct_ = total_ = 0; }
    template <class S, class Y>
    void update(const tensor<S>& scores, const tensor<Y>& targets) {
        const auto s = detail::scores_of(scores, "accuracy");
        const std::size_t n = s.shape()[0], c = s.shape()[1];
        const auto y = detail::targets_of(targets, n, c, "accuracy");
        for (std::size_t i = 0; i < n; ++i) correct_ += detail::argmax(s.data() + i * c, c) == static_cast<std::size_t>(y[i]);
        total_ += n;
    }
    /// 0 before any update.
    double value() const { return total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : 0.0; }
    std::vector<std::pair<std::string, double>> values() const { return {{name(), value()}}; }

private:
    std::size_t correct_ = 0, total_ = 0;
};

/// Fraction of rows whose target class is among the k highest scores. Ties count in the
/// target's favour (as TensorFlow's in_top_k): correct when fewer than k classes score
/// strictly higher.
class top_k_accuracy {
public:
    explicit top_k_accuracy(std::size_t k = 5) : k_(k) {
        if (k == 0) throw value_error("top_k_accuracy: k must be at least 1");
    }
    std::string name() const { return "top" + std::to_string(k_) + "_accuracy"; }
    void reset() { correct_ = total_ = 0; }
    template <class S, class Y>
    void update(const tensor<S>& scores, const tensor<Y>& targets) {
        const auto s = detail::scores_of(scores, "top_k_accuracy");
        const std::size_t n = s.shape()[0], c = s.shape()[1];
        const auto y = detail::targets_of(targets, n, c, "top_k_accuracy");
        for (std::size_t i = 0; i < n; ++i) {
            const float* row = s.data() + i * c;
            const float target = row[y[i]];
            const auto higher = static_cast<std::size_t>(std::count_if(row, row + c, [&](float v) { return v > target; }));
            correct_ += higher < k_;
        }
        total_ += n;
    }
    double value() const { return total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : 0.0; }
    std::vector<std::pair<std::string, double>> values() const { return {{name(), value()}}; }

private:
    std::size_t k_;
    std::size_t correct_ = 0, total_ = 0;
};

/// How per-class precision/recall/F1 combine into one number (scikit-learn's meanings):
/// macro: unweighted mean over classes; micro: from the counts pooled over classes (equals
/// accuracy for single-label data); weighted: mean weighted by each class's support;
/// per_class: one value per class ("precision_3").
enum class average { macro, micro, weighted, per_class };

/// Counts of (true class, predicted class) pairs. Rows are true classes, columns predictions.
/// Precision, recall and F1 of a class with an empty denominator are 0 (scikit-learn's
/// zero_division=0).
class confusion_matrix {
public:
    /// `class_names`, when given, label the printed rows and columns.
    explicit confusion_matrix(std::size_t num_classes, std::vector<std::string> class_names = {})
        : c_(num_classes), names_(std::move(class_names)), counts_(num_classes * num_classes, 0) {
        if (num_classes == 0) throw value_error("confusion_matrix: num_classes must be at least 1");
        if (!names_.empty() && names_.size() != num_classes)
            throw value_error("confusion_matrix: " + std::to_string(names_.size()) + " class names for " +
                              std::to_string(num_classes) + " classes");
    }

    std::string name() const { return "confusion_matrix"; }
    std::size_t num_classes() const noexcept { return c_; }
    void reset() { std::fill(counts_.begin(), counts_.end(), 0); }

    template <class S, class Y>
    void update(const tensor<S>& scores, const tensor<Y>& targets) {
        const auto s = detail::scores_of(scores, "confusion_matrix");
        const std::size_t n = s.shape()[0];
        if (s.shape()[1] != c_)
            throw shape_error("confusion_matrix: scores of shape " + to_string(s.shape()) + " for " +
                              std::to_string(c_) + " classes");
        const auto y = detail::targets_of(targets, n, c_, "confusion_matrix");
        for (std::size_t i = 0; i < n; ++i)
            ++counts_[static_cast<std::size_t>(y[i]) * c_ + detail::argmax(s.data() + i * c_, c_)];
    }
    /// Adds one (true, predicted) pair.
    void add(std::size_t truth, std::size_t predicted) {
        if (truth >= c_ || predicted >= c_)
            throw value_error("confusion_matrix::add: class " + std::to_string(std::max(truth, predicted)) +
                              " is not in [0, " + std::to_string(c_) + ")");
        ++counts_[truth * c_ + predicted];
    }

    /// Number of rows of class `truth` predicted as `predicted`.
    std::size_t operator()(std::size_t truth, std::size_t predicted) const { return counts_.at(truth * c_ + predicted); }
    /// The counts as a {C, C} tensor.
    tensor<std::int64_t> matrix() const {
        auto t = tensor<std::int64_t>::uninitialized({c_, c_});
        for (std::size_t i = 0; i < counts_.size(); ++i) t.data()[i] = static_cast<std::int64_t>(counts_[i]);
        return t;
    }

    std::size_t total() const {
        std::size_t s = 0;
        for (auto v : counts_) s += v;
        return s;
    }
    /// Rows whose true class is c.
    std::size_t support(std::size_t c) const {
        std::size_t s = 0;
        for (std::size_t p = 0; p < c_; ++p) s += (*this)(c, p);
        return s;
    }
    std::size_t predicted_count(std::size_t c) const {
        std::size_t s = 0;
        for (std::size_t t = 0; t < c_; ++t) s += (*this)(t, c);
        return s;
    }
    double accuracy() const {
        std::size_t d = 0;
        for (std::size_t c = 0; c < c_; ++c) d += (*this)(c, c);
        return total() ? static_cast<double>(d) / static_cast<double>(total()) : 0.0;
    }

    double precision(std::size_t c) const { return ratio((*this)(c, c), predicted_count(c)); }
    double recall(std::size_t c) const { return ratio((*this)(c, c), support(c)); }
    double f1(std::size_t c) const {
        // 2 tp / (2 tp + fp + fn): equal to the harmonic mean of precision and recall, and 0
        // rather than undefined when both are 0
        const std::size_t tp = (*this)(c, c);
        return ratio(2 * tp, predicted_count(c) + support(c));
    }

    double precision(average avg) const { return combine(avg, [&](std::size_t c) { return precision(c); }); }
    double recall(average avg) const { return combine(avg, [&](std::size_t c) { return recall(c); }); }
    double f1(average avg) const { return combine(avg, [&](std::size_t c) { return f1(c); }); }

    /// The matrix holds no scalar history entries; see report().
    std::vector<std::pair<std::string, double>> values() const { return {}; }

    /// The matrix as a table: rows true classes, columns predicted classes.
    XGRAD_OUTLINE std::string report() const;

    /// Per-class precision, recall, F1 and support, then the accuracy and the macro and
    /// weighted averages (the layout of scikit-learn's classification_report).
    XGRAD_OUTLINE std::string classification_report(int digits = 4) const;

    friend std::ostream& operator<<(std::ostream& os, const confusion_matrix& m) { return os << m.report(); }

private:
    static double ratio(std::size_t a, std::size_t b) {
        return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
    }

    template <class F>
    double combine(average avg, F&& per_class) const {
        switch (avg) {
            case average::micro: {
                // pooled over classes every false positive is some other class's false
                // negative, so micro precision = micro recall = micro F1 = accuracy
                return accuracy();
            }
            case average::weighted: {
                double s = 0;
                for (std::size_t c = 0; c < c_; ++c) s += per_class(c) * static_cast<double>(support(c));
                return total() ? s / static_cast<double>(total()) : 0.0;
            }
            case average::macro: {
                double s = 0;
                for (std::size_t c = 0; c < c_; ++c) s += per_class(c);
                return s / static_cast<double>(c_);
            }
            default:
                throw value_error("confusion_matrix: average::per_class has no single value; ask per class");
        }
    }

    std::size_t c_;
    std::vector<std::string> names_;
    std::vector<std::size_t> counts_;
};

XGRAD_OUTLINE_DEF std::string confusion_matrix::classification_report(int digits) const {
    std::size_t label_w = 12;  // "weighted avg"
    for (std::size_t c = 0; c < c_; ++c)
        label_w = std::max(label_w, names_.empty() ? std::to_string(c).size() : names_[c].size());
    const int w = std::max(9, digits + 3), lw = static_cast<int>(label_w);
    std::ostringstream os;
    auto line = [&](const std::string& label, double p, double r, double f, std::size_t s) {
        os << std::setw(lw) << label << std::setw(w + 1) << detail::fixed(p, digits) << std::setw(w + 1)
           << detail::fixed(r, digits) << std::setw(w + 1) << detail::fixed(f, digits) << std::setw(w + 1) << s
           << '\n';
    };
    os << std::setw(lw) << "" << std::setw(w + 1) << "precision" << std::setw(w + 1) << "recall" << std::setw(w + 1)
       << "f1-score" << std::setw(w + 1) << "support" << "\n\n";
    for (std::size_t c = 0; c < c_; ++c)
        line(names_.empty() ? std::to_string(c) : names_[c], precision(c), recall(c), f1(c), support(c));
    os << '\n'
       << std::setw(lw) << "accuracy" << std::setw(3 * (w + 1)) << detail::fixed(accuracy(), digits)
       << std::setw(w + 1) << total() << '\n';
    line("macro avg", precision(average::macro), recall(average::macro), f1(average::macro), total());
    line("weighted avg", precision(average::weighted), recall(average::weighted), f1(average::weighted), total());
    return os.str();
}
XGRAD_INSTANCE(std::string confusion_matrix::classification_report(int digits) const)

XGRAD_OUTLINE_DEF std::string confusion_matrix::report() const {
    std::vector<std::string> labels(c_);
    std::size_t label_w = 4;  // "true"
    for (std::size_t c = 0; c < c_; ++c) {
        labels[c] = names_.empty() ? std::to_string(c) : names_[c];
        label_w = std::max(label_w, labels[c].size());
    }
    std::size_t cell_w = 1;
    for (auto v : counts_) cell_w = std::max(cell_w, std::to_string(v).size());
    std::ostringstream os;
    os << "confusion matrix (rows: true class, columns: predicted class)\n";
    os << std::setw(static_cast<int>(label_w)) << std::left << "true" << std::right;
    // columns are headed by class numbers: names would make the table too wide
    for (std::size_t c = 0; c < c_; ++c) os << ' ' << std::setw(static_cast<int>(cell_w)) << c;
    os << '\n';
    for (std::size_t t = 0; t < c_; ++t) {
        os << std::setw(static_cast<int>(label_w)) << std::left << labels[t] << std::right;
        for (std::size_t p = 0; p < c_; ++p) os << ' ' << std::setw(static_cast<int>(cell_w)) << (*this)(t, p);
        os << '\n';
    }
    if (!names_.empty()) {
        os << "columns:";
        for (std::size_t c = 0; c < c_; ++c) os << ' ' << c << '=' << names_[c];
        os << '\n';
    }
    return os.str();
}
XGRAD_INSTANCE(std::string confusion_matrix::report() const)

namespace detail {

enum class prf { precision, recall, f1 };

/// precision / recall / f1 as metrics: a confusion matrix sized on the first update.
template <prf Which>
class prf_metric {
public:
    struct options {
        metrics::average average = metrics::average::macro;
        std::size_t num_classes = 0;  ///< 0: taken from the scores' second dimension
    };
    prf_metric() = default;
    explicit prf_metric(options o) : o_(o) {}

    std::string name() const {
        std::string n = Which == prf::precision ? "precision" : Which == prf::recall ? "recall" : "f1";
        if (o_.average == average::micro) n += "_micro";
        if (o_.average == average::weighted) n += "_weighted";
        return n;
    }
    void reset() {
        if (cm_) cm_->reset();
    }
    template <class S, class Y>
    void update(const tensor<S>& scores, const tensor<Y>& targets) {
        if (!cm_) {
            const std::size_t c = o_.num_classes ? o_.num_classes : scores_of(scores, name().c_str()).shape()[1];
            cm_.emplace(c);
        }
        cm_->update(scores, targets);
    }
    std::vector<std::pair<std::string, double>> values() const {
        auto get = [&](auto&& arg) {
            if constexpr (Which == prf::precision) return cm_->precision(arg);
            else if constexpr (Which == prf::recall) return cm_->recall(arg);
            else return cm_->f1(arg);
        };
        if (o_.average != average::per_class) return {{name(), cm_ ? get(o_.average) : 0.0}};
        std::vector<std::pair<std::string, double>> out;
        const std::size_t c = cm_ ? cm_->num_classes() : o_.num_classes;
        for (std::size_t k = 0; k < c; ++k) out.emplace_back(name() + "_" + std::to_string(k), cm_ ? get(k) : 0.0);
        return out;
    }

private:
    options o_;
    std::optional<confusion_matrix> cm_;
};

}  // namespace detail

using precision = detail::prf_metric<detail::prf::precision>;
using recall = detail::prf_metric<detail::prf::recall>;
using f1_score = detail::prf_metric<detail::prf::f1>;

/// What `metric` can hold.
template <class M>
concept metric_like = requires(M m, const M cm, const tensor<float>& s, const tensor<std::int64_t>& y) {
    { cm.name() } -> std::convertible_to<std::string>;
    m.reset();
    m.update(s, y);
    { cm.values() } -> std::convertible_to<std::vector<std::pair<std::string, double>>>;
};

/// Any metric, held by value. Copies share nothing. `get<M>()` reaches the concrete metric
/// (e.g. the confusion matrix an evaluate() filled).
class metric {
public:
    template <metric_like M>
        requires(!std::is_same_v<std::remove_cvref_t<M>, metric>)
    metric(M m) : self_(std::make_unique<model<M>>(std::move(m))) {}
    metric(const metric& o) : self_(o.self_->clone()) {}
    metric(metric&&) noexcept = default;
    metric& operator=(const metric& o) {
        self_ = o.self_->clone();
        return *this;
    }
    metric& operator=(metric&&) noexcept = default;

    std::string name() const { return self_->name(); }
    void reset() { self_->reset(); }
    void update(const tensor<float>& scores, const tensor<std::int64_t>& targets) { self_->update(scores, targets); }
    void update(const tensor<float>& scores, const tensor<float>& targets) { self_->update(scores, targets); }
    template <class S, class Y>
    void update(const tensor<S>& scores, const tensor<Y>& targets) {
        using target = std::conditional_t<std::is_floating_point_v<Y>, float, std::int64_t>;
        update(scores.template astype<float>(), targets.template astype<target>());
    }
    std::vector<std::pair<std::string, double>> values() const { return self_->values(); }
    /// A printable table, or "" for metrics that are just their values.
    std::string report() const { return self_->report(); }

    /// The held metric, or nullptr when it is not an M.
    template <class M>
    const M* get() const {
        auto* p = dynamic_cast<const model<M>*>(self_.get());
        return p ? &p->m : nullptr;
    }

private:
    struct concept_t {
        virtual ~concept_t() = default;
        virtual std::unique_ptr<concept_t> clone() const = 0;
        virtual std::string name() const = 0;
        virtual void reset() = 0;
        virtual void update(const tensor<float>&, const tensor<std::int64_t>&) = 0;
        virtual void update(const tensor<float>&, const tensor<float>&) = 0;
        virtual std::vector<std::pair<std::string, double>> values() const = 0;
        virtual std::string report() const = 0;
    };
    template <class M>
    struct model final : concept_t {
        explicit model(M x) : m(std::move(x)) {}
        std::unique_ptr<concept_t> clone() const override { return std::make_unique<model>(m); }
        std::string name() const override { return m.name(); }
        void reset() override { m.reset(); }
        void update(const tensor<float>& s, const tensor<std::int64_t>& y) override { m.update(s, y); }
        void update(const tensor<float>& s, const tensor<float>& y) override { m.update(s, y); }
        std::vector<std::pair<std::string, double>> values() const override { return m.values(); }
        std::string report() const override {
            if constexpr (requires { m.report(); })
                return m.report();
            else
                return {};
        }
        M m;
    };
    std::unique_ptr<concept_t> self_;
};

}  // namespace xgrad::metrics
