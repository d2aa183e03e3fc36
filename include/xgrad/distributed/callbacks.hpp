#pragma once
// fit() callbacks for data-parallel runs:
//   metric_average(): at the end of every epoch, replaces each log value ("loss", "accuracy",
//     "val_loss" ...) by its mean over the ranks, so that early stopping, schedulers and
//     checkpoints decide the same on every rank. Put it first in the callback list.
//   root_only(cb): runs cb on rank 0 only (checkpoints, CSV logs, anything that writes).
// The mean over ranks equals the mean over the global batch when every rank sees the same
// number of samples (the sharded loader pads to equal shards).
#include <memory>
#include <string>
#include <vector>

#include "../train/callbacks.hpp"
#include "environment.hpp"

namespace xgrad::distributed {

class metric_average_callback : public callback {
public:
    void on_epoch_end(train_context&, logs& l) override {
        std::vector<std::string> names;
        std::vector<double> values;
        for (auto& [k, v] : l) {
            names.push_back(k);
            values.push_back(v);
        }
        // every rank must hold the same names in the same order
        std::vector<double> count{static_cast<double>(values.size())};
        allreduce_sum(count);
        if (count[0] != static_cast<double>(values.size()) * static_cast<double>(size()))
            throw distributed_error("xgrad::distributed::metric_average: the ranks log different metrics (rank " +
                                    std::to_string(rank()) + " has " + std::to_string(values.size()) + ")");
        allreduce_sum(values);
        const double n = static_cast<double>(size());
        for (std::size_t i = 0; i < names.size(); ++i) l.set(names[i], values[i] / n);
    }
};

inline callback_ptr metric_average() { return std::make_shared<metric_average_callback>(); }

class root_only_callback : public callback {
public:
    explicit root_only_callback(callback_ptr inner) : inner_(std::move(inner)), root_(is_root()) {
        if (!inner_) throw value_error("distributed::root_only: the callback is null");
    }
    void on_train_begin(train_context& c) override {
        if (root_) inner_->on_train_begin(c);
    }
    void on_epoch_begin(train_context& c) override {
        if (root_) inner_->on_epoch_begin(c);
    }
    void on_batch_end(train_context& c, std::size_t b, const logs& l) override {
        if (root_) inner_->on_batch_end(c, b, l);
    }
    void on_epoch_end(train_context& c, logs& l) override {
        if (root_) inner_->on_epoch_end(c, l);
    }
    void on_train_end(train_context& c) override {
        if (root_) inner_->on_train_end(c);
    }
    scalar_state state() const override { return inner_->state(); }
    void load_state(const scalar_state& s) override { inner_->load_state(s); }

private:
    callback_ptr inner_;
    bool root_;
};

/// cb on rank 0 only (model_checkpoint, csv_logger ...). Callbacks that change training
/// (early stopping, schedulers) must run on every rank instead, after metric_average().
inline callback_ptr root_only(callback_ptr cb) { return std::make_shared<root_only_callback>(std::move(cb)); }

}  // namespace xgrad::distributed
