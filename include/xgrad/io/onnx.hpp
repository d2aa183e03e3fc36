#pragma once
// ONNX export: xgrad::onnx::save(model, example_input_shape, path) writes a model of
// nn::sequential layers as an ONNX file (IR version 8, default opset 17) that onnxruntime and
// other ONNX tools run. The model is exported as in evaluation mode (batch norm with its
// running statistics, dropout the identity); the example input's shape fixes every size but
// the batch dimension (symbolic "batch" unless save_options::dynamic_batch is false).
//
//   layer                          ONNX nodes
//   linear                         Gemm (transB = 1) on {N, in}; MatMul + Add on higher ranks
//   conv2d                         Conv (pads, strides, dilations, group)
//   max_pool2d / avg_pool2d        MaxPool / AveragePool (count_include_pad)
//   adaptive_avg_pool2d            GlobalAveragePool for {1, 1}, else AveragePool when the
//                                  input divides into the output size
//   relu, leaky_relu, sigmoid,     Relu, LeakyRelu, Sigmoid, Tanh, Softmax, LogSoftmax
//   tanh, softmax, log_softmax
//   gelu                           x * 0.5 * (1 + Erf(x / sqrt(2)))   (opset 17 has no Gelu)
//   flatten                        Flatten (axis 1 to the end), else Reshape
//   batch_norm1d / batch_norm2d    BatchNormalization (inference: running statistics)
//   layer_norm                     LayerNormalization
//   dropout                        Identity
//   lstm / gru                     one LSTM / GRU node per layer (gates reordered to ONNX's
//                                  i, o, f, c and z, r, h; GRU linear_before_reset = 1),
//                                  Transpose around them for batch_first, Transpose + Reshape
//                                  of Y {T, D, B, H} to {T, B, D*H}; the output sequence only
//   sequential                     its layers, in order
// Any other layer is a value_error naming it ("layer '2' (embedding)").
//
// The protobuf messages (onnx/onnx.proto) are encoded by io/detail/protobuf.hpp:
//   ModelProto: ir_version 1, producer_name 2, producer_version 3, graph 7, opset_import 8
//   GraphProto: node 1, name 2, initializer 5, input 11, output 12
//   NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
//   AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7)
//   TensorProto: dims 1, data_type 2 (FLOAT 1, INT64 7, DOUBLE 11), name 8, raw_data 9
//   ValueInfoProto: name 1, type 2 -> TypeProto.tensor_type 1 -> elem_type 1, shape 2 -> dim 1
//     -> dim_value 1 | dim_param 2
#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../autodiff/backward.hpp"
#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../nn/activation.hpp"
#include "../nn/conv.hpp"
#include "../nn/dropout.hpp"
#include "../nn/flatten.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "../nn/normalization.hpp"
#include "../nn/pooling.hpp"
#include "../nn/rnn.hpp"
#include "../nn/sequential.hpp"
#include "detail/protobuf.hpp"

namespace xgrad::onnx {

struct save_options {
    /// The first dimension is a symbolic "batch" (else the example's batch size is fixed).
    bool dynamic_batch = true;
    std::string input_name = "input";
    std::string output_name = "output";
    std::string graph_name = "xgrad";
    std::int64_t opset = 17;
};

namespace detail {

using io::detail::pb_writer;

template <class L, template <class, class> class Tmpl>
inline constexpr bool is_a = false;
template <class T, class D, template <class, class> class Tmpl>
inline constexpr bool is_a<Tmpl<T, D>, Tmpl> = true;

template <class L>
inline constexpr bool is_sequential = false;
template <class... L>
inline constexpr bool is_sequential<nn::sequential<L...>> = true;

template <class L>
inline constexpr bool is_rnn = false;
template <class T, rnn_kind K>
inline constexpr bool is_rnn<nn::recurrent<T, K>> = true;

template <class T>
constexpr std::int64_t elem_type() {
    return std::is_same_v<T, float> ? 1 : 11;
}

inline pb_writer attr_int(const char* name, std::int64_t v) {
    pb_writer a;
    a.bytes_field(1, name);
    a.int_field(3, v);
    a.int_field(20, 2);
    return a;
}
inline pb_writer attr_float(const char* name, double v) {
    pb_writer a;
    a.bytes_field(1, name);
    a.float_field(2, static_cast<float>(v));
    a.int_field(20, 1);
    return a;
}
inline pb_writer attr_ints(const char* name, const std::vector<std::int64_t>& v) {
    pb_writer a;
    a.bytes_field(1, name);
    for (auto x : v) a.int_field(8, x);
    a.int_field(20, 7);
    return a;
}

inline pb_writer value_info(const std::string& name, std::int64_t elem, const shape_t& shape, bool dynamic_batch) {
    pb_writer shp, tt, type, vi;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        pb_writer dim;
        if (i == 0 && dynamic_batch)
            dim.bytes_field(2, "batch");
        else
            dim.int_field(1, static_cast<std::int64_t>(shape[i]));
        shp.message_field(1, dim);
    }
    tt.int_field(1, elem);
    tt.message_field(2, shp);
    type.message_field(1, tt);
    vi.bytes_field(1, name);
    vi.message_field(2, type);
    return vi;
}

/// The graph being built: nodes, initializers, fresh names.
template <class T>
struct graph {
    pb_writer nodes, inits;
    save_options o;
    std::size_t counter = 0;

    std::string fresh(const std::string& base) { return base + "_" + std::to_string(counter++); }

    std::string initializer(const std::string& name, const shape_t& dims, std::int64_t type, const void* data,
                            std::size_t bytes) {
        pb_writer t;
        for (auto d : dims) t.int_field(1, static_cast<std::int64_t>(d));
        t.int_field(2, type);
        t.bytes_field(8, name);
        t.bytes_field(9, std::string_view(static_cast<const char*>(data), bytes));  // little endian, as here
        inits.message_field(5, t);
        return name;
    }
    std::string weights(const std::string& name, const tensor<T>& v) {
        const auto c = v.contiguous();
        return initializer(name, c.shape(), elem_type<T>(), c.data(), c.size() * sizeof(T));
    }
    std::string scalar(const std::string& name, T v) { return initializer(name, {}, elem_type<T>(), &v, sizeof v); }
    std::string int64s(const std::string& name, const std::vector<std::int64_t>& v) {
        return initializer(name, {v.size()}, 7, v.data(), v.size() * sizeof(std::int64_t));
    }

    /// Adds a node; returns its output's name.
    std::string node(const char* op, const std::vector<std::string>& inputs, const std::string& label,
                     const std::vector<pb_writer>& attrs = {}) {
        const std::string out = fresh(label + "." + op);
        pb_writer n;
        for (auto& i : inputs) n.bytes_field(1, i);
        n.bytes_field(2, out);
        n.bytes_field(3, out);
        n.bytes_field(4, op);
        for (auto& a : attrs) n.message_field(5, a);
        nodes.message_field(1, n);
        return out;
    }
};

inline std::vector<std::int64_t> hw(size2 s) { return {s.h, s.w}; }
inline std::vector<std::int64_t> pads(size2 p) { return {p.h, p.w, p.h, p.w}; }

template <class T, class L>
std::string export_layer(graph<T>& g, L& l, std::string x, tensor<T>& value);

/// The rows of a PyTorch gate-stacked matrix {G*H, cols} (or vector, cols = 1) in ONNX's gate
/// order: block k of the result is block order[k] of the source.
template <class T>
void put_gates(const tensor<T>& src, std::size_t H, const std::vector<std::size_t>& order, T* dst) {
    const auto c = src.contiguous();
    const std::size_t cols = c.size() / (order.size() * H);
    for (std::size_t k = 0; k < order.size(); ++k)
        std::copy_n(c.data() + order[k] * H * cols, H * cols, dst + k * H * cols);
}

/// nn::lstm / nn::gru: one ONNX LSTM / GRU node per layer on {T, B, in}.
template <class T, class L>
std::string export_rnn(graph<T>& g, L& l, std::string x, const std::string& name) {
    constexpr bool lstm = std::string_view(L::kind) == "lstm";
    const std::size_t H = l.hidden_size(), D = l.bidirectional() ? 2 : 1, G = (lstm ? 4 : 3) * H;
    // PyTorch i, f, g, o -> ONNX i, o, f, c; PyTorch r, z, n -> ONNX z, r, h
    const std::vector<std::size_t> order = lstm ? std::vector<std::size_t>{0, 3, 1, 2} : std::vector<std::size_t>{1, 0, 2};
    if (l.batch_first()) x = g.node("Transpose", {x}, name, {attr_ints("perm", {1, 0, 2})});
    for (std::size_t k = 0; k < l.num_layers(); ++k) {
        const std::size_t in = k == 0 ? l.input_size() : D * H;
        auto w = tensor<T>::uninitialized({D, G, in}), r = tensor<T>::uninitialized({D, G, H});
        auto b = tensor<T>::uninitialized({D, 2 * G});
        for (std::size_t d = 0; d < D; ++d) {
            put_gates(l.weight_ih(k, d == 1).value(), H, order, w.data() + d * G * in);
            put_gates(l.weight_hh(k, d == 1).value(), H, order, r.data() + d * G * H);
            put_gates(l.bias_ih(k, d == 1).value(), H, order, b.data() + d * 2 * G);
            put_gates(l.bias_hh(k, d == 1).value(), H, order, b.data() + d * 2 * G + G);
        }
        const std::string ln = name + ".l" + std::to_string(k);
        std::vector<pb_writer> a{attr_int("hidden_size", static_cast<std::int64_t>(H))};
        pb_writer dir;
        dir.bytes_field(1, "direction");
        dir.bytes_field(4, D == 2 ? "bidirectional" : "forward");
        dir.int_field(20, 3);  // STRING
        a.push_back(dir);
        if (!lstm) a.push_back(attr_int("linear_before_reset", 1));
        const std::string y = g.node(lstm ? "LSTM" : "GRU",
                                     {x, g.weights(ln + ".W", w), g.weights(ln + ".R", r), g.weights(ln + ".B", b)}, ln, a);
        // Y {T, D, B, H} -> {T, B, D, H} -> {T, B, D*H}
        x = g.node("Reshape", {g.node("Transpose", {y}, ln, {attr_ints("perm", {0, 2, 1, 3})}),
                               g.int64s(g.fresh(ln + ".shape"), {0, 0, -1})},
                   ln);
    }
    if (l.batch_first()) x = g.node("Transpose", {x}, name, {attr_ints("perm", {1, 0, 2})});
    return x;
}

template <class T, class... L, std::size_t... I>
std::string export_sequence(graph<T>& g, nn::sequential<L...>& s, std::string x, tensor<T>& value,
                            std::index_sequence<I...>) {
    ((x = export_layer(g, s.template get<I>(), x, value)), ...);
    return x;
}

/// Adds the nodes of layer `l` applied to tensor `x` (whose example value is `value`, replaced
/// by the layer's output); returns the output's name.
template <class T, class L>
std::string export_layer(graph<T>& g, L& l, std::string x, tensor<T>& value) {
    if constexpr (is_sequential<L>) {
        return export_sequence(g, l, x, value, std::make_index_sequence<L::size()>{});
    } else {
        const std::string label = nn::detail::layer_label(l);
        std::string name;
        if constexpr (requires { l.path(); }) name = l.path().empty() ? std::string(nn::detail::kind_of<L>()) : l.path();
        constexpr bool known =
            is_a<L, nn::linear> || is_a<L, nn::conv2d> || is_a<L, nn::batch_norm1d> || is_a<L, nn::batch_norm2d> ||
            is_a<L, nn::layer_norm> ||
            std::is_same_v<L, nn::max_pool2d> || std::is_same_v<L, nn::avg_pool2d> ||
            std::is_same_v<L, nn::adaptive_avg_pool2d> || std::is_same_v<L, nn::relu> ||
            std::is_same_v<L, nn::leaky_relu> || std::is_same_v<L, nn::sigmoid> || std::is_same_v<L, nn::tanh> ||
            std::is_same_v<L, nn::gelu> || std::is_same_v<L, nn::softmax> || std::is_same_v<L, nn::log_softmax> ||
            std::is_same_v<L, nn::flatten> || std::is_same_v<L, nn::dropout> || is_rnn<L>;
        if constexpr (!known) {
            throw value_error("onnx::save: " + label + " has no ONNX mapping");
        } else {
            static_assert(std::is_same_v<nn::device_type_of<L>, device::cpu>,
                          "onnx::save: export a model on the CPU (xgrad::to<xgrad::device::cpu>(model))");
            const shape_t in_shape = value.shape();
            tensor<T> out;
            if constexpr (is_rnn<L>)
                out = xgrad::eval(l(value).output);
            else
                out = xgrad::eval(l(value));
            std::string y;
            if constexpr (is_rnn<L>) {
                y = export_rnn(g, l, x, name);
            } else if constexpr (is_a<L, nn::linear>) {
                if (in_shape.size() == 2) {
                    std::vector<std::string> in{x, g.weights(name + ".weight", l.weight.value())};
                    if (l.has_bias()) in.push_back(g.weights(name + ".bias", l.bias.value()));
                    y = g.node("Gemm", in, name, {attr_int("transB", 1)});
                } else {
                    const auto& w = l.weight.value();  // {out, in} -> W^T {in, out}
                    auto wt = tensor<T>::uninitialized({w.shape()[1], w.shape()[0]});
                    const auto wc = w.contiguous();
                    for (std::size_t i = 0; i < w.shape()[0]; ++i)
                        for (std::size_t j = 0; j < w.shape()[1]; ++j) wt.data()[j * w.shape()[0] + i] = wc.data()[i * w.shape()[1] + j];
                    y = g.node("MatMul", {x, g.weights(name + ".weight_t", wt)}, name);
                    if (l.has_bias()) y = g.node("Add", {y, g.weights(name + ".bias", l.bias.value())}, name);
                }
            } else if constexpr (is_a<L, nn::conv2d>) {
                const auto& o = l.options();
                const auto& ws = l.weight.shape();
                std::vector<std::string> in{x, g.weights(name + ".weight", l.weight.value())};
                if (l.has_bias()) in.push_back(g.weights(name + ".bias", l.bias.value()));
                y = g.node("Conv", in, name,
                           {attr_ints("kernel_shape", {static_cast<std::int64_t>(ws[2]), static_cast<std::int64_t>(ws[3])}),
                            attr_ints("strides", hw(o.stride)), attr_ints("pads", pads(o.padding)),
                            attr_ints("dilations", hw(o.dilation)), attr_int("group", o.groups)});
            } else if constexpr (std::is_same_v<L, nn::max_pool2d> || std::is_same_v<L, nn::avg_pool2d>) {
                const size2 k = l.kernel_size(), s0 = l.stride();
                const size2 s = (s0.h == 0 && s0.w == 0) ? k : s0;
                std::vector<pb_writer> a{attr_ints("kernel_shape", hw(k)), attr_ints("strides", hw(s)),
                                         attr_ints("pads", pads(l.padding()))};
                if constexpr (std::is_same_v<L, nn::avg_pool2d>) {
                    a.push_back(attr_int("count_include_pad", l.count_include_pad() ? 1 : 0));
                    y = g.node("AveragePool", {x}, name, a);
                } else {
                    y = g.node("MaxPool", {x}, name, a);
                }
            } else if constexpr (std::is_same_v<L, nn::adaptive_avg_pool2d>) {
                const auto oh = out.shape()[out.dim() - 2], ow = out.shape()[out.dim() - 1];
                const auto ih = in_shape[in_shape.size() - 2], iw = in_shape[in_shape.size() - 1];
                if (oh == 1 && ow == 1) {
                    y = g.node("GlobalAveragePool", {x}, name);
                } else if (ih % oh == 0 && iw % ow == 0) {
                    const size2 k{static_cast<std::ptrdiff_t>(ih / oh), static_cast<std::ptrdiff_t>(iw / ow)};
                    y = g.node("AveragePool", {x}, name, {attr_ints("kernel_shape", hw(k)), attr_ints("strides", hw(k))});
                } else {
                    throw value_error("onnx::save: " + label + ": an input of " + std::to_string(ih) + "x" +
                                      std::to_string(iw) + " does not divide into the output size " +
                                      std::to_string(oh) + "x" + std::to_string(ow) + " (ONNX has no adaptive pooling)");
                }
            } else if constexpr (std::is_same_v<L, nn::relu>) {
                y = g.node("Relu", {x}, name);
            } else if constexpr (std::is_same_v<L, nn::leaky_relu>) {
                y = g.node("LeakyRelu", {x}, name, {attr_float("alpha", l.negative_slope())});
            } else if constexpr (std::is_same_v<L, nn::sigmoid>) {
                y = g.node("Sigmoid", {x}, name);
            } else if constexpr (std::is_same_v<L, nn::tanh>) {
                y = g.node("Tanh", {x}, name);
            } else if constexpr (std::is_same_v<L, nn::gelu>) {
                // x * 0.5 * (1 + erf(x / sqrt(2)))
                const auto e = g.node("Erf", {g.node("Div", {x, g.scalar(g.fresh(name + ".sqrt2"), static_cast<T>(std::sqrt(2.0)))}, name)}, name);
                const auto p = g.node("Add", {e, g.scalar(g.fresh(name + ".one"), T(1))}, name);
                y = g.node("Mul", {g.node("Mul", {x, p}, name), g.scalar(g.fresh(name + ".half"), T(0.5))}, name);
            } else if constexpr (std::is_same_v<L, nn::softmax>) {
                y = g.node("Softmax", {x}, name, {attr_int("axis", l.dim())});
            } else if constexpr (std::is_same_v<L, nn::log_softmax>) {
                y = g.node("LogSoftmax", {x}, name, {attr_int("axis", l.dim())});
            } else if constexpr (std::is_same_v<L, nn::flatten>) {
                const auto r = static_cast<std::ptrdiff_t>(in_shape.size());
                const auto start = l.start_dim() < 0 ? l.start_dim() + r : l.start_dim();
                const auto end = l.end_dim() < 0 ? l.end_dim() + r : l.end_dim();
                if (start == 1 && end == r - 1) {
                    y = g.node("Flatten", {x}, name, {attr_int("axis", 1)});
                } else {
                    // the output's sizes, the batch dimension copied (0) or, when merged, inferred (-1)
                    std::vector<std::int64_t> s(out.shape().begin(), out.shape().end());
                    if (g.o.dynamic_batch && !s.empty()) s[0] = start > 0 ? 0 : -1;
                    y = g.node("Reshape", {x, g.int64s(g.fresh(name + ".shape"), s)}, name);
                }
            } else if constexpr (std::is_same_v<L, nn::dropout>) {
                y = g.node("Identity", {x}, name);
            } else if constexpr (is_a<L, nn::batch_norm1d> || is_a<L, nn::batch_norm2d>) {
                if (!l.options().track_running_stats)
                    throw value_error("onnx::save: " + label + " keeps no running statistics, so its inference "
                                      "uses batch statistics, which ONNX's BatchNormalization does not");
                y = g.node("BatchNormalization",
                           {x, g.weights(name + ".weight", l.weight.value()), g.weights(name + ".bias", l.bias.value()),
                            g.weights(name + ".running_mean", l.running_mean), g.weights(name + ".running_var", l.running_var)},
                           name, {attr_float("epsilon", l.options().eps)});
            } else if constexpr (is_a<L, nn::layer_norm>) {
                y = g.node("LayerNormalization",
                           {x, g.weights(name + ".weight", l.weight.value()), g.weights(name + ".bias", l.bias.value())}, name,
                           {attr_int("axis", -static_cast<std::int64_t>(l.normalized_shape().size())),
                            attr_float("epsilon", l.options().eps)});
            }
            value = std::move(out);
            return y;
        }
    }
}

/// Puts every layer of a model in evaluation mode for the export and gives each its own mode
/// back afterwards (a frozen batch norm inside a training model stays frozen).
template <class M>
struct eval_scope {
    struct recorder {
        std::vector<bool>* modes;
        bool restore;
        std::size_t at = 0;
        template <class P>
        void on_parameter(const std::string&, const P&) {}
        template <class B>
        void on_buffer(const std::string&, const B&) {}
        template <class L>
        void on_layer(const std::string&, L& l) {
            if constexpr (requires { l.is_training(); l.set_training(true); }) {
                if (restore)
                    l.set_training((*modes)[at++]);
                else
                    modes->push_back(l.is_training());
            }
        }
    };
    M& m;
    std::vector<bool> modes;
    explicit eval_scope(M& model) : m(model) {
        recorder r{&modes, false};
        nn::detail::walk(m, std::string{}, r);
        nn::eval(m);
    }
    ~eval_scope() {
        recorder r{&modes, true};
        nn::detail::walk(m, std::string{}, r);
    }
};

}  // namespace detail

/// The ONNX model of `model` for inputs shaped like `example_input_shape`, as bytes.
template <nn::layer M>
std::string to_bytes(M& model, const shape_t& example_input_shape, const save_options& o = {}) {
    using T = nn::value_type_of<M>;
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "onnx::save: float or double models");
    if (example_input_shape.empty() || numel(example_input_shape) == 0)
        throw value_error("onnx::save: the example input shape " + to_string(example_input_shape) +
                          " must have at least one dimension and no zero size");
    if (o.opset < 17) throw value_error("onnx::save: opset " + std::to_string(o.opset) + " is below 17 (LayerNormalization)");
    detail::graph<T> g;
    g.o = o;
    tensor<T> value = zeros<T>(example_input_shape);
    std::string out;
    {
        detail::eval_scope<M> scope(model);
        out = detail::export_layer(g, model, o.input_name, value);
    }
    // the graph's output under its own name
    io::detail::pb_writer n;
    n.bytes_field(1, out);
    n.bytes_field(2, o.output_name);
    n.bytes_field(3, "output.Identity");
    n.bytes_field(4, "Identity");
    g.nodes.message_field(1, n);

    io::detail::pb_writer graph, opset, model_proto;
    graph.append(g.nodes);
    graph.bytes_field(2, o.graph_name);
    graph.append(g.inits);
    graph.message_field(11, detail::value_info(o.input_name, detail::elem_type<T>(), example_input_shape, o.dynamic_batch));
    graph.message_field(12, detail::value_info(o.output_name, detail::elem_type<T>(), value.shape(),
                                               o.dynamic_batch && value.dim() > 0 && value.shape()[0] == example_input_shape[0]));
    opset.bytes_field(1, "");
    opset.int_field(2, o.opset);
    model_proto.int_field(1, 8);
    model_proto.bytes_field(2, "xgrad");
    model_proto.bytes_field(3, "0.1");
    model_proto.message_field(7, graph);
    model_proto.message_field(8, opset);
    return model_proto.bytes();
}

/// Writes the ONNX model of `model` to `path` (see the table at the top of this header).
/// value_error naming a layer without an ONNX mapping; io_error naming the path when it
/// cannot be written.
template <nn::layer M>
void save(M& model, const shape_t& example_input_shape, const std::filesystem::path& path, const save_options& o = {}) {
    const std::string bytes = to_bytes(model, example_input_shape, o);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw io_error("onnx::save: cannot open '" + path.string() + "' for writing");
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!f.flush()) throw io_error("onnx::save: write to '" + path.string() + "' failed");
}

}  // namespace xgrad::onnx
