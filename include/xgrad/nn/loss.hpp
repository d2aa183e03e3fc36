#pragma once
// Loss objects, as torch.nn.CrossEntropyLoss & co.: built once with their options, then called
// as loss(outputs, targets) -> a scalar expression (the mean over the batch), which is what
// xgrad::fit takes. Each forwards to the functional loss of the same name (ops/loss.hpp), so
// the semantics, checks and fusion are those documented there.
//
//   auto history = xgrad::fit(model, opt, xgrad::nn::cross_entropy({.label_smoothing = 0.1}), loader);
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../ops/loss.hpp"

namespace xgrad::nn {

namespace detail {

inline std::vector<double> check_weights(std::vector<double> w, const char* who) {
    for (double v : w)
        if (!(v >= 0) || std::isinf(v))
            throw value_error(std::string(who) + ": class weights must be finite and >= 0");
    return w;
}

template <class T>
std::optional<tensor<T>> weight_tensor(const std::vector<double>& w) {
    if (w.empty()) return std::nullopt;
    std::vector<T> v(w.begin(), w.end());
    return from_vector<T>(v, {v.size()});
}

}  // namespace detail

struct cross_entropy_options {
    double label_smoothing = 0;     ///< epsilon in [0, 1]
    std::vector<double> weight{};   ///< per-class weights {C} (empty: all 1)
    std::int64_t ignore_index = -100;
};

/// Mean cross-entropy of logits {N, C} against class indices {N}.
class cross_entropy {
public:
    explicit cross_entropy(cross_entropy_options o = {}) : o_(std::move(o)) {
        if (!(o_.label_smoothing >= 0 && o_.label_smoothing <= 1))
            throw value_error("cross_entropy: label_smoothing must be in [0, 1], got " + std::to_string(o_.label_smoothing));
        o_.weight = detail::check_weights(std::move(o_.weight), "cross_entropy");
    }
    /// Labels on the logits' device.
    template <operand X, class D>
    auto operator()(X&& logits, const tensor<std::int64_t, D>& labels) const {
        using T = xgrad::detail::elem_t<X>;
        cross_entropy_options_t<T> f;
        f.label_smoothing = o_.label_smoothing;
        f.weight = detail::weight_tensor<T>(o_.weight);
        f.ignore_index = o_.ignore_index;
        return xgrad::cross_entropy(std::forward<X>(logits), labels, f);
    }

private:
    template <class T>
    using cross_entropy_options_t = xgrad::cross_entropy_options<reduction::mean_t, T>;
    cross_entropy_options o_;
};

struct nll_loss_options {
    std::vector<double> weight{};
    std::int64_t ignore_index = -100;
};

/// Mean negative log-likelihood of log-probabilities {N, C} (log_softmax outputs).
class nll_loss {
public:
    explicit nll_loss(nll_loss_options o = {}) : o_(std::move(o)) {
        o_.weight = detail::check_weights(std::move(o_.weight), "nll_loss");
    }
    template <operand X, class D>
    auto operator()(X&& log_probs, const tensor<std::int64_t, D>& labels) const {
        using T = xgrad::detail::elem_t<X>;
        xgrad::nll_loss_options<reduction::mean_t, T> f;
        f.weight = detail::weight_tensor<T>(o_.weight);
        f.ignore_index = o_.ignore_index;
        return xgrad::nll_loss(std::forward<X>(log_probs), labels, f);
    }

private:
    nll_loss_options o_;
};

/// Mean squared error between outputs and targets of the same shape.
struct mse_loss {
    template <operand A, operand B>
    auto operator()(A&& input, B&& target) const {
        return xgrad::mse_loss(std::forward<A>(input), std::forward<B>(target));
    }
};

/// Mean absolute error.
struct l1_loss {
    template <operand A, operand B>
    auto operator()(A&& input, B&& target) const {
        return xgrad::l1_loss(std::forward<A>(input), std::forward<B>(target));
    }
};

/// Mean Huber loss with threshold delta > 0.
class huber_loss {
public:
    explicit huber_loss(double delta = 1.0) : delta_(delta) {
        if (!(delta > 0)) throw value_error("huber_loss: delta must be > 0, got " + std::to_string(delta));
    }
    template <operand A, operand B>
    auto operator()(A&& input, B&& target) const {
        return xgrad::huber_loss(std::forward<A>(input), std::forward<B>(target), delta_);
    }

private:
    double delta_;
};

/// Mean binary cross-entropy of logits against targets in [0, 1].
struct bce_with_logits_loss {
    template <operand A, operand B>
    auto operator()(A&& logits, B&& target) const {
        return xgrad::binary_cross_entropy_with_logits(std::forward<A>(logits), std::forward<B>(target));
    }
};

}  // namespace xgrad::nn
