#pragma once
// summary(model, input_shape): a Keras-style table of a model's layers with their output
// shapes and parameter counts. Shapes come from building the forward expression on a batch of
// one: nothing is computed. The children of sequentials are listed one per row (nested ones
// indented); any other layer is one row. The model is in evaluation mode while it is walked
// (so dropout draws no mask), and every layer's mode is restored afterwards.
#include <cstdint>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "../core/transfer.hpp"
#include "module.hpp"
#include "sequential.hpp"

namespace xgrad::nn {

struct summary_row {
    std::string name;   // dotted path and kind: "0 (conv2d)"
    shape_t output;     // with batch 1
    std::size_t params = 0;
    int depth = 0;      // nesting below the model
};

namespace detail {

template <class X>
struct is_sequential : std::false_type {};
template <class... L>
struct is_sequential<sequential<L...>> : std::true_type {};

inline std::string group_digits(std::size_t n) {
    std::string s = std::to_string(n), out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}

template <class S, class X, std::size_t... I>
auto seq_rows(S& s, const std::string& path, X&& x, int depth, std::vector<summary_row>& rows,
              std::index_sequence<I...>);

/// Rows for layer l (named `path`) fed with x; returns l's output.
template <class L, class X>
auto summary_rows(L& l, const std::string& path, X&& x, int depth, std::vector<summary_row>& rows) {
    using D = std::remove_cvref_t<L>;
    if constexpr (is_sequential<D>::value) {
        if (depth > 0) rows.push_back({path + " (sequential)", {}, num_parameters(l), depth});
        return seq_rows(l, path, std::forward<X>(x), depth + (depth > 0 ? 1 : 0), rows,
                        std::make_index_sequence<D::size()>{});
    } else {
        auto y = [&] {
            if constexpr (module_based<D>)
                return l(std::forward<X>(x));
            else
                return l.forward(std::forward<X>(x));
        }();
        rows.push_back({(path.empty() ? "" : path + " ") + "(" + kind_of<D>() + ")", y.shape(), num_parameters(l), depth});
        return y;
    }
}

struct mode_saver {
    std::vector<std::function<void()>> restore;
    template <class P>
    void on_parameter(const std::string&, const P&) {}
    template <class B>
    void on_buffer(const std::string&, const B&) {}
    template <class L>
    void on_layer(const std::string&, L& l) {
        if constexpr (requires { l.is_training(); l.set_training(true); }) {
            const bool was = l.is_training();
            restore.push_back([&l, was] { l.set_training(was); });
        }
    }
};

template <class S, class X, std::size_t I0, std::size_t... I>
auto seq_rows_from(S& s, const std::string& path, X&& x, int depth, std::vector<summary_row>& rows) {
    auto y = summary_rows(s.template get<I0>(), join(path, std::to_string(I0)), std::forward<X>(x), depth, rows);
    if constexpr (sizeof...(I) == 0)
        return y;
    else
        return seq_rows_from<S, decltype(y), I...>(s, path, std::move(y), depth, rows);
}
template <class S, class X, std::size_t... I>
auto seq_rows(S& s, const std::string& path, X&& x, int depth, std::vector<summary_row>& rows,
              std::index_sequence<I...>) {
    return seq_rows_from<S, X, I...>(s, path, std::forward<X>(x), depth, rows);
}

}  // namespace detail

/// The rows of summary(model, input): one per layer (see the top of this file). `input` is an
/// example batch (a tensor, or integer indices for a model that starts with an embedding).
template <layer M, class X>
std::vector<summary_row> summary_rows(M& model, const X& input) {
    // remember every layer's mode, walk in eval mode, restore
    detail::mode_saver saver;
    detail::walk(model, std::string{}, saver);
    struct restorer {
        detail::mode_saver& s;
        ~restorer() {
            for (auto& f : s.restore) f();
        }
    } guard{saver};
    nn::train(model, false);
    named_parameters(model);  // refresh paths
    std::vector<summary_row> rows;
    detail::summary_rows(model, std::string{}, input, 0, rows);
    return rows;
}

/// The summary table as text: layer, output shape (batch shown as N), parameter count, totals.
template <layer M, class X>
std::string summary_table(M& model, const X& input) {
    const auto rows = summary_rows(model, input);
    auto shape_text = [](const shape_t& s) {
        if (s.empty()) return std::string("-");
        std::string t = "{N";
        for (std::size_t i = 1; i < s.size(); ++i) t += ", " + std::to_string(s[i]);
        return t + "}";
    };
    std::size_t w0 = 12, w1 = 12;
    for (auto& r : rows) {
        w0 = std::max(w0, r.name.size() + 2 * static_cast<std::size_t>(r.depth));
        w1 = std::max(w1, shape_text(r.output).size());
    }
    w0 += 2;
    w1 += 2;
    const std::size_t w2 = 14, width = w0 + w1 + w2;
    std::ostringstream os;
    auto line = [&](char c) { os << std::string(width, c) << '\n'; };
    auto pad = [](std::string s, std::size_t w) { return s.size() < w ? s + std::string(w - s.size(), ' ') : s; };
    auto rpad = [](std::string s, std::size_t w) { return s.size() < w ? std::string(w - s.size(), ' ') + s : s; };
    line('=');
    os << pad("Layer (type)", w0) << pad("Output shape", w1) << rpad("Param #", w2) << '\n';
    line('=');
    for (auto& r : rows)
        os << pad(std::string(2 * static_cast<std::size_t>(r.depth), ' ') + r.name, w0) << pad(shape_text(r.output), w1)
           << rpad(detail::group_digits(r.params), w2) << '\n';
    line('=');
    const std::size_t total = num_parameters(model), trainable = num_parameters(model, true);
    os << "Total params: " << detail::group_digits(total) << '\n'
       << "Trainable params: " << detail::group_digits(trainable) << '\n'
       << "Non-trainable params: " << detail::group_digits(total - trainable) << '\n';
    line('=');
    return os.str();
}

/// Prints summary_table(model, zeros of shape {1, input_shape...}) to `os`.
template <layer M>
void summary(M& model, const shape_t& input_shape, std::ostream& os = std::cout) {
    shape_t s{1};
    s.insert(s.end(), input_shape.begin(), input_shape.end());
    os << summary_table(model, zeros<value_type_of<M>, device_type_of<M>>(s));
}

}  // namespace xgrad::nn
