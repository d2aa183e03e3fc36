#pragma once
// Embedding lookup: a gather of rows of a weight table, with a scatter-add backward.
//   y[i..., :] = weight[indices[i...], :]
//   dweight[r, :] = sum over positions i with indices[i] == r of dy[i, :]
#include <array>
#include <cstdint>
#include <string>

#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"

namespace xgrad {

namespace detail {

template <class T, class D = device::cpu>
struct embedding_impl {
    static constexpr const char* name = "embedding";
    tensor<std::int64_t, D> indices;  // contiguous, on the weight's device

    shape_t output_shape(const shape_t& ws) const {
        if (ws.size() != 2)
            throw shape_error("embedding: weight must have shape {num_embeddings, dim}, got " + to_string(ws));
        if constexpr (std::same_as<D, device::cpu>)
            check(ws[0]);
        else
            device_kernels<embedding_impl, D>::check(*this, ws[0]);
        shape_t out = indices.shape();
        out.push_back(ws[1]);
        return out;
    }

    void check(std::size_t rows) const {
        const std::int64_t* id = indices.data();
        for (std::size_t i = 0; i < indices.size(); ++i)
            if (id[i] < 0 || static_cast<std::uint64_t>(id[i]) >= rows) throw value_error(index_error(id[i], i, rows));
    }

    /// The message of an index outside [0, rows) at flat position i.
    std::string index_error(std::int64_t id, std::size_t i, std::size_t rows) const {
        return "embedding: index " + std::to_string(id) + " at position " + position_string(i, indices.shape()) +
               " is out of range for " + std::to_string(rows) + " embeddings";
    }

    tensor<T> forward(const tensor<T>& w) const {
        check(w.shape()[0]);  // the indices tensor may have changed since the op was built
        const std::size_t dim = w.shape()[1];
        shape_t s = indices.shape();
        s.push_back(dim);
        auto y = tensor<T>::uninitialized(s);
        const std::int64_t* id = indices.data();
        parallel_rows(indices.size(), dim, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i)
                std::copy_n(w.data() + static_cast<std::size_t>(id[i]) * dim, dim, y.data() + i * dim);
        });
        return y;
    }

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, 1>& in,
                  std::array<tensor<T>*, 1> grad) const {
        if (!grad[0]) return;
        const std::size_t dim = in[0].shape()[1];
        T* dw = grad[0]->data();
        grad[0]->fill(T(0));
        const std::int64_t* id = indices.data();
        // serial: two positions may hit the same row
        for (std::size_t i = 0; i < indices.size(); ++i) {
            T* row = dw + static_cast<std::size_t>(id[i]) * dim;
            const T* gi = g.data() + i * dim;
            simd_for<T>(dim, [&]<class V>(std::size_t j) { store(V(load<V>(row + j) + load<V>(gi + j)), row + j); });
        }
    }
};

}  // namespace detail

/// Rows of `weight` {num_embeddings, dim} picked by integer `indices` (any shape); the result
/// has shape indices.shape() + {dim}. An index outside [0, num_embeddings) throws value_error.
/// The indices live on the weight's device.
template <operand W, class D>
auto embedding(const tensor<std::int64_t, D>& indices, W&& weight) {
    using T = typename expr_t<W>::value_type;
    static_assert(std::same_as<detail::op_device_t<expr_t<W>>, D>,
                  "xgrad::embedding: the indices must be on the weight's device; move them with xgrad::to<Device>(indices)");
    return make_op(detail::embedding_impl<T, D>{indices.contiguous()}, std::forward<W>(weight));
}

}  // namespace xgrad
