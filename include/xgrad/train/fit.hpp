#pragma once
// fit / evaluate / predict: the Keras-like front door.
//
//   auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3f});
//   auto history = xgrad::fit(model, opt, xgrad::nn::cross_entropy(), train_loader,
//       {.epochs = 10, .validation = &test_loader, .metrics = {xgrad::metrics::accuracy()},
//        .callbacks = {xgrad::callbacks::early_stopping({.monitor = "val_loss", .patience = 3})}});
//   auto scores = xgrad::evaluate(model, test_loader, {xgrad::metrics::accuracy()});
//   auto probs  = xgrad::predict(model, images);
//
// A model is a layer (xgrad::nn) or anything callable as model(x) (or model.forward(x))
// returning an expression or a tensor; a loss is callable as loss(outputs, targets) returning
// a scalar expression; a loader is anything iterable in batches `auto& [inputs, targets]`
// with size() batches (xgrad::data::loader). fit and evaluate put layers into training and
// evaluation mode (train()/eval()) as they go and give the model back in the mode it had.
//
// A model on a device (nn layers built with a device, or moved with xgrad::to<Device>(model))
// trains there: each batch from the (host) loader is copied to the model's device, the forward,
// loss, backward and optimizer step run there, and only the loss value and, for metrics and
// evaluation, the model's outputs come back to the host.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "../autodiff/backward.hpp"
#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../core/tensor.hpp"
#include "../core/transfer.hpp"
#include "../expr/pass.hpp"
#include "../nn/module.hpp"
#include "../ops/softmax.hpp"
#include "../optim/clip.hpp"
#include "callbacks.hpp"
#include "checkpoint.hpp"
#include "history.hpp"
#include "metrics.hpp"
#include "progress.hpp"

namespace xgrad {

/// The input and target tensors a type-erased batch may hold.
using batch_inputs = std::variant<tensor<float>, tensor<double>, tensor<std::uint8_t>>;
using batch_targets = std::variant<tensor<std::int64_t>, tensor<float>, tensor<double>>;

/// Iterable in batches with a batch count.
template <class L>
concept batch_iterable = requires(L& l) {
    l.begin();
    l.end();
    { l.size() } -> std::convertible_to<std::size_t>;
};

/// A loader seen through a type-erased handle (fit's .validation). It points at the loader,
/// which must outlive the fit.
class batch_source {
public:
    using visitor = std::function<bool(const batch_inputs&, const batch_targets&)>;

    batch_source() = default;
    template <batch_iterable L>
    batch_source(L* loader) {  // NOLINT: implicit, so that .validation = &loader works
        if (!loader) return;
        size_ = [loader] { return static_cast<std::size_t>(loader->size()); };
        run_ = [loader](const visitor& f) {
            for (auto& b : *loader) {
                auto& [x, y] = b;
                if (!f(batch_inputs(x), batch_targets(y))) break;
            }
        };
    }

    explicit operator bool() const noexcept { return static_cast<bool>(run_); }
    std::size_t size() const { return size_ ? size_() : 0; }
    /// Calls f(inputs, targets) for each batch until f returns false.
    void for_each(const visitor& f) const {
        if (run_) run_(f);
    }

private:
    std::function<std::size_t()> size_;
    std::function<void(const visitor&)> run_;
};

struct fit_options {
    std::size_t epochs = 1;
    /// The first epoch to run (epochs counts from 0 to `epochs`): continue an earlier fit.
    std::size_t initial_epoch = 0;
    /// Evaluated after every epoch: its loss and metrics appear as "val_loss", "val_<metric>".
    batch_source validation = {};
    std::vector<xgrad::metrics::metric> metrics = {};
    std::vector<callback_ptr> callbacks = {};
    /// Gradient accumulation: one optimizer step per this many batches, each batch's loss
    /// scaled by 1/accumulate so the step sees the mean gradient (the epoch's last, shorter
    /// group steps too).
    std::size_t accumulate = 1;
    /// Clip the global gradient norm to this before each step (0: no clipping).
    double clip_grad_norm = 0;
    /// Batches per epoch (0: the whole loader); validation batches likewise.
    std::size_t steps_per_epoch = 0;
    std::size_t validation_steps = 0;
    /// Show progress on stderr (see progress_bar).
    bool progress = true;
    progress_options progress_style = {};
};

struct evaluate_options {
    std::size_t steps = 0;  ///< batches to evaluate (0: all)
    bool progress = false;
    progress_options progress_style = {};
};

struct predict_options {
    std::size_t batch_size = 256;
    /// Softmax over the classes of {N, C} outputs (models end in logits); false: raw outputs.
    bool probabilities = true;
};

/// What evaluate() returns: the values ("loss", "accuracy", ...) and the metrics themselves,
/// so that tables (the confusion matrix) can be printed or read.
struct evaluation {
    logs values;
    std::vector<xgrad::metrics::metric> metrics;

    double operator[](std::string_view name) const { return values.at(name); }
    /// The metric of type M (e.g. metrics::confusion_matrix); value_error when there is none.
    template <class M>
    const M& get() const {
        for (auto& m : metrics)
            if (auto* p = m.get<M>()) return *p;
        throw value_error("evaluation: no metric of the requested type was evaluated");
    }
    /// The confusion matrix evaluated (value_error when there is none); get<M>() in general.
    const xgrad::metrics::confusion_matrix& confusion() const { return get<xgrad::metrics::confusion_matrix>(); }
    /// "loss 0.2711  accuracy 0.9012" and every metric's table.
    std::string report() const {
        std::string s = format_logs(values) + "\n";
        for (auto& m : metrics) s += m.report();
        return s;
    }
};

namespace detail::fit {

template <class M>
constexpr auto model_value() {
    if constexpr (nn::layer<M>)
        return std::type_identity<nn::value_type_of<M>>{};
    else if constexpr (requires { typename M::value_type; })
        return std::type_identity<typename M::value_type>{};
    else
        return std::type_identity<float>{};
}
template <class M>
using model_value_t = typename decltype(model_value<std::remove_cvref_t<M>>())::type;

/// Where a model's parameters live: the batches go there.
template <class M>
constexpr auto model_device() {
    if constexpr (nn::layer<M>)
        return std::type_identity<nn::device_type_of<M>>{};
    else if constexpr (requires { typename M::device_type; })
        return std::type_identity<typename M::device_type>{};
    else
        return std::type_identity<device::cpu>{};
}
template <class M>
using model_device_t = typename decltype(model_device<std::remove_cvref_t<M>>())::type;

template <class M, class X>
decltype(auto) call_model(M& m, X&& x) {
    if constexpr (requires { m(std::forward<X>(x)); })
        return m(std::forward<X>(x));
    else
        return m.forward(std::forward<X>(x));
}

/// A tensor of an expression's value (the tensor itself when it already is one).
template <class E>
auto materialize(E&& e) {
    if constexpr (xgrad::detail::is_tensor<std::remove_cvref_t<E>>::value)
        return std::remove_cvref_t<E>(e);
    else
        return xgrad::eval(std::forward<E>(e));
}

/// The value of a model's output on the host (a copy when it was computed on a device).
template <class E>
auto host_value(E&& e) {
    return to<device::cpu>(materialize(std::forward<E>(e)));
}

template <class V>
double scalar_of(const V& v) {
    if constexpr (xgrad::detail::is_tensor<V>::value)
        return static_cast<double>(v.item());
    else
        return static_cast<double>(v);
}

template <class T, class X>
tensor<T> as_input(const tensor<X>& x) {
    if constexpr (std::is_same_v<T, X>)
        return x;
    else
        return x.template astype<T>();
}

/// The training flag of a layer built on nn::module, if it has one.
template <class M>
std::optional<bool> training_flag(M& m) {
    if constexpr (requires { m.is_training(); })
        return m.is_training();
    else
        return std::nullopt;
}
template <class M>
void set_training(M& m, bool on) {
    if constexpr (nn::layer<M>) nn::train(m, on);
}

/// Puts the model back into the mode it had.
template <class M>
struct mode_restorer {
    M& m;
    std::optional<bool> was = training_flag(m);
    ~mode_restorer() {
        if (was) set_training(m, *was);
    }
};

/// Accumulates the mean loss over samples and updates metrics.
struct running_values {
    double loss_sum = 0;
    std::size_t samples = 0;
    bool has_loss = false;

    void add(double loss, std::size_t n, bool with_loss) {
        if (with_loss) {
            loss_sum += loss * static_cast<double>(n);
            has_loss = true;
        }
        samples += n;
    }
    logs snapshot(const std::vector<xgrad::metrics::metric>& ms, const std::string& prefix = {}) const {
        logs l;
        if (has_loss) l.set(prefix + "loss", samples ? loss_sum / static_cast<double>(samples) : 0.0);
        for (auto& m : ms)
            for (auto& [k, v] : m.values()) l.set(prefix + k, v);
        return l;
    }
};

struct no_loss {};

/// The target tensor type of a loader's batches (what the loss is called with).
template <class B>
auto target_type(B& b) {
    auto& [x, y] = b;
    return std::remove_cvref_t<decltype(y)>{};
}
template <class L>
using loader_target_t = decltype(target_type(*std::declval<L&>().begin()));

/// One evaluation pass over `source` in evaluation mode; `loss` (null: none) is only called
/// with targets of type Target, the type it was written for.
template <class T, class Target, class M, class Loss>
logs evaluate_source(M& model, Loss* loss, const batch_source& source, std::vector<xgrad::metrics::metric>& ms,
                     std::size_t steps, const std::string& prefix, const evaluate_options& eo) {
    for (auto& m : ms) m.reset();
    set_training(model, false);
    running_values run;
    std::size_t batch = 0;
    const std::size_t total = steps ? std::min(steps, source.size()) : source.size();
    std::optional<progress_bar> bar;
    if (eo.progress) bar.emplace("Evaluate", total, eo.progress_style);
    using Dev = model_device_t<M>;
    source.for_each([&](const batch_inputs& xi, const batch_targets& yi) {
        if (steps && batch == steps) return false;
        const tensor<T, Dev> x = to<Dev>(std::visit([](const auto& v) { return as_input<T>(v); }, xi));
        const tensor<T, Dev> out_on_device = materialize(call_model(model, x));
        const tensor<T> out = to<device::cpu>(out_on_device);  // for the metrics
        std::visit(
            [&](const auto& y) {
                double l = 0;
                bool with_loss = false;
                if constexpr (!std::is_same_v<Loss, no_loss>) {
                    if (loss) {
                        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(y)>, Target>) {
                            l = scalar_of(xgrad::eval((*loss)(out_on_device, to<Dev>(y))));
                            with_loss = true;
                        } else {
                            throw value_error("evaluate: the validation targets have another element type than "
                                              "the training targets the loss takes");
                        }
                    }
                }
                for (auto& m : ms) m.update(out, y);
                run.add(l, out.dim() ? out.shape()[0] : 1, with_loss);
            },
            yi);
        ++batch;
        if (bar) bar->update(batch, run.samples, run.snapshot(ms));
        return true;
    });
    logs l = run.snapshot(ms, prefix);
    if (bar) bar->finish(l);
    return l;
}

/// The bytes of an rng as exact numbers (4 bytes each), for backups.
XGRAD_OUTLINE scalar_state rng_to_scalars(const rng& g, const std::string& prefix) {
    static_assert(std::is_trivially_copyable_v<rng>);
    unsigned char b[sizeof(rng)];
    std::memcpy(b, &g, sizeof(rng));
    scalar_state s;
    for (std::size_t i = 0; i < sizeof(rng); i += 4) {
        std::uint32_t w = 0;
        std::memcpy(&w, b + i, std::min<std::size_t>(4, sizeof(rng) - i));
        s.emplace_back(prefix + std::to_string(i / 4), static_cast<double>(w));
    }
    return s;
}
XGRAD_INSTANCE(scalar_state rng_to_scalars(const rng& g, const std::string& prefix))
inline void rng_from_scalars(rng& g, const scalar_state& s, const std::string& prefix) {
    unsigned char b[sizeof(rng)];
    std::memcpy(b, &g, sizeof(rng));
    for (std::size_t i = 0; i < sizeof(rng); i += 4) {
        const auto w = static_cast<std::uint32_t>(callbacks::detail::find_scalar(s, prefix + std::to_string(i / 4), "rng"));
        std::memcpy(b + i, &w, std::min<std::size_t>(4, sizeof(rng) - i));
    }
    std::memcpy(static_cast<void*>(&g), b, sizeof(rng));
}

/// Collects {dotted path, generator} of layers with a generator() (dropout).
struct generator_finder {
    std::vector<std::pair<std::string, rng*>> out;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string& path, L& l) {
        if constexpr (requires { { l.generator() } -> std::same_as<rng&>; }) out.emplace_back(path, &l.generator());
    }
};

/// train_context over a concrete model and optimizer.
template <class M, class O>
class context final : public train_context {
public:
    context(M& m, O& o) : m_(m), o_(o) {
        if constexpr (std::is_base_of_v<optim::lr_schedulable, O>) optimizer = &o;
    }

    std::vector<io::named_tensor> model_state() const override {
        if constexpr (nn::layer<M>) {
            auto s = state_dict(m_);
            for (auto& t : s) t.value = std::visit([](const auto& v) -> io::safetensors_array { return v.clone(); }, t.value);
            return s;
        } else {
            throw value_error("fit: the model is not an xgrad::nn layer, so its state cannot be saved");
        }
    }
    void load_model_state(const std::vector<io::named_tensor>& s) override {
        if constexpr (nn::layer<M>)
            load_state_dict(m_, s, {.strict = true}, "fit");
        else
            throw value_error("fit: the model is not an xgrad::nn layer, so its state cannot be loaded");
    }
    std::vector<io::named_tensor> model_gradients() const override {
        std::vector<io::named_tensor> out;
        if constexpr (nn::layer<M>)
            for (auto& [name, p] : nn::named_parameters(m_))
                if (p.requires_grad()) out.push_back({name, to<device::cpu>(p.grad()).clone(), ""});
        return out;
    }
    void optimizer_state(std::vector<io::named_tensor>& tensors, scalar_state& scalars,
                         const std::string& prefix) const override {
        if constexpr (stateful_optimizer<O>)
            xgrad::optimizer_state(o_, tensors, scalars, prefix);
        else
            throw value_error("fit: the optimizer has no state_dict(), so its state cannot be saved");
    }
    void load_optimizer_state(const io::safetensors_file& f, const scalar_state& scalars,
                              const std::string& prefix) override {
        if constexpr (stateful_optimizer<O>)
            xgrad::load_optimizer_state(o_, f, scalars, prefix);
        else
            throw value_error("fit: the optimizer has no load_state_dict(), so its state cannot be restored");
    }
    // dropout masks come from the layers' generators (or nn::default_generator() for functional
    // dropout): a resumed run must continue their streams
    scalar_state rng_state() const override {
        scalar_state s = rng_to_scalars(nn::default_generator(), "default_generator.");
        for (auto& [path, g] : generators()) {
            auto more = rng_to_scalars(*g, path + ".generator.");
            s.insert(s.end(), more.begin(), more.end());
        }
        return s;
    }
    void load_rng_state(const scalar_state& s) override {
        rng_from_scalars(nn::default_generator(), s, "default_generator.");
        for (auto& [path, g] : generators()) rng_from_scalars(*g, s, path + ".generator.");
    }

private:
    /// {dotted path, generator} of every layer below the model with a generator() (dropout).
    std::vector<std::pair<std::string, rng*>> generators() const {
        generator_finder v;
        if constexpr (nn::layer<M>) nn::detail::walk(m_, std::string{}, v);
        return std::move(v.out);
    }

    M& m_;
    O& o_;
};

}  // namespace detail::fit

/// Trains `model` with `opt` on `loss` over `train` for the epochs in `o`; returns the history
/// of every loss and metric per epoch. See fit_options.
template <class M, class O, class Loss, batch_iterable L>
history fit(M& model, O& opt, Loss&& loss, L& train, fit_options o = {}) {
    using T = detail::fit::model_value_t<M>;
    using Dev = detail::fit::model_device_t<M>;
    if (o.accumulate == 0) throw value_error("fit: accumulate must be at least 1");
    if (o.clip_grad_norm < 0) throw value_error("fit: clip_grad_norm must be >= 0");
    detail::fit::mode_restorer<M> restore{model};

    history h;
    detail::fit::context<M, O> ctx(model, opt);
    ctx.history = &h;
    ctx.epochs = o.epochs;
    ctx.initial_epoch = o.initial_epoch;
    const std::size_t steps = o.steps_per_epoch ? std::min<std::size_t>(o.steps_per_epoch, train.size()) : train.size();
    ctx.batches_per_epoch = steps;
    for (auto& c : o.callbacks) {
        if (!c) throw value_error("fit: a callback is null");
        ctx.callbacks.push_back(c.get());
    }
    const bool need_outputs = !o.metrics.empty();
    std::vector<xgrad::metrics::metric> val_metrics = o.metrics;

    for (auto* c : ctx.callbacks) c->on_train_begin(ctx);
    const std::size_t first = ctx.initial_epoch;
    ctx.epoch = first;
    for (std::size_t epoch = first; epoch < o.epochs && !ctx.stop_training; ++epoch) {
        ctx.epoch = epoch;
        if constexpr (requires { train.set_epoch(epoch); }) train.set_epoch(epoch);  // same shuffle when resumed
        for (auto* c : ctx.callbacks) c->on_epoch_begin(ctx);
        detail::fit::set_training(model, true);
        for (auto& m : o.metrics) m.reset();

        std::optional<progress_bar> bar;
        if (o.progress)
            bar.emplace("Epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), steps, o.progress_style);
        detail::fit::running_values run;
        std::size_t batch = 0, in_group = 0;
        const double scale = 1.0 / static_cast<double>(o.accumulate);
        opt.zero_grad();
        auto step = [&] {
            if (o.clip_grad_norm > 0) optim::clip_grad_norm_(nn::parameters(model), o.clip_grad_norm);
            if (ctx.capture_gradients) ctx.gradients = ctx.model_gradients();
            opt.step();
            opt.zero_grad();
            in_group = 0;
            ++ctx.global_step;
        };
        for (auto& b : train) {
            auto& [xb, yb] = b;
            const tensor<T, Dev> x = to<Dev>(detail::fit::as_input<T>(xb));
            double loss_value;
            std::optional<tensor<T>> outputs;  // on the host, for the metrics
            {
                // one pass: the metrics' eval and the backward share the barrier ops' forward values
                xgrad::detail::pass_scope pass;
                auto out = detail::fit::call_model(model, x);
                if (need_outputs) outputs = detail::fit::host_value(out);
                auto l = loss(out, to<Dev>(yb));
                if (o.accumulate == 1)
                    loss_value = static_cast<double>(xgrad::backward(l));
                else
                    loss_value = static_cast<double>(xgrad::backward(l * static_cast<T>(scale))) / scale;
            }
            if (outputs)
                for (auto& m : o.metrics) m.update(*outputs, yb);
            run.add(loss_value, x.dim() ? x.shape()[0] : 1, true);
            ++batch;
            if (++in_group == o.accumulate || batch == steps) {
                step();
                const logs running = run.snapshot(o.metrics);
                for (auto* c : ctx.callbacks) c->on_batch_end(ctx, batch - 1, running);
            }
            if (bar) bar->update(batch, run.samples, run.snapshot(o.metrics));
            if (batch == steps) break;  // before the loader prepares another batch
        }
        if (in_group) step();  // an iterator that ended early
        if (bar) bar->end_batches();

        logs epoch_logs = run.snapshot(o.metrics);
        if (o.validation) {
            using target = detail::fit::loader_target_t<L>;
            const logs v = detail::fit::evaluate_source<T, target>(model, &loss, o.validation, val_metrics,
                                                                   o.validation_steps, "val_", evaluate_options{});
            for (auto& [k, val] : v) epoch_logs.set(k, val);
            detail::fit::set_training(model, true);
        }
        for (auto* c : ctx.callbacks) c->on_epoch_end(ctx, epoch_logs);
        h.record(epoch_logs, epoch);
        if (bar) bar->finish(epoch_logs);
    }
    for (auto* c : ctx.callbacks) c->on_train_end(ctx);
    return h;
}

/// Runs the model over `loader` in evaluation mode and computes the metrics.
template <class M, batch_iterable L>
evaluation evaluate(M& model, L& loader, std::vector<xgrad::metrics::metric> metrics = {}, evaluate_options o = {}) {
    using T = detail::fit::model_value_t<M>;
    detail::fit::mode_restorer<M> restore{model};
    evaluation r;
    r.values = detail::fit::evaluate_source<T, void, M, detail::fit::no_loss>(model, nullptr, batch_source(&loader),
                                                                            metrics, o.steps, "", o);
    r.metrics = std::move(metrics);
    return r;
}

/// The same with the loss too ("loss" among the values).
template <class M, class Loss, batch_iterable L>
    requires(!batch_iterable<std::remove_cvref_t<Loss>>)
evaluation evaluate(M& model, Loss&& loss, L& loader, std::vector<xgrad::metrics::metric> metrics = {},
                    evaluate_options o = {}) {
    using T = detail::fit::model_value_t<M>;
    detail::fit::mode_restorer<M> restore{model};
    evaluation r;
    r.values = detail::fit::evaluate_source<T, detail::fit::loader_target_t<L>>(model, &loss, batch_source(&loader),
                                                                                 metrics, o.steps, "", o);
    r.metrics = std::move(metrics);
    return r;
}

namespace detail::fit {
template <class M>
constexpr bool outputs_probabilities() {
    if constexpr (requires { M::outputs_probabilities; })
        return M::outputs_probabilities;
    else
        return false;
}
template <class T, class D>
tensor<T, D> to_probabilities(const tensor<T, D>& out) {
    return out.dim() == 2 ? tensor<T, D>(xgrad::eval(xgrad::softmax(out, 1))) : out;
}
}  // namespace detail::fit

/// The model's outputs for `inputs` ({N, ...}), in batches, in evaluation mode: class
/// probabilities (softmax over {N, C} logits) by default, raw outputs with .probabilities = false.
template <class M, class X>
tensor<detail::fit::model_value_t<M>> predict(M& model, const tensor<X>& inputs, predict_options o = {}) {
    using T = detail::fit::model_value_t<M>;
    using Dev = detail::fit::model_device_t<M>;
    if (o.batch_size == 0) throw value_error("predict: batch_size must be positive");
    if (inputs.dim() == 0) throw shape_error("predict: inputs need a leading batch dimension, got shape {}");
    detail::fit::mode_restorer<M> restore{model};
    detail::fit::set_training(model, false);
    const std::size_t n = inputs.shape()[0];
    std::vector<tensor<T>> parts;
    for (std::size_t i = 0; i < n; i += o.batch_size) {
        const tensor<T, Dev> x =
            to<Dev>(detail::fit::as_input<T>(inputs.slice(0, static_cast<std::ptrdiff_t>(i),
                                                           static_cast<std::ptrdiff_t>(std::min(n, i + o.batch_size))))
                        .contiguous());
        auto out = detail::fit::materialize(detail::fit::call_model(model, x));
        if (o.probabilities && !detail::fit::outputs_probabilities<std::remove_cvref_t<M>>())
            out = detail::fit::to_probabilities(out);
        parts.push_back(to<device::cpu>(out).contiguous());
    }
    if (parts.empty()) return tensor<T>::uninitialized({0});
    shape_t s = parts[0].shape();
    s[0] = n;
    auto all = tensor<T>::uninitialized(s);
    std::size_t at = 0;
    for (auto& p : parts) {
        if (p.dim() != s.size() || !std::equal(p.shape().begin() + 1, p.shape().end(), s.begin() + 1))
            throw shape_error("predict: batches gave outputs of shapes " + to_string(parts[0].shape()) + " and " +
                              to_string(p.shape()));
        std::copy(p.data(), p.data() + p.size(), all.data() + at);
        at += p.size();
    }
    return all;
}

// --- ensembles -------------------------------------------------------------------------------

/// Several models voting together: operator() (and so predict/evaluate) averages their class
/// probabilities; vote() takes the majority of their predicted classes. Holds references.
template <class... M>
class ensemble_model {
public:
    static constexpr bool outputs_probabilities = true;
    using value_type = std::common_type_t<detail::fit::model_value_t<M>...>;

    explicit ensemble_model(M&... m) : models_(m...) {}

    /// Mean of the members' softmax probabilities, {N, C}.
    tensor<value_type> operator()(const tensor<value_type>& x) {
        tensor<value_type> sum;
        bool first = true;
        std::apply(
            [&](auto&... m) {
                (
                    [&](auto& model) {
                        detail::fit::mode_restorer<std::remove_cvref_t<decltype(model)>> restore{model};
                        detail::fit::set_training(model, false);
                        auto p = detail::fit::to_probabilities(
                            detail::fit::materialize(detail::fit::call_model(model, x)).template astype<value_type>());
                        if (first) {
                            sum = p.clone();
                            first = false;
                        } else {
                            if (p.shape() != sum.shape())
                                throw shape_error("ensemble: members' outputs have shapes " + to_string(sum.shape()) +
                                                  " and " + to_string(p.shape()));
                            for (std::size_t i = 0; i < p.size(); ++i) sum.data()[i] += p.data()[i];
                        }
                    }(m),
                    ...);
            },
            models_);
        for (std::size_t i = 0; i < sum.size(); ++i) sum.data()[i] /= static_cast<value_type>(sizeof...(M));
        return sum;
    }

    /// Each row's most frequent predicted class; ties go to the class with the higher mean
    /// probability.
    tensor<std::int64_t> vote(const tensor<value_type>& x) {
        std::vector<tensor<value_type>> probs;
        std::apply(
            [&](auto&... m) {
                (
                    [&](auto& model) {
                        detail::fit::mode_restorer<std::remove_cvref_t<decltype(model)>> restore{model};
                        detail::fit::set_training(model, false);
                        probs.push_back(detail::fit::to_probabilities(
                            detail::fit::materialize(detail::fit::call_model(model, x)).template astype<value_type>()));
                    }(m),
                    ...);
            },
            models_);
        const auto& p0 = probs[0];
        if (p0.dim() != 2) throw shape_error("ensemble::vote: expects {N, C} outputs, got " + to_string(p0.shape()));
        const std::size_t n = p0.shape()[0], c = p0.shape()[1];
        auto out = tensor<std::int64_t>::uninitialized({n});
        std::vector<std::size_t> votes(c);
        std::vector<double> mean(c);
        for (std::size_t i = 0; i < n; ++i) {
            std::fill(votes.begin(), votes.end(), 0);
            std::fill(mean.begin(), mean.end(), 0.0);
            for (auto& p : probs) {
                const value_type* row = p.data() + i * c;
                ++votes[static_cast<std::size_t>(std::max_element(row, row + c) - row)];
                for (std::size_t k = 0; k < c; ++k) mean[k] += static_cast<double>(row[k]);
            }
            std::size_t best = 0;
            for (std::size_t k = 1; k < c; ++k)
                if (votes[k] > votes[best] || (votes[k] == votes[best] && mean[k] > mean[best])) best = k;
            out.data()[i] = static_cast<std::int64_t>(best);
        }
        return out;
    }

private:
    std::tuple<M&...> models_;
};

/// An ensemble of models (held by reference).
template <class... M>
ensemble_model<M...> ensemble(M&... models) {
    static_assert(sizeof...(M) >= 1, "xgrad::ensemble: give at least one model");
    return ensemble_model<M...>(models...);
}

}  // namespace xgrad
