#pragma once
// callbacks::tensorboard(logdir): training curves, weight and gradient histograms and images in
// TensorBoard's event files (io/tensorboard.hpp writes them; no TensorFlow needed).
//   batch/<name>     the running loss and metrics after every update_freq-th optimizer step,
//                    and batch/lr (step: the global step, 1-based)
//   epoch/<name>     every value of the epoch (loss, metrics, val_*), and epoch/lr, the first
//                    parameter group's learning rate (step: the 0-based epoch)
//   weights/<name>   histograms of every floating-point parameter and buffer, and
//   gradients/<name> of every trainable parameter's gradient at the epoch's last step,
//                    every histogram_freq-th epoch
// and whatever the on_epoch_end hook writes (images: confusion_matrix_image below).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "../io/tensorboard.hpp"
#include "callbacks.hpp"
#include "metrics.hpp"

namespace xgrad {

namespace callbacks {

struct tensorboard_options {
    /// Batch scalars every this many optimizer steps (0: epoch scalars only).
    std::size_t update_freq = 1;
    /// Weight and gradient histograms every this many epochs (0: none). fit copies the
    /// gradients before the last step of such an epoch (train_context::capture_gradients).
    std::size_t histogram_freq = 1;
    std::size_t bins = 30;
    /// Runs after the epoch's scalars: write images or anything else with the writer.
    std::function<void(io::event_writer&, train_context&, const logs&)> on_epoch_end = {};
};

class tensorboard_callback : public callback {
public:
    tensorboard_callback(const std::filesystem::path& logdir, tensorboard_options o)
        : w_(logdir), o_(std::move(o)) {
        if (o_.bins == 0) throw value_error("tensorboard: bins must be at least 1");
    }

    // Gradients are copied only for the epoch's last step: capture starts once the gap between
    // steps (accumulate) says the next step is the last. An epoch whose histograms found no
    // copy (one step per epoch) makes capture start with every later epoch.
    void on_epoch_begin(train_context& ctx) override {
        last_batch_ = -1;
        ctx.capture_gradients = histograms_due(ctx) && (capture_all_ || ctx.batches_per_epoch <= 1);
    }

    void on_batch_end(train_context& ctx, std::size_t batch, const logs& running) override {
        const auto b = static_cast<std::ptrdiff_t>(batch);
        if (histograms_due(ctx) && b + (b - last_batch_) + 1 >= static_cast<std::ptrdiff_t>(ctx.batches_per_epoch))
            ctx.capture_gradients = true;
        last_batch_ = b;
        if (o_.update_freq == 0 || ctx.global_step % o_.update_freq != 0) return;
        const auto step = static_cast<std::int64_t>(ctx.global_step);
        for (auto& [k, v] : running) w_.add_scalar("batch/" + k, v, step);
        if (ctx.optimizer) w_.add_scalar("batch/lr", ctx.optimizer->lr(0), step);
    }

    void on_epoch_end(train_context& ctx, logs& l) override {
        const auto step = static_cast<std::int64_t>(ctx.epoch);
        for (auto& [k, v] : l)
            if (k != "lr") w_.add_scalar("epoch/" + k, v, step);
        if (ctx.optimizer) w_.add_scalar("epoch/lr", ctx.optimizer->lr(0), step);
        if (histograms_due(ctx)) {
            if (weights_) {
                try {
                    write_histograms("weights/", ctx.model_state(), step);
                } catch (const value_error&) {
                    weights_ = false;  // not an xgrad::nn model: no weights to show
                }
            }
            if (ctx.gradients.empty()) capture_all_ = true;
            write_histograms("gradients/", ctx.gradients, step);
            ctx.gradients.clear();
        }
        ctx.capture_gradients = false;
        if (o_.on_epoch_end) o_.on_epoch_end(w_, ctx, l);
    }

    io::event_writer& writer() noexcept { return w_; }

private:
    bool histograms_due(const train_context& ctx) const {
        return o_.histogram_freq && (ctx.epoch + 1) % o_.histogram_freq == 0;
    }
    void write_histograms(const std::string& prefix, const std::vector<io::named_tensor>& ts, std::int64_t step) {
        for (const auto& t : ts)
            std::visit(
                [&](const auto& v) {
                    if constexpr (std::is_floating_point_v<typename std::remove_cvref_t<decltype(v)>::value_type>)
                        w_.add_histogram(prefix + t.name, v, step, o_.bins);
                },
                t.value);
    }

    io::event_writer w_;
    tensorboard_options o_;
    bool weights_ = true;
    bool capture_all_ = false;
    std::ptrdiff_t last_batch_ = -1;
};

/// Writes TensorBoard event files into `logdir` (created if needed; io_error naming it when
/// that fails).
inline std::shared_ptr<tensorboard_callback> tensorboard(const std::filesystem::path& logdir,
                                                         tensorboard_options o = {}) {
    return std::make_shared<tensorboard_callback>(logdir, std::move(o));
}

}  // namespace callbacks

/// A confusion matrix as an RGB image: a cell_size-pixel square per (true row, predicted
/// column), white for 0 shading to dark blue for the row's largest share (rows normalised, so
/// rare classes show as clearly as common ones); a one-pixel grey grid between cells.
inline io::image confusion_matrix_image(const metrics::confusion_matrix& cm, std::size_t cell_size = 16) {
    if (cell_size < 2) throw value_error("confusion_matrix_image: cell_size must be at least 2");
    const std::size_t c = cm.num_classes(), side = c * cell_size + 1;
    io::image img(side, side, 3, 160);
    for (std::size_t t = 0; t < c; ++t) {
        const double n = static_cast<double>(std::max<std::size_t>(cm.support(t), 1));
        for (std::size_t p = 0; p < c; ++p) {
            const double share = static_cast<double>(cm(t, p)) / n;
            const auto shade = [&](double full) { return static_cast<std::uint8_t>(std::lround(255 - share * (255 - full))); };
            const std::uint8_t rgb[3] = {shade(8), shade(48), shade(107)};
            for (std::size_t y = 1; y < cell_size; ++y)
                for (std::size_t x = 1; x < cell_size; ++x)
                    std::copy(rgb, rgb + 3, img.at(p * cell_size + x, t * cell_size + y));
        }
    }
    return img;
}

}  // namespace xgrad
