#pragma once
// Pruning, as torch.nn.utils.prune: zero a fraction of a layer's weights and keep them zero
// while the model is fine-tuned.
//
//   prune::l1_unstructured(fc, "weight", 0.8);          // the 80 % smallest |w|
//   prune::ln_structured(conv, "weight", 0.5, 2, 0);    // the half of output channels of least L2 norm
//   prune::global_unstructured({prune::target(conv, "weight"), prune::target(fc, "weight")}, 0.8);
//   ... fine-tune with any optimizer ...
//   prune::remove(fc, "weight");                        // make it permanent: drop mask and originals
//
// A pruned parameter keeps its mask m (1 keeps, 0 prunes) and its original values w0 beside it
// (core/parameter.hpp); its value is w0 * m. The forward therefore reads the pruned weight
// with no extra work, and the optimizers' step() (optim/optimizer.hpp) multiplies the gradient by
// m before the update (d loss / d w0 = m * d loss / d w, PyTorch's gradient for weight_orig) and
// the value by m after it, so pruned weights stay exactly zero under momentum or weight decay.
// Checkpoints save a pruned "<name>" as "<name>_orig" and "<name>_mask", as PyTorch's state_dict.
//
// Which weights go (PyTorch's rules, checked against it by tests/data/gen_prune_reference.py):
// round(amount * n) of the n candidates (Python's round: halves to even); the candidates are the
// weights (or, structured, the channels along dim) the current mask still keeps, so pruning 50 %
// twice leaves 25 %. l1_unstructured removes the smallest |w0|; ln_structured the channels of
// least ||w0||_n over all other dimensions; global_unstructured the smallest |w| over all the
// given parameters together. Host (device::cpu) parameters only.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "module.hpp"

namespace xgrad::prune {

namespace detail {

template <class T>
using state_t = xgrad::detail::grad_state<T, device::cpu>;

inline void check_amount(const std::string& who, double amount) {
    if (!(amount >= 0.0 && amount <= 1.0))
        throw value_error(who + ": pruning amount must be in [0, 1], got " + std::to_string(amount));
}

/// Python's round(amount * n): to nearest, halves to even (the default rounding mode).
inline std::size_t count_to_prune(double amount, std::size_t n) {
    return static_cast<std::size_t>(std::nearbyint(amount * static_cast<double>(n)));
}

/// The parameter `name` among the layer's own members; value_error naming the layer otherwise.
template <class L>
auto find(L& layer, const std::string& name, const char* fn) {
    using T = nn::value_type_of<L>;
    static_assert(std::is_same_v<nn::device_type_of<L>, device::cpu>, "xgrad::prune: host layers only");
    parameter<T> found;
    bool ok = false;
    std::string have;
    layer.for_each_member([&](const char* n, auto& m) {
        if constexpr (xgrad::detail::is_parameter<std::remove_cvref_t<decltype(m)>>::value) {
            have += (have.empty() ? "" : ", ") + std::string(n);
            if (n == name) {
                found = m;
                ok = true;
            }
        }
    });
    const std::string label = nn::detail::layer_label(layer);
    if (!ok)
        throw value_error(std::string("prune::") + fn + ": " + label + " has no parameter '" + name + "' (it has: " +
                          (have.empty() ? "none" : have) + ")");
    if (!found.value().is_contiguous()) found.state().value = found.value().contiguous();
    return std::pair{found, label};
}

/// w0: the original values (the value where kept, the saved originals where pruned).
template <class T>
tensor<T> originals(const state_t<T>& s) {
    if (!s.pruned) return s.value.clone();
    auto out = s.value.clone();
    for (std::size_t i = 0; i < out.size(); ++i)
        if (s.prune_mask.data()[i] == T(0)) out.data()[i] = s.prune_orig.data()[i];
    return out;
}

template <class T>
tensor<T> current_mask(const state_t<T>& s) {
    return s.pruned ? s.prune_mask.clone() : full<T>(s.value.shape(), T(1));
}

/// Installs `mask` on a parameter whose originals are `orig`: value = orig * mask.
template <class T>
void apply(state_t<T>& s, tensor<T> orig, tensor<T> mask) {
    s.prune_orig = std::move(orig);
    s.prune_mask = std::move(mask);
    s.pruned = true;
    for (std::size_t i = 0; i < s.value.size(); ++i) s.value.data()[i] = s.prune_orig.data()[i] * s.prune_mask.data()[i];
}

/// Zeroes, in `mask`, the k candidates (places where mask is 1) of least score.
template <class T>
void drop_smallest(const std::vector<double>& score, tensor<T>& mask, std::size_t k) {
    std::vector<std::size_t> cand;
    for (std::size_t i = 0; i < score.size(); ++i)
        if (mask.data()[i] != T(0)) cand.push_back(i);
    k = std::min(k, cand.size());
    std::stable_sort(cand.begin(), cand.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
    for (std::size_t j = 0; j < k; ++j) mask.data()[cand[j]] = T(0);
}

}  // namespace detail

/// Prunes round(amount * n) of the n weights `name` of `layer` still unpruned, those of least |w|.
/// value_error (naming the layer) for an amount outside [0, 1] or a parameter the layer lacks.
template <nn::layer L>
void l1_unstructured(L& layer, const std::string& name, double amount) {
    auto [p, label] = detail::find(layer, name, "l1_unstructured");
    detail::check_amount("prune::l1_unstructured: " + label, amount);
    using T = typename decltype(p)::value_type;
    auto& s = p.state();
    auto orig = detail::originals(s);
    auto mask = detail::current_mask(s);
    std::vector<double> score(orig.size());
    std::size_t alive = 0;
    for (std::size_t i = 0; i < score.size(); ++i) {
        score[i] = std::abs(static_cast<double>(orig.data()[i]));
        alive += mask.data()[i] != T(0);
    }
    detail::drop_smallest(score, mask, detail::count_to_prune(amount, alive));
    detail::apply(s, std::move(orig), std::move(mask));
}

/// Prunes whole slices along `dim` (output channels for dim 0): round(amount * c) of the c slices
/// still holding a kept weight, those of least n-norm of the original weights (n > 0, or
/// +-infinity for the largest / smallest |w|). value_error for a bad amount, n, dim or name.
template <nn::layer L>
void ln_structured(L& layer, const std::string& name, double amount, double n, std::ptrdiff_t dim) {
    auto [p, label] = detail::find(layer, name, "ln_structured");
    const std::string who = "prune::ln_structured: " + label;
    detail::check_amount(who, amount);
    if (!(n > 0) && !(std::isinf(n)))
        throw value_error(who + ": the norm order n must be > 0 or +-infinity, got " + std::to_string(n));
    using T = typename decltype(p)::value_type;
    auto& s = p.state();
    const shape_t& sh = s.value.shape();
    const auto rank = static_cast<std::ptrdiff_t>(sh.size());
    if (rank < 2) throw value_error(who + ": structured pruning needs a parameter of 2 or more dimensions");
    if (dim < -rank || dim >= rank)
        throw value_error(who + ": dim " + std::to_string(dim) + " is out of range for " + to_string(sh));
    const auto d = static_cast<std::size_t>(dim < 0 ? dim + rank : dim);
    std::size_t inner = 1;
    for (std::size_t k = d + 1; k < sh.size(); ++k) inner *= sh[k];
    const std::size_t channels = sh[d], outer = s.value.size() / (channels * inner);
    auto orig = detail::originals(s);
    auto mask = detail::current_mask(s);
    auto at = [&](std::size_t o, std::size_t c, std::size_t i) { return (o * channels + c) * inner + i; };

    // candidates: the channels with a kept weight; their norms over everything else
    std::vector<double> norm(channels, 0.0);
    std::vector<std::size_t> cand;
    for (std::size_t c = 0; c < channels; ++c) {
        bool alive = false;
        double acc = n > 0 && std::isinf(n) ? 0.0 : (n < 0 ? std::numeric_limits<double>::infinity() : 0.0);
        for (std::size_t o = 0; o < outer; ++o)
            for (std::size_t i = 0; i < inner; ++i) {
                const double a = std::abs(static_cast<double>(orig.data()[at(o, c, i)]));
                alive = alive || mask.data()[at(o, c, i)] != T(0);
                if (std::isinf(n)) acc = n > 0 ? std::max(acc, a) : std::min(acc, a);
                else acc += std::pow(a, n);
            }
        norm[c] = std::isinf(n) ? acc : std::pow(acc, 1.0 / n);
        if (alive) cand.push_back(c);
    }
    const std::size_t k = std::min(detail::count_to_prune(amount, cand.size()), cand.size());
    std::stable_sort(cand.begin(), cand.end(), [&](std::size_t a, std::size_t b) { return norm[a] < norm[b]; });
    for (std::size_t j = 0; j < k; ++j)
        for (std::size_t o = 0; o < outer; ++o)
            for (std::size_t i = 0; i < inner; ++i) mask.data()[at(o, cand[j], i)] = T(0);
    detail::apply(s, std::move(orig), std::move(mask));
}

/// A parameter named for global_unstructured: prune::target(layer, "weight").
template <class T>
struct pruning_target {
    parameter<T> param;
    std::string label;  // the layer, for error messages
};
template <nn::layer L>
pruning_target<nn::value_type_of<L>> target(L& layer, const std::string& name) {
    auto [p, label] = detail::find(layer, name, "target");
    return {p, label};
}

/// Prunes round(amount * n) of the n still-unpruned weights of all `targets` together, those of
/// least |w| (torch.nn.utils.prune.global_unstructured with L1Unstructured).
namespace detail {
template <class T>
void global_unstructured(const std::vector<pruning_target<T>>& targets, double amount) {
    check_amount("prune::global_unstructured", amount);
    if (targets.empty()) throw value_error("prune::global_unstructured: no parameters given");
    std::vector<double> score;
    std::vector<T> flat_mask;
    for (auto& t : targets) {
        for (auto& u : targets)
            if (&u != &t && u.param.same(t.param))
                throw value_error("prune::global_unstructured: " + t.label + " is listed twice");
        const auto& s = t.param.state();
        const auto m = current_mask(s);
        for (std::size_t i = 0; i < s.value.size(); ++i) {
            score.push_back(std::abs(static_cast<double>(s.value.data()[i])));
            flat_mask.push_back(m.data()[i]);
        }
    }
    auto mask = from_vector(flat_mask, {flat_mask.size()});
    std::size_t alive = 0;
    for (T v : flat_mask) alive += v != T(0);
    drop_smallest(score, mask, count_to_prune(amount, alive));
    std::size_t off = 0;
    for (auto& t : targets) {
        auto& s = t.param.state();
        auto m = tensor<T>::uninitialized(s.value.shape());
        std::copy(mask.data() + off, mask.data() + off + m.size(), m.data());
        off += m.size();
        apply(s, originals(s), std::move(m));
    }
}
}  // namespace detail
inline void global_unstructured(const std::vector<pruning_target<float>>& targets, double amount) {
    detail::global_unstructured(targets, amount);
}
inline void global_unstructured(const std::vector<pruning_target<double>>& targets, double amount) {
    detail::global_unstructured(targets, amount);
}

/// A mask of ones (torch's prune.identity): makes the parameter "pruned" so that a pruned
/// checkpoint ("<name>_orig", "<name>_mask") loads into a fresh model.
template <nn::layer L>
void identity(L& layer, const std::string& name) {
    auto [p, label] = detail::find(layer, name, "identity");
    auto& s = p.state();
    detail::apply(s, detail::originals(s), detail::current_mask(s));
}

/// Makes the pruning permanent: the parameter keeps its pruned value and loses mask and
/// originals (saved as "<name>" again). value_error when it is not pruned.
template <nn::layer L>
void remove(L& layer, const std::string& name) {
    auto [p, label] = detail::find(layer, name, "remove");
    auto& s = p.state();
    if (!s.pruned) throw value_error("prune::remove: parameter '" + name + "' of " + label + " is not pruned");
    s.pruned = false;
    s.prune_mask = {};
    s.prune_orig = {};
}

/// True when the parameter `name` of `layer` carries a mask.
template <nn::layer L>
bool is_pruned(L& layer, const std::string& name) {
    return detail::find(layer, name, "is_pruned").first.state().pruned;
}

/// One line of a sparsity report: a parameter, its size and how many of its elements are zero.
struct sparsity_entry {
    std::string name;
    std::size_t size = 0, zeros = 0;
    bool pruned = false;
    double sparsity() const { return size ? static_cast<double>(zeros) / static_cast<double>(size) : 0.0; }
};

/// Zeros per parameter of the model (dotted names), plus a last entry "total".
template <nn::layer M>
std::vector<sparsity_entry> sparsity(M& model) {
    std::vector<sparsity_entry> out;
    sparsity_entry total{"total"};
    for (auto& [name, p] : nn::named_parameters(model)) {
        sparsity_entry e{name, p.size(), 0, false};
        if constexpr (std::is_same_v<nn::device_type_of<M>, device::cpu>) {
            const auto v = p.value().contiguous();
            for (std::size_t i = 0; i < v.size(); ++i) e.zeros += v.data()[i] == 0;
            e.pruned = p.state().pruned;
        }
        total.size += e.size;
        total.zeros += e.zeros;
        out.push_back(e);
    }
    out.push_back(total);
    return out;
}

/// sparsity(model) as a table: parameter, elements, zeros, sparsity %, "pruned" when masked.
template <nn::layer M>
std::string sparsity_report(M& model) {
    std::string s = "parameter              elements      zeros  sparsity\n";
    char line[160];
    for (auto& e : sparsity(model)) {
        std::snprintf(line, sizeof line, "%-20s %10zu %10zu  %6.2f %%%s\n", e.name.c_str(), e.size, e.zeros,
                      100.0 * e.sparsity(), e.pruned ? "  pruned" : "");
        s += line;
    }
    return s;
}

}  // namespace xgrad::prune
