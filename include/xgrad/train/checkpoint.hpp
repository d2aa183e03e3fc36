#pragma once
// Model and optimizer checkpoints in the safetensors format.
//
//   xgrad::save(model, "model.safetensors");                  // parameters and buffers by dotted name
//   auto report = xgrad::load(model, "model.safetensors", {.strict = false});
//   xgrad::save(opt, "opt.safetensors");  xgrad::load(opt, "opt.safetensors");
//
// A model file holds exactly what PyTorch's model.state_dict() would for the same layers, under
// the same names ("0.weight", "3.bias", "1.running_mean"), so torch's load_state_dict reads it,
// and xgrad loads files saved by safetensors.torch.save_file(model.state_dict(), ...).
// An optimizer file holds its state tensors ("state.0.exp_avg", PyTorch's numbering) and its
// numbers (steps, hyper-parameters) as exact decimal strings in the metadata.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/transfer.hpp"
#include "../io/safetensors.hpp"
#include "../nn/module.hpp"
#include "../optim/optimizer.hpp"

namespace xgrad {

/// What load_state_dict found: names the model has and the file lacks (missing), names the
/// file has and the model lacks (unexpected), and names whose shapes differ (mismatched, as
/// "name: file {a, b} vs model {c, d}"). Tensors counted as loaded were copied in.
struct load_report {
    std::vector<std::string> missing, unexpected, mismatched;
    std::size_t loaded = 0;

    bool ok() const noexcept { return missing.empty() && unexpected.empty() && mismatched.empty(); }
    /// "missing: a, b; unexpected: c; shape mismatch: d: file {2} vs model {3}" ("" when ok).
    std::string to_string() const {
        std::string s;
        auto list = [&](const char* what, const std::vector<std::string>& v) {
            if (v.empty()) return;
            if (!s.empty()) s += "; ";
            s += what;
            for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : " ") + v[i];
        };
        list("missing:", missing);
        list("unexpected:", unexpected);
        list("shape mismatch:", mismatched);
        return s;
    }
};

struct load_options {
    /// Throw value_error (loading nothing) unless the names and shapes match exactly.
    bool strict = true;
};

namespace detail::ckpt {

struct counter_finder {
    std::vector<std::string> out;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string& path, L&) {
        if constexpr (requires { L::kind; }) {
            const std::string_view k = L::kind;
            if (k == "batch_norm1d" || k == "batch_norm2d") out.push_back(nn::detail::join(path, "num_batches_tracked"));
        }
    }
};

/// "<path>.num_batches_tracked" for every batch-norm layer below m: PyTorch's state_dict has
/// this counter (an int64 scalar) where xgrad keeps none.
template <class M>
std::vector<std::string> batch_norm_counters(M& m) {
    counter_finder v;
    nn::detail::walk(m, std::string{}, v);
    return std::move(v.out);
}

/// A pruned parameter's original values: its value where the mask keeps, the values it had
/// when pruned elsewhere (PyTorch's "<name>_orig").
template <class T>
tensor<T> pruned_orig(const xgrad::detail::grad_state<T>& s) {
    auto out = s.value.clone();
    const T* m = s.prune_mask.data();
    const T* o = s.prune_orig.data();
    for (std::size_t i = 0; i < out.size(); ++i)
        if (m[i] == T(0)) out.data()[i] = o[i];
    return out;
}

}  // namespace detail::ckpt

/// The model's parameters and buffers by dotted name, sharing their storage (clone the tensors
/// for a snapshot), plus a zero "num_batches_tracked" per batch norm, as PyTorch's state_dict.
/// A model on a device gives host copies.
template <nn::layer M>
std::vector<io::named_tensor> state_dict(M& model) {
    std::vector<io::named_tensor> out;
    for (auto& [name, p] : nn::named_parameters(model)) {
        if constexpr (std::is_same_v<nn::device_type_of<M>, device::cpu>) {
            if (p.state().pruned) {  // as torch.nn.utils.prune: "<name>_orig" and the buffer "<name>_mask"
                out.push_back({name + "_orig", detail::ckpt::pruned_orig(p.state()), ""});
                out.push_back({name + "_mask", p.state().prune_mask, ""});
                continue;
            }
        }
        out.push_back({name, to<device::cpu>(p.value()), ""});
    }
    for (auto& [name, t] : nn::named_buffers(model)) out.push_back({name, to<device::cpu>(t), ""});
    for (auto& name : detail::ckpt::batch_norm_counters(model)) out.push_back({name, zeros<std::int64_t>({}), ""});
    return out;
}

namespace detail::ckpt {

template <class T>
tensor<T> converted(const io::safetensors_array& a) {
    return std::visit(
        [](const auto& t) -> tensor<T> {
            if constexpr (std::is_same_v<typename std::remove_cvref_t<decltype(t)>::value_type, T>)
                return t;
            else
                return t.template astype<T>();
        },
        a);
}

inline const shape_t& shape_of(const io::safetensors_array& a) {
    return std::visit([](const auto& t) -> const shape_t& { return t.shape(); }, a);
}

}  // namespace detail::ckpt

/// Copies `state` into the model's parameters and buffers (in place: optimizers keep working),
/// converting element types as needed (and copying to the model's device). With strict, any missing, unexpected or mismatched name
/// throws value_error listing them all and nothing is changed; otherwise what matches is loaded
/// and the report says what did not. Batch norms' "num_batches_tracked" counters are accepted
/// and ignored, and never missing.
template <nn::layer M>
load_report load_state_dict(M& model, const std::vector<io::named_tensor>& state, load_options o = {},
                            const std::string& source = "load_state_dict") {
    using T = nn::value_type_of<M>;
    using D = nn::device_type_of<M>;
    std::vector<std::pair<std::string, tensor<T, D>>> targets;
    std::vector<parameter<T, D>> pruned;
    for (auto& [name, p] : nn::named_parameters(model)) {
        if constexpr (std::is_same_v<D, device::cpu>) {
            if (p.state().pruned) {
                targets.emplace_back(name + "_orig", p.value());
                targets.emplace_back(name + "_mask", p.state().prune_mask);
                pruned.push_back(p);
                continue;
            }
        }
        targets.emplace_back(name, p.value());
    }
    for (auto& [name, t] : nn::named_buffers(model)) targets.emplace_back(name, t);

    load_report r;
    std::vector<std::pair<const tensor<T, D>*, const io::named_tensor*>> plan;
    for (auto& [name, dst] : targets) {
        const io::named_tensor* src = nullptr;
        for (auto& s : state)
            if (s.name == name) {
                src = &s;
                break;
            }
        if (!src) {
            r.missing.push_back(name);
        } else if (detail::ckpt::shape_of(src->value) != dst.shape()) {
            r.mismatched.push_back(name + ": file " + to_string(detail::ckpt::shape_of(src->value)) + " vs model " +
                                   to_string(dst.shape()));
        } else {
            plan.emplace_back(&dst, src);
        }
    }
    const auto counters = detail::ckpt::batch_norm_counters(model);
    for (auto& s : state) {
        bool known = false;
        for (auto& [name, dst] : targets) known = known || name == s.name;
        for (auto& name : counters) known = known || name == s.name;
        if (!known) r.unexpected.push_back(s.name);
    }
    if (o.strict && !r.ok()) throw value_error(source + ": the checkpoint does not match the model: " + r.to_string());
    for (auto& [dst, src] : plan) dst->assign(to<D>(detail::ckpt::converted<T>(src->value)));
    if constexpr (std::is_same_v<D, device::cpu>)
        for (auto& p : pruned) {  // value = orig * mask, the originals kept for pruned places
            auto& s = p.state();
            s.prune_orig = s.value.clone();
            optim::detail::multiply_in_place(s.value, s.prune_mask);
        }
    r.loaded = plan.size();
    return r;
}

/// Saves the model's parameters and buffers as a safetensors file (atomically).
template <nn::layer M>
void save(M& model, const std::filesystem::path& path, std::map<std::string, std::string> metadata = {}) {
    metadata.emplace("format", "pt");  // what safetensors.torch writes; tools look for it
    io::save_safetensors(path, state_dict(model), metadata);
}

/// Loads a safetensors file into the model; see load_state_dict.
template <nn::layer M>
load_report load(M& model, const std::filesystem::path& path, load_options o = {}) {
    return load_state_dict(model, io::load_safetensors(path).tensors, o, path.string());
}

// --- optimizers ------------------------------------------------------------------------------

/// Anything with state_dict()/load_state_dict() of optim::state_dict form.
template <class O>
concept stateful_optimizer = requires(O& o) {
    typename O::value_type;
    { o.state_dict() } -> std::same_as<optim::state_dict<typename O::value_type>>;
    o.load_state_dict(o.state_dict());
};

namespace detail::ckpt {

inline std::string exact_decimal(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);  // 17 significant digits round-trip every double
    return buf;
}

}  // namespace detail::ckpt

/// The optimizer's state as named tensors (prefixed) and numbers.
template <stateful_optimizer O>
void optimizer_state(const O& opt, std::vector<io::named_tensor>& tensors,
                     std::vector<std::pair<std::string, double>>& scalars, const std::string& prefix = {}) {
    auto d = opt.state_dict();
    for (auto& [name, t] : d.tensors) tensors.push_back({prefix + name, t.clone(), ""});
    for (auto& s : d.scalars) scalars.push_back(s);
}

/// Restores what optimizer_state() produced; `file` holds the tensors under `prefix`.
template <stateful_optimizer O>
void load_optimizer_state(O& opt, const io::safetensors_file& file,
                          const std::vector<std::pair<std::string, double>>& scalars, const std::string& prefix = {}) {
    using T = typename O::value_type;
    optim::state_dict<T> d;
    for (auto& t : file.tensors)
        if (t.name.compare(0, prefix.size(), prefix) == 0)
            d.tensors.emplace_back(t.name.substr(prefix.size()), detail::ckpt::converted<T>(t.value));
    d.scalars = scalars;
    opt.load_state_dict(d);
}

/// Saves the optimizer's state (buffers as tensors, numbers in the metadata).
template <stateful_optimizer O>
void save(const O& opt, const std::filesystem::path& path) {
    std::vector<io::named_tensor> tensors;
    std::vector<std::pair<std::string, double>> scalars;
    optimizer_state(opt, tensors, scalars);
    std::map<std::string, std::string> meta;
    for (auto& [k, v] : scalars) meta[k] = detail::ckpt::exact_decimal(v);
    io::save_safetensors(path, tensors, meta);
}

/// Restores an optimizer saved with save(opt, path) over the same parameters (same groups and
/// shapes); value_error/shape_error/format_error otherwise.
template <stateful_optimizer O>
void load(O& opt, const std::filesystem::path& path) {
    const auto f = io::load_safetensors(path);
    std::vector<std::pair<std::string, double>> scalars;
    for (auto& [k, v] : f.metadata) {
        if (k == "format") continue;
        char* end = nullptr;
        const double x = std::strtod(v.c_str(), &end);
        if (v.empty() || end != v.c_str() + v.size())
            throw format_error(path.string() + ": optimizer value '" + k + "' is not a number: '" + v + "'");
        scalars.emplace_back(k, x);
    }
    try {
        load_optimizer_state(opt, f, scalars);
    } catch (const value_error& e) {
        throw value_error(path.string() + ": " + e.what());
    }
}

// --- weight averaging ------------------------------------------------------------------------

/// The element-wise mean of the floating-point tensors of several checkpoints of the same
/// architecture (model soups, SWA-style averaging); integer tensors are taken from the first.
/// value_error when the files' names or shapes differ.
inline std::vector<io::named_tensor> average_checkpoints(const std::vector<std::filesystem::path>& paths) {
    if (paths.empty()) throw value_error("average_checkpoints: no checkpoints given");
    std::vector<io::named_tensor> out = io::load_safetensors(paths[0]).tensors;
    std::vector<tensor<double>> sums;
    for (auto& t : out) sums.push_back(detail::ckpt::converted<double>(t.value).clone());
    for (std::size_t k = 1; k < paths.size(); ++k) {
        const auto f = io::load_safetensors(paths[k]);
        if (f.tensors.size() != out.size())
            throw value_error("average_checkpoints: " + paths[k].string() + " has " + std::to_string(f.tensors.size()) +
                              " tensors, " + paths[0].string() + " has " + std::to_string(out.size()));
        for (std::size_t i = 0; i < out.size(); ++i) {
            const auto* t = f.find(out[i].name);
            if (!t || detail::ckpt::shape_of(t->value) != detail::ckpt::shape_of(out[i].value))
                throw value_error("average_checkpoints: " + paths[k].string() + " lacks '" + out[i].name +
                                  "' of shape " + to_string(detail::ckpt::shape_of(out[i].value)));
            const auto v = detail::ckpt::converted<double>(t->value);
            for (std::size_t j = 0; j < v.size(); ++j) sums[i].data()[j] += v.data()[j];
        }
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
        const bool floating = std::holds_alternative<tensor<float>>(out[i].value) ||
                              std::holds_alternative<tensor<double>>(out[i].value);
        if (!floating) continue;
        for (std::size_t j = 0; j < sums[i].size(); ++j) sums[i].data()[j] /= static_cast<double>(paths.size());
        if (std::holds_alternative<tensor<float>>(out[i].value))
            out[i].value = sums[i].astype<float>();
        else
            out[i].value = sums[i];
    }
    return out;
}

}  // namespace xgrad
