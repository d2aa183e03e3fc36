#pragma once
// Named values of one batch or epoch (`logs`) and the per-epoch record of a whole fit
// (`history`): every loss and metric, training and validation ("loss", "val_accuracy", ...).
#include <cmath>
#include <cstddef>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"

namespace xgrad {

/// Ordered (name, value) pairs; setting an existing name replaces its value in place.
class logs {
public:
    logs() = default;
    logs(std::initializer_list<std::pair<std::string, double>> items) {
        for (auto& [k, v] : items) set(k, v);
    }

    void set(std::string_view name, double value) {
        for (auto& [k, v] : items_)
            if (k == name) {
                v = value;
                return;
            }
        items_.emplace_back(std::string(name), value);
    }
    std::optional<double> get(std::string_view name) const {
        for (auto& [k, v] : items_)
            if (k == name) return v;
        return std::nullopt;
    }
    /// index_error naming the missing entry and the ones present.
    double at(std::string_view name) const {
        if (auto v = get(name)) return *v;
        throw index_error("logs: no value named '" + std::string(name) + "' (have: " + names() + ")");
    }
    bool contains(std::string_view name) const { return get(name).has_value(); }
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }
    auto begin() const noexcept { return items_.begin(); }
    auto end() const noexcept { return items_.end(); }

    /// "loss, accuracy"
    XGRAD_OUTLINE std::string names() const;

private:
    std::vector<std::pair<std::string, double>> items_;
};

XGRAD_OUTLINE_DEF std::string logs::names() const {
    std::string s;
    for (auto& [k, v] : items_) s += (s.empty() ? "" : ", ") + k;
    return s;
}
XGRAD_INSTANCE(std::string logs::names() const)

/// Per-epoch values of every loss and metric. A name missing in some epoch (a validation run
/// every other epoch, a metric added later) reads NaN there.
class history {
public:
    /// Appends one epoch (numbered from 0 in call order; `epoch_number` records the fit's own
    /// count, which differs when a fit resumed).
    XGRAD_OUTLINE void record(const logs& values, std::size_t epoch_number);
    void record(const logs& values) { record(values, epochs_.size()); }

    std::size_t size() const noexcept { return epochs_.size(); }
    bool empty() const noexcept { return epochs_.empty(); }
    /// The fit's epoch number (0-based) of each record.
    const std::vector<std::size_t>& epochs() const noexcept { return epochs_; }

    bool contains(std::string_view name) const {
        for (auto& s : series_)
            if (s.first == name) return true;
        return false;
    }
    /// Names in the order they first appeared.
    std::vector<std::string> keys() const {
        std::vector<std::string> k;
        for (auto& s : series_) k.push_back(s.first);
        return k;
    }
    /// One value per recorded epoch; index_error for an unknown name.
    XGRAD_OUTLINE const std::vector<double>& operator[](std::string_view name) const;
    /// The latest value (NaN when the last epoch lacks it).
    double last(std::string_view name) const {
        const auto& s = (*this)[name];
        return s.empty() ? std::numeric_limits<double>::quiet_NaN() : s.back();
    }
    /// Epoch `i`'s values as logs (entries that are NaN there left out).
    XGRAD_OUTLINE logs at(std::size_t i) const;

    /// "epoch,loss,accuracy,...": one line per epoch (epochs 1-based, missing values empty).
    XGRAD_OUTLINE std::string to_csv(char sep = ',') const;

private:
    std::vector<double>& column(const std::string& name) {
        for (auto& s : series_)
            if (s.first == name) return s.second;
        series_.emplace_back(name, std::vector<double>(epochs_.size(), std::numeric_limits<double>::quiet_NaN()));
        return series_.back().second;
    }

    std::vector<std::pair<std::string, std::vector<double>>> series_;
    std::vector<std::size_t> epochs_;
};

XGRAD_OUTLINE_DEF std::string history::to_csv(char sep) const {
    std::ostringstream os;
    os << "epoch";
    for (auto& s : series_) os << sep << s.first;
    os << '\n' << std::setprecision(std::numeric_limits<double>::max_digits10);
    for (std::size_t i = 0; i < epochs_.size(); ++i) {
        os << epochs_[i] + 1;
        for (auto& s : series_) {
            os << sep;
            if (!std::isnan(s.second[i])) os << s.second[i];
        }
        os << '\n';
    }
    return os.str();
}
XGRAD_INSTANCE(std::string history::to_csv(char sep) const)

XGRAD_OUTLINE_DEF logs history::at(std::size_t i) const {
    logs l;
    for (auto& [k, s] : series_)
        if (!std::isnan(s.at(i))) l.set(k, s[i]);
    return l;
}
XGRAD_INSTANCE(logs history::at(std::size_t i) const)

XGRAD_OUTLINE_DEF const std::vector<double>& history::operator[](std::string_view name) const {
    for (auto& s : series_)
        if (s.first == name) return s.second;
    std::string have;
    for (auto& s : series_) have += (have.empty() ? "" : ", ") + s.first;
    throw index_error("history: no series named '" + std::string(name) + "' (have: " + have + ")");
}
XGRAD_INSTANCE(const std::vector<double>& history::operator[](std::string_view name) const)

XGRAD_OUTLINE_DEF void history::record(const logs& values, std::size_t epoch_number) {
    for (auto& [k, v] : values) column(k);
    for (auto& s : series_) s.second.push_back(std::numeric_limits<double>::quiet_NaN());
    for (auto& [k, v] : values) column(k).back() = v;
    epochs_.push_back(epoch_number);
}
XGRAD_INSTANCE(void history::record(const logs& values, std::size_t epoch_number))

}  // namespace xgrad
