#pragma once
// Callbacks: code fit() runs at the start and end of training, of each epoch and of each batch.
//   early_stopping       stop when a monitored value stops improving (optionally restore the best weights)
//   model_checkpoint     save the model (the best one, or every epoch) as safetensors
//   csv_logger           one CSV line per epoch
//   lr_scheduler         step an optim:: scheduler each epoch (or each batch), log "lr"
//   reduce_lr_on_plateau step an optim::reduce_lr_on_plateau with a monitored value
//   backup_and_restore   save everything a fit needs to resume after being killed, and resume
//   lambda               any of the hooks as lambdas
// A callback is a class derived from `callback`; the factories return shared pointers so that
// the caller can keep one and read it afterwards (es->stopped_epoch()).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../io/safetensors.hpp"
#include "../optim/optimizer.hpp"
#include "../optim/scheduler.hpp"
#include "history.hpp"

namespace xgrad {

class callback;

/// Named numbers (a callback's or scheduler's resumable state).
using scalar_state = std::vector<std::pair<std::string, double>>;

/// What callbacks see of a running fit(). fit() implements the model and optimizer access for
/// its concrete types; the counters are updated as training advances.
class train_context {
public:
    virtual ~train_context() = default;

    /// Copies of the model's parameters and buffers under their dotted names.
    virtual std::vector<io::named_tensor> model_state() const = 0;
    /// Restores a model_state() (same names and shapes; value_error/shape_error otherwise).
    virtual void load_model_state(const std::vector<io::named_tensor>& state) = 0;
    /// Appends the optimizer's tensors (names prefixed) and scalars (to `scalars`).
    virtual void optimizer_state(std::vector<io::named_tensor>& tensors, scalar_state& scalars,
                                 const std::string& prefix) const = 0;
    virtual void load_optimizer_state(const io::safetensors_file& file, const scalar_state& scalars,
                                      const std::string& prefix) = 0;
    /// Copies of the gradients of the trainable parameters under their dotted names (empty
    /// where the model is not an xgrad::nn layer). fit() zeroes gradients after each step:
    /// callbacks read the copies in `gradients` instead (see capture_gradients).
    virtual std::vector<io::named_tensor> model_gradients() const { return {}; }
    /// The model's random state (dropout), if it has one.
    virtual scalar_state rng_state() const { return {}; }
    virtual void load_rng_state(const scalar_state&) {}

    /// Saves the model as a safetensors file.
    void save_model(const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {}) const {
        io::save_safetensors(path, model_state(), metadata);
    }

    std::size_t epoch = 0;              ///< the current epoch, 0-based
    std::size_t epochs = 0;             ///< fit's .epochs
    std::size_t initial_epoch = 0;      ///< where this fit started (a callback may move it in on_train_begin)
    std::size_t batches_per_epoch = 0;
    std::size_t global_step = 0;        ///< optimizer steps since the fit (or its resumed run) began
    bool stop_training = false;         ///< set by a callback to end fit after this epoch
    optim::lr_schedulable* optimizer = nullptr;
    /// Set by a callback that wants `gradients`: fit then copies model_gradients() there before
    /// every optimizer step (after clipping).
    bool capture_gradients = false;
    std::vector<io::named_tensor> gradients;
    xgrad::history* history = nullptr;
    std::vector<callback*> callbacks;   ///< every callback of this fit, in order
};

class callback {
public:
    virtual ~callback() = default;
    virtual void on_train_begin(train_context&) {}
    virtual void on_epoch_begin(train_context&) {}
    /// After each optimizer step; `running` holds the epoch's running loss and metrics.
    virtual void on_batch_end(train_context&, std::size_t /*batch*/, const logs& /*running*/) {}
    /// After the epoch's validation; callbacks may add entries (they reach the history).
    virtual void on_epoch_end(train_context&, logs&) {}
    virtual void on_train_end(train_context&) {}

    /// Numbers that restore this callback when a fit resumes (see backup_and_restore).
    virtual scalar_state state() const { return {}; }
    virtual void load_state(const scalar_state&) {}
};

using callback_ptr = std::shared_ptr<callback>;

namespace callbacks {

/// Whether smaller or larger values of a monitored quantity are better. `automatic` picks max
/// for names containing "acc", "precision", "recall", "f1" or "auc", min otherwise (losses).
enum class mode { automatic, min, max };

namespace detail {

inline bool maximize(const std::string& monitor, mode m) {
    if (m != mode::automatic) return m == mode::max;
    for (const char* k : {"acc", "precision", "recall", "f1", "auc"})
        if (monitor.find(k) != std::string::npos) return true;
    return false;
}

inline double monitored(const logs& l, const std::string& monitor, const char* who) {
    if (auto v = l.get(monitor)) return *v;
    throw value_error(std::string(who) + ": monitored value '" + monitor + "' is not among this epoch's values (" +
                      l.names() + "); validation values need fit's .validation");
}

inline double find_scalar(const scalar_state& s, const std::string& name, const char* who) {
    for (auto& [k, v] : s)
        if (k == name) return v;
    throw value_error(std::string(who) + ": saved state lacks '" + name + "'");
}

/// Tracks the best value of a monitored quantity.
struct best_tracker {
    std::string monitor;
    bool max = false;
    double min_delta = 0;
    double best = std::numeric_limits<double>::quiet_NaN();
    std::int64_t best_epoch = -1;

    bool improves(double v) const {
        if (std::isnan(v)) return false;
        if (best_epoch < 0) return true;
        return max ? v > best + min_delta : v < best - min_delta;
    }
};

}  // namespace detail

// --- early stopping ------------------------------------------------------------------------

struct early_stopping_options {
    std::string monitor = "val_loss";
    /// Epochs without improvement to tolerate: training stops at the patience-th (Keras' rule;
    /// 0 stops at the first epoch that does not improve).
    std::size_t patience = 0;
    /// An improvement must exceed this (absolute) amount.
    double min_delta = 0;
    callbacks::mode mode = callbacks::mode::automatic;
    /// At the end of training, put back the weights of the best epoch.
    bool restore_best = false;
};

class early_stopping_callback : public callback {
public:
    explicit early_stopping_callback(early_stopping_options o) : o_(std::move(o)) {
        if (!(o_.min_delta >= 0)) throw value_error("early_stopping: min_delta must be >= 0");
        t_.monitor = o_.monitor;
        t_.max = detail::maximize(o_.monitor, o_.mode);
        t_.min_delta = o_.min_delta;
    }

    void on_epoch_end(train_context& ctx, logs& l) override {
        const double v = detail::monitored(l, o_.monitor, "early_stopping");
        if (t_.improves(v)) {
            t_.best = v;
            t_.best_epoch = static_cast<std::int64_t>(ctx.epoch);
            wait_ = 0;
            if (o_.restore_best) best_weights_ = ctx.model_state();
            return;
        }
        if (++wait_ >= o_.patience) {
            ctx.stop_training = true;
            stopped_epoch_ = static_cast<std::int64_t>(ctx.epoch);
        }
    }
    void on_train_end(train_context& ctx) override {
        if (o_.restore_best && !best_weights_.empty() && static_cast<std::int64_t>(ctx.epoch) != t_.best_epoch)
            ctx.load_model_state(best_weights_);
    }

    scalar_state state() const override {
        return {{"best", t_.best}, {"best_epoch", static_cast<double>(t_.best_epoch)}, {"wait", static_cast<double>(wait_)}};
    }
    void load_state(const scalar_state& s) override {
        t_.best = detail::find_scalar(s, "best", "early_stopping");
        t_.best_epoch = static_cast<std::int64_t>(detail::find_scalar(s, "best_epoch", "early_stopping"));
        wait_ = static_cast<std::size_t>(detail::find_scalar(s, "wait", "early_stopping"));
        // the best weights themselves are not in a backup; restore_best then keeps the resumed run's best
    }

    /// The epoch (0-based) at which training was stopped, or -1.
    std::int64_t stopped_epoch() const noexcept { return stopped_epoch_; }
    std::int64_t best_epoch() const noexcept { return t_.best_epoch; }
    double best() const noexcept { return t_.best; }

private:
    early_stopping_options o_;
    detail::best_tracker t_;
    std::size_t wait_ = 0;
    std::int64_t stopped_epoch_ = -1;
    std::vector<io::named_tensor> best_weights_;
};

/// Stops fit when `monitor` has not improved for `patience` epochs.
inline std::shared_ptr<early_stopping_callback> early_stopping(early_stopping_options o = {}) {
    return std::make_shared<early_stopping_callback>(std::move(o));
}

// --- model checkpoint ----------------------------------------------------------------------

struct model_checkpoint_options {
    std::string monitor = "val_loss";
    callbacks::mode mode = callbacks::mode::automatic;
    /// Save only when `monitor` improves; otherwise after every epoch.
    bool save_best_only = true;
};

class model_checkpoint_callback : public callback {
public:
    model_checkpoint_callback(std::filesystem::path path, model_checkpoint_options o)
        : path_(std::move(path)), o_(std::move(o)) {
        t_.monitor = o_.monitor;
        t_.max = detail::maximize(o_.monitor, o_.mode);
    }

    void on_epoch_end(train_context& ctx, logs& l) override {
        if (o_.save_best_only) {
            const double v = detail::monitored(l, o_.monitor, "model_checkpoint");
            if (!t_.improves(v)) return;
            t_.best = v;
            t_.best_epoch = static_cast<std::int64_t>(ctx.epoch);
        }
        std::map<std::string, std::string> meta{{"format", "pt"}, {"epoch", std::to_string(ctx.epoch + 1)}};
        std::ostringstream os;
        os.precision(17);
        for (auto& [k, v] : l) {
            os.str("");
            os << v;
            meta.emplace(k, os.str());
        }
        last_path_ = path_for(ctx.epoch);
        ctx.save_model(last_path_, meta);
        ++saves_;
    }

    scalar_state state() const override {
        return {{"best", t_.best}, {"best_epoch", static_cast<double>(t_.best_epoch)}};
    }
    void load_state(const scalar_state& s) override {
        t_.best = detail::find_scalar(s, "best", "model_checkpoint");
        t_.best_epoch = static_cast<std::int64_t>(detail::find_scalar(s, "best_epoch", "model_checkpoint"));
    }

    /// "{epoch}" in the path becomes the 1-based epoch number.
    std::filesystem::path path_for(std::size_t epoch) const {
        std::string p = path_.string();
        const std::string key = "{epoch}";
        for (auto at = p.find(key); at != std::string::npos; at = p.find(key, at))
            p.replace(at, key.size(), std::to_string(epoch + 1));
        return p;
    }
    const std::filesystem::path& last_saved() const noexcept { return last_path_; }
    std::size_t saves() const noexcept { return saves_; }
    double best() const noexcept { return t_.best; }
    std::int64_t best_epoch() const noexcept { return t_.best_epoch; }

private:
    std::filesystem::path path_;
    model_checkpoint_options o_;
    detail::best_tracker t_;
    std::filesystem::path last_path_;
    std::size_t saves_ = 0;
};

/// Saves the model to `path` (safetensors; "{epoch}" is replaced by the epoch number) when
/// `monitor` improves, or every epoch with .save_best_only = false. The file's metadata holds
/// the epoch and its logged values.
inline std::shared_ptr<model_checkpoint_callback> model_checkpoint(std::filesystem::path path,
                                                                   model_checkpoint_options o = {}) {
    return std::make_shared<model_checkpoint_callback>(std::move(path), std::move(o));
}

// --- CSV logger ----------------------------------------------------------------------------

struct csv_logger_options {
    char separator = ',';
    /// Add to an existing file (a resumed fit) instead of starting a new one.
    bool append = false;
};

class csv_logger_callback : public callback {
public:
    csv_logger_callback(std::filesystem::path path, csv_logger_options o) : path_(std::move(path)), o_(o) {}

    void on_train_begin(train_context&) override {
        const bool keep = o_.append && std::filesystem::exists(path_);
        if (keep) {
            // continue the existing columns
            std::ifstream in(path_);
            std::string header;
            std::getline(in, header);
            columns_.clear();
            std::stringstream ss(header);
            for (std::string c; std::getline(ss, c, o_.separator);)
                if (c != "epoch") columns_.push_back(c);
        }
        out_.open(path_, keep ? std::ios::app : std::ios::trunc);
        if (!out_) throw io_error(path_.string() + ": cannot open for writing");
        header_written_ = keep && !columns_.empty();
    }
    void on_epoch_end(train_context& ctx, logs& l) override {
        if (!header_written_) {
            columns_.clear();
            for (auto& [k, v] : l) columns_.push_back(k);
            out_ << "epoch";
            for (auto& c : columns_) out_ << o_.separator << c;
            out_ << '\n';
            header_written_ = true;
        }
        out_ << ctx.epoch + 1;
        out_.precision(std::numeric_limits<double>::max_digits10);
        for (auto& c : columns_) {
            out_ << o_.separator;
            if (auto v = l.get(c)) out_ << *v;
        }
        out_ << '\n' << std::flush;  // a killed run keeps every finished epoch
        if (!out_) throw io_error(path_.string() + ": write failed");
    }
    void on_train_end(train_context&) override { out_.close(); }

private:
    std::filesystem::path path_;
    csv_logger_options o_;
    std::ofstream out_;
    std::vector<std::string> columns_;
    bool header_written_ = false;
};

/// Writes "epoch,loss,accuracy,val_loss,..." and one line per epoch (flushed as it goes).
inline std::shared_ptr<csv_logger_callback> csv_logger(std::filesystem::path path, csv_logger_options o = {}) {
    return std::make_shared<csv_logger_callback>(std::move(path), o);
}

// --- learning-rate schedules ---------------------------------------------------------------

enum class schedule_unit { epoch, batch };

class lr_scheduler_callback : public callback {
public:
    lr_scheduler_callback(optim::lr_scheduler& s, schedule_unit unit) : s_(&s), unit_(unit) {}
    void on_batch_end(train_context&, std::size_t, const logs&) override {
        if (unit_ == schedule_unit::batch) s_->step();
    }
    void on_epoch_end(train_context& ctx, logs& l) override {
        // log the rate this epoch trained with, then advance
        if (ctx.optimizer) l.set("lr", ctx.optimizer->lr(0));
        if (unit_ == schedule_unit::epoch) s_->step();
    }
    scalar_state state() const override { return s_->state_dict(); }
    void load_state(const scalar_state& s) override { s_->load_state_dict(s); }

private:
    optim::lr_scheduler* s_;
    schedule_unit unit_;
};

/// Steps `scheduler` after every epoch (or every batch) and logs "lr". The scheduler must
/// outlive the fit.
inline std::shared_ptr<lr_scheduler_callback> lr_scheduler(optim::lr_scheduler& scheduler,
                                                           schedule_unit unit = schedule_unit::epoch) {
    return std::make_shared<lr_scheduler_callback>(scheduler, unit);
}

class reduce_lr_on_plateau_callback : public callback {
public:
    reduce_lr_on_plateau_callback(optim::reduce_lr_on_plateau& s, std::string monitor)
        : s_(&s), monitor_(std::move(monitor)) {}
    void on_epoch_end(train_context& ctx, logs& l) override {
        if (ctx.optimizer) l.set("lr", ctx.optimizer->lr(0));
        s_->step(detail::monitored(l, monitor_, "reduce_lr_on_plateau"));
    }
    scalar_state state() const override { return s_->state_dict(); }
    void load_state(const scalar_state& s) override { s_->load_state_dict(s); }

private:
    optim::reduce_lr_on_plateau* s_;
    std::string monitor_;
};

/// Steps `scheduler` with the epoch's `monitor` value (its mode must match the value's sense).
inline std::shared_ptr<reduce_lr_on_plateau_callback> reduce_lr_on_plateau(optim::reduce_lr_on_plateau& scheduler,
                                                                           std::string monitor = "val_loss") {
    return std::make_shared<reduce_lr_on_plateau_callback>(scheduler, std::move(monitor));
}

// --- lambda ---------------------------------------------------------------------------------

struct lambda_hooks {
    std::function<void(train_context&)> on_train_begin = {};
    std::function<void(train_context&)> on_epoch_begin = {};
    std::function<void(train_context&, std::size_t, const logs&)> on_batch_end = {};
    std::function<void(train_context&, logs&)> on_epoch_end = {};
    std::function<void(train_context&)> on_train_end = {};
};

class lambda_callback : public callback {
public:
    explicit lambda_callback(lambda_hooks h) : h_(std::move(h)) {}
    void on_train_begin(train_context& c) override {
        if (h_.on_train_begin) h_.on_train_begin(c);
    }
    void on_epoch_begin(train_context& c) override {
        if (h_.on_epoch_begin) h_.on_epoch_begin(c);
    }
    void on_batch_end(train_context& c, std::size_t b, const logs& l) override {
        if (h_.on_batch_end) h_.on_batch_end(c, b, l);
    }
    void on_epoch_end(train_context& c, logs& l) override {
        if (h_.on_epoch_end) h_.on_epoch_end(c, l);
    }
    void on_train_end(train_context& c) override {
        if (h_.on_train_end) h_.on_train_end(c);
    }

private:
    lambda_hooks h_;
};

/// A callback made of lambdas: lambda({.on_epoch_end = [](auto& ctx, auto& logs) { ... }}).
inline std::shared_ptr<lambda_callback> lambda(lambda_hooks h) { return std::make_shared<lambda_callback>(std::move(h)); }

// --- backup and restore --------------------------------------------------------------------

namespace detail {

inline std::string encode_doubles(const std::vector<double>& v) {
    std::string s;
    char buf[40];
    for (std::size_t i = 0; i < v.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%a", v[i]);  // hex floats: exact
        if (i) s += ' ';
        s += buf;
    }
    return s;
}

inline std::vector<double> decode_doubles(const std::string& s, const std::string& what) {
    std::vector<double> out;
    std::istringstream is(s);
    for (std::string tok; is >> tok;) {
        char* end = nullptr;
        const double v = std::strtod(tok.c_str(), &end);
        if (end != tok.c_str() + tok.size()) throw format_error(what + ": bad number '" + tok + "'");
        out.push_back(v);
    }
    return out;
}

inline std::string encode_scalars(const scalar_state& s) {
    std::string out;
    char buf[40];
    for (auto& [k, v] : s) {
        std::snprintf(buf, sizeof buf, "%a", v);
        out += k + '=' + buf + '\n';
    }
    return out;
}

inline scalar_state decode_scalars(const std::string& text, const std::string& what) {
    scalar_state s;
    std::istringstream is(text);
    for (std::string line; std::getline(is, line);) {
        const auto eq = line.rfind('=');
        if (eq == std::string::npos) throw format_error(what + ": bad entry '" + line + "'");
        s.emplace_back(line.substr(0, eq), decode_doubles(line.substr(eq + 1), what).at(0));
    }
    return s;
}

}  // namespace detail

struct backup_options {
    /// Remove the backup when fit finishes normally (a later fit then starts afresh).
    bool delete_on_end = true;
};

/// Makes a fit resumable: after every epoch it saves (atomically, one safetensors file) the
/// model, the optimizer state, the model's random state, the history and every callback's
/// state; when a fit starts and the file exists, it restores all of that and the fit continues
/// with the next epoch, so that the resumed run matches an uninterrupted one.
class backup_and_restore_callback : public callback {
public:
    backup_and_restore_callback(std::filesystem::path path, backup_options o) : path_(std::move(path)), o_(o) {}

    void on_train_begin(train_context& ctx) override {
        resumed_ = false;
        if (!std::filesystem::exists(path_)) return;
        const auto f = io::load_safetensors(path_);
        const std::string who = path_.string();
        auto meta = [&](const std::string& k) -> const std::string& {
            auto it = f.metadata.find(k);
            if (it == f.metadata.end()) throw format_error(who + ": backup metadata lacks '" + k + "'");
            return it->second;
        };
        std::vector<io::named_tensor> model;
        for (const auto& t : f.tensors)
            if (t.name.rfind("model.", 0) == 0) model.push_back({t.name.substr(6), t.value, t.dtype});
        ctx.load_model_state(model);
        ctx.load_optimizer_state(f, detail::decode_scalars(meta("optimizer"), who), "optimizer.");
        ctx.load_rng_state(detail::decode_scalars(meta("rng"), who));
        const std::size_t n = ctx.callbacks.size();
        // a callback the saved run did not have (by position) starts fresh
        for (std::size_t i = 0; i < n; ++i)
            if (auto it = f.metadata.find("callback." + std::to_string(i));
                it != f.metadata.end() && ctx.callbacks[i] != this)
                ctx.callbacks[i]->load_state(detail::decode_scalars(it->second, who));
        if (ctx.history) {
            const auto epochs = detail::decode_doubles(meta("history.epochs"), who);
            std::vector<logs> rows(epochs.size());
            std::istringstream names(meta("history.keys"));
            for (std::string k; std::getline(names, k);) {
                const auto vals = detail::decode_doubles(meta("history." + k), who);
                if (vals.size() != rows.size()) throw format_error(who + ": history series '" + k + "' has the wrong length");
                for (std::size_t e = 0; e < rows.size(); ++e)
                    if (!std::isnan(vals[e])) rows[e].set(k, vals[e]);
            }
            *ctx.history = {};
            for (std::size_t e = 0; e < rows.size(); ++e) ctx.history->record(rows[e], static_cast<std::size_t>(epochs[e]));
        }
        ctx.initial_epoch = static_cast<std::size_t>(std::stoull(meta("next_epoch")));
        ctx.global_step = static_cast<std::size_t>(std::stoull(meta("global_step")));
        resumed_ = true;
    }

    void on_epoch_end(train_context& ctx, logs& l) override {
        std::vector<io::named_tensor> tensors;
        for (auto& t : ctx.model_state()) tensors.push_back({"model." + t.name, std::move(t.value), std::move(t.dtype)});
        scalar_state opt_scalars;
        ctx.optimizer_state(tensors, opt_scalars, "optimizer.");
        std::map<std::string, std::string> meta{{"next_epoch", std::to_string(ctx.epoch + 1)},
                                                {"global_step", std::to_string(ctx.global_step)},
                                                {"optimizer", detail::encode_scalars(opt_scalars)},
                                                {"rng", detail::encode_scalars(ctx.rng_state())}};
        for (std::size_t i = 0; i < ctx.callbacks.size(); ++i)
            if (ctx.callbacks[i] != this)
                meta["callback." + std::to_string(i)] = detail::encode_scalars(ctx.callbacks[i]->state());
        // the history as it will be once this epoch is recorded
        xgrad::history h = ctx.history ? *ctx.history : xgrad::history{};
        h.record(l, ctx.epoch);
        std::string keys;
        for (auto& k : h.keys()) {
            keys += k + '\n';
            meta["history." + k] = detail::encode_doubles(h[k]);
        }
        meta["history.keys"] = keys;
        std::vector<double> epochs(h.epochs().begin(), h.epochs().end());
        meta["history.epochs"] = detail::encode_doubles(epochs);
        io::save_safetensors(path_, tensors, meta);
    }

    void on_train_end(train_context&) override {
        // reached only when fit finished (all epochs, or stopped by a callback)
        if (o_.delete_on_end) std::filesystem::remove(path_);
    }

    /// Whether the last fit started from a backup.
    bool resumed() const noexcept { return resumed_; }

private:
    std::filesystem::path path_;
    backup_options o_;
    bool resumed_ = false;
};

inline std::shared_ptr<backup_and_restore_callback> backup_and_restore(std::filesystem::path path,
                                                                       backup_options o = {}) {
    return std::make_shared<backup_and_restore_callback>(std::move(path), o);
}

}  // namespace callbacks
}  // namespace xgrad
