#pragma once
// embedding_bag, as torch.nn.functional.embedding_bag: sums or means of bags of weight rows,
// without materializing the rows. Bag b holds positions k in [offsets[b], offsets[b + 1])
// (the last bag runs to the end of indices):
//   sum:   y[b, :] = sum_k s_k weight[indices[k], :]        (s_k = per_sample_weights[k], else 1)
//   mean:  y[b, :] = (1 / n_b) sum_k weight[indices[k], :]  (n_b = bag size; an empty bag gives 0)
// Gradients:
//   dweight[r, :]  = sum over k with indices[k] == r of c_k dy[bag(k), :]  (c_k = s_k, or 1 / n_b)
//   dper_sample_weights[k] = dot(dy[bag(k), :], weight[indices[k], :])
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/transfer.hpp"
#include "../expr/op_node.hpp"
#include "detail/device_kernels.hpp"
#include "detail/layout.hpp"

namespace xgrad {

enum class bag_mode { sum, mean };

namespace detail {

/// Checks bag offsets (host copy) against n indices; value_error naming the bad offset.
inline void check_bag_offsets(const std::int64_t* off, std::size_t bags, std::size_t n) {
    for (std::size_t b = 0; b < bags; ++b) {
        const std::int64_t o = off[b];
        const std::int64_t prev = b == 0 ? 0 : off[b - 1];
        if (b == 0 && o != 0)
            throw value_error("embedding_bag: offsets[0] must be 0, got " + std::to_string(o));
        if (o < prev)
            throw value_error("embedding_bag: offsets must not decrease, but offsets[" + std::to_string(b) +
                              "] = " + std::to_string(o) + " < offsets[" + std::to_string(b - 1) + "] = " +
                              std::to_string(prev));
        if (static_cast<std::uint64_t>(o) > n)
            throw value_error("embedding_bag: offsets[" + std::to_string(b) + "] = " + std::to_string(o) +
                              " is past the end of the " + std::to_string(n) + " indices");
    }
}

template <class T, class D, bool Weighted>
struct embedding_bag_impl {
    static constexpr const char* name = "embedding_bag";
    static constexpr std::size_t inputs = Weighted ? 2 : 1;
    tensor<std::int64_t, D> indices;  // {N}, contiguous, on the weight's device
    tensor<std::int64_t, D> offsets;  // {B}
    bag_mode mode = bag_mode::sum;

    std::size_t bags() const { return offsets.shape()[0]; }

    shape_t output_shape(const shape_t& ws) const {
        if (ws.size() != 2)
            throw shape_error("embedding_bag: weight must have shape {num_embeddings, dim}, got " + to_string(ws));
        if constexpr (std::same_as<D, device::cpu>)
            check(ws[0]);
        else
            device_kernels<embedding_bag_impl, D>::check(*this, ws[0]);
        return {bags(), ws[1]};
    }
    shape_t output_shape(const shape_t& ws, const shape_t& ps) const
        requires Weighted
    {
        if (ps != indices.shape())
            throw shape_error("embedding_bag: per_sample_weights of shape " + to_string(ps) +
                              " must have the indices' shape " + to_string(indices.shape()));
        return output_shape(ws);
    }

    void check(std::size_t rows) const {
        check_bag_offsets(offsets.data(), bags(), indices.size());
        const std::int64_t* id = indices.data();
        for (std::size_t i = 0; i < indices.size(); ++i)
            if (id[i] < 0 || static_cast<std::uint64_t>(id[i]) >= rows) throw value_error(index_error(id[i], i, rows));
    }

    std::string index_error(std::int64_t id, std::size_t i, std::size_t rows) const {
        return "embedding_bag: index " + std::to_string(id) + " at position " + std::to_string(i) +
               " is out of range for " + std::to_string(rows) + " embeddings";
    }

    std::size_t bag_end(std::size_t b) const {
        return b + 1 < bags() ? static_cast<std::size_t>(offsets.data()[b + 1]) : indices.size();
    }

    tensor<T> run_forward(const tensor<T>& w, const T* psw) const {
        check(w.shape()[0]);  // the index tensors may have changed since the op was built
        const std::size_t dim = w.shape()[1];
        auto y = tensor<T>(shape_t{bags(), dim});
        const std::int64_t* id = indices.data();
        parallel_rows(bags(), dim * (indices.size() / std::max<std::size_t>(bags(), 1) + 1),
                      [&](std::size_t b0, std::size_t b1) {
                          for (std::size_t b = b0; b < b1; ++b) {
                              const std::size_t s = static_cast<std::size_t>(offsets.data()[b]), e = bag_end(b);
                              T* yr = y.data() + b * dim;
                              for (std::size_t k = s; k < e; ++k) {
                                  const T c = psw ? psw[k] : T(1);
                                  const T* wr = w.data() + static_cast<std::size_t>(id[k]) * dim;
                                  for (std::size_t j = 0; j < dim; ++j) yr[j] += c * wr[j];
                              }
                              if (mode == bag_mode::mean && e > s) {
                                  const T inv = T(1) / static_cast<T>(e - s);
                                  for (std::size_t j = 0; j < dim; ++j) yr[j] *= inv;
                              }
                          }
                      });
        return y;
    }

    tensor<T> forward(const tensor<T>& w) const
        requires(!Weighted)
    {
        return run_forward(w, nullptr);
    }
    tensor<T> forward(const tensor<T>& w, const tensor<T>& psw) const
        requires Weighted
    {
        return run_forward(w, psw.data());
    }

    void backward(const tensor<T>& g, const tensor<T>&, const std::array<tensor<T>, inputs>& in,
                  std::array<tensor<T>*, inputs> grad) const {
        const std::size_t dim = in[0].shape()[1];
        const std::int64_t* id = indices.data();
        const T* psw = nullptr;
        if constexpr (Weighted) psw = in[1].data();
        if (grad[0]) {
            T* dw = grad[0]->data();
            grad[0]->fill(T(0));
            // serial: two positions may hit the same row
            for (std::size_t b = 0; b < bags(); ++b) {
                const std::size_t s = static_cast<std::size_t>(offsets.data()[b]), e = bag_end(b);
                const T* gb = g.data() + b * dim;
                const T scale = mode == bag_mode::mean && e > s ? T(1) / static_cast<T>(e - s) : T(1);
                for (std::size_t k = s; k < e; ++k) {
                    const T c = psw ? psw[k] : scale;
                    T* row = dw + static_cast<std::size_t>(id[k]) * dim;
                    for (std::size_t j = 0; j < dim; ++j) row[j] += c * gb[j];
                }
            }
        }
        if constexpr (Weighted) {
            if (grad[1]) {
                T* dp = grad[1]->data();
                for (std::size_t b = 0; b < bags(); ++b) {
                    const T* gb = g.data() + b * dim;
                    for (std::size_t k = static_cast<std::size_t>(offsets.data()[b]); k < bag_end(b); ++k) {
                        const T* wr = in[0].data() + static_cast<std::size_t>(id[k]) * dim;
                        T acc = 0;
                        for (std::size_t j = 0; j < dim; ++j) acc += gb[j] * wr[j];
                        dp[k] = acc;
                    }
                }
            }
        }
    }
};

template <class D>
void check_bag_args(const tensor<std::int64_t, D>& indices, const tensor<std::int64_t, D>& offsets) {
    if (indices.dim() != 1)
        throw shape_error("embedding_bag: indices with offsets must be 1-D, got " + to_string(indices.shape()));
    if (offsets.dim() != 1)
        throw shape_error("embedding_bag: offsets must be 1-D, got " + to_string(offsets.shape()));
}

/// Offsets 0, L, 2L, ... of the rows of 2-D indices {B, L}, on D.
template <class D>
tensor<std::int64_t, D> row_offsets(const shape_t& s) {
    if (s.size() != 2)
        throw shape_error("embedding_bag: indices without offsets must be {bags, bag_size}, got " + to_string(s));
    std::vector<std::int64_t> off(s[0]);
    for (std::size_t b = 0; b < s[0]; ++b) off[b] = static_cast<std::int64_t>(b * s[1]);
    auto host = from_vector(off, {s[0]});
    return xgrad::to<D>(host);
}

}  // namespace detail

/// Bags of rows of `weight` {num_embeddings, dim}: indices {N} cut into B bags by offsets {B}
/// (offsets[0] = 0, non-decreasing, at most N), reduced by `mode`; the result is {B, dim}.
/// value_error for a bad offset or an index outside [0, num_embeddings); shape_error for
/// indices/offsets that are not 1-D. The index tensors live on the weight's device.
template <operand W, class D>
auto embedding_bag(const tensor<std::int64_t, D>& indices, const tensor<std::int64_t, D>& offsets, W&& weight,
                   bag_mode mode = bag_mode::sum) {
    using T = typename expr_t<W>::value_type;
    static_assert(std::same_as<detail::op_device_t<expr_t<W>>, D>,
                  "xgrad::embedding_bag: the indices must be on the weight's device; move them with xgrad::to<Device>(indices)");
    detail::check_bag_args(indices, offsets);
    return make_op(detail::embedding_bag_impl<T, D, false>{indices.contiguous(), offsets.contiguous(), mode},
                   std::forward<W>(weight));
}

/// Weighted bags (mode sum only, as in PyTorch): y[b] = sum_k per_sample_weights[k] weight[indices[k]].
/// per_sample_weights {N} is differentiable too.
template <operand W, operand P, class D>
auto embedding_bag(const tensor<std::int64_t, D>& indices, const tensor<std::int64_t, D>& offsets, W&& weight,
                   P&& per_sample_weights, bag_mode mode = bag_mode::sum) {
    using T = typename expr_t<W>::value_type;
    static_assert(std::same_as<detail::op_device_t<expr_t<W>, expr_t<P>>, D>,
                  "xgrad::embedding_bag: the indices must be on the weight's device; move them with xgrad::to<Device>(indices)");
    detail::check_bag_args(indices, offsets);
    if (mode != bag_mode::sum)
        throw value_error("embedding_bag: per_sample_weights are only supported with bag_mode::sum");
    return make_op(detail::embedding_bag_impl<T, D, true>{indices.contiguous(), offsets.contiguous(), mode},
                   std::forward<W>(weight), std::forward<P>(per_sample_weights));
}

/// Fixed-size bags: each row of indices {B, L} is one bag; the result is {B, dim}.
template <operand W, class D>
auto embedding_bag(const tensor<std::int64_t, D>& indices, W&& weight, bag_mode mode = bag_mode::sum) {
    const auto off = detail::row_offsets<D>(indices.shape());
    return embedding_bag(indices.contiguous().reshape(shape_t{indices.size()}), off, std::forward<W>(weight), mode);
}

}  // namespace xgrad
