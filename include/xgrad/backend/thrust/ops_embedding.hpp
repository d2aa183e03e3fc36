#pragma once
// embedding and dropout's mask on the Thrust devices.
//   embedding forward: one position per output element (a gather). Backward: the positions
//     are sorted by index (stable, so each row keeps them in order), then one position per
//     element of the weight gradient sums its row's upstream rows in that order: no atomics,
//     and the same sums, in the same order, as the CPU's serial scatter-add.
//   embedding_bag forward: one output element per thread, looping over its bag. Backward:
//     each position's bag (an upper_bound over the offsets) and coefficient (its per-sample
//     weight, or 1 / bag size for mean), then the positions sorted by index as for embedding;
//     dper_sample_weights: one position per thread, a dot product of two rows.
//   dropout: element i of the mask is kept when a counter-based hash of (seed, i) (the i-th
//     output of splitmix64 started at the seed) falls at or above p; the seed is drawn from
//     the caller's generator, so every element is independent of the launch's shape.
//   barrier dropout (ops/dropout.hpp's barrier_dropout_impl): one launch of dropout_apply each
//     way with a mask made as above; without a mask its forward and backward hand the operand
//     and the gradient through, as on the CPU.
#include <cmath>
#include <vector>

#include <thrust/binary_search.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include "../../ops/dropout.hpp"
#include "../../ops/embedding.hpp"
#include "../../ops/embedding_bag.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

template <class T>
struct embedding_gather {
    const std::int64_t* ids;
    const T* w;
    T* y;
    std::size_t dim;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t i = static_cast<std::size_t>(k) / dim, j = static_cast<std::size_t>(k) - i * dim;
        y[k] = w[static_cast<std::size_t>(ids[i]) * dim + j];
    }
};

/// dw[r, j] = sum of g[pos, j] over the positions of row r: pos[start[r] .. start[r + 1]).
template <class T>
struct embedding_row_sums {
    const std::int64_t* start;  // {rows + 1}
    const std::int64_t* pos;    // positions sorted by their index
    const T* g;
    T* dw;
    std::size_t dim;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t r = static_cast<std::size_t>(k) / dim, j = static_cast<std::size_t>(k) - r * dim;
        T acc = 0;
        for (std::int64_t q = start[r]; q < start[r + 1]; ++q) acc += g[static_cast<std::size_t>(pos[q]) * dim + j];
        dw[k] = acc;
    }
};

/// y[b, j] = c_b sum over k in bag b of (psw ? psw[k] : 1) w[ids[k], j]   (c_b = 1 / n_b for mean)
template <class T>
struct bag_forward {
    const std::int64_t* ids;
    const std::int64_t* off;
    const T* w;
    const T* psw;
    T* y;
    std::size_t dim, bags, n;
    bool mean;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t b = static_cast<std::size_t>(k) / dim, j = static_cast<std::size_t>(k) - b * dim;
        const std::size_t s = static_cast<std::size_t>(off[b]), e = b + 1 < bags ? static_cast<std::size_t>(off[b + 1]) : n;
        T acc = 0;
        for (std::size_t q = s; q < e; ++q) acc += (psw ? psw[q] : T(1)) * w[static_cast<std::size_t>(ids[q]) * dim + j];
        if (mean && e > s) acc /= static_cast<T>(e - s);
        y[k] = acc;
    }
};

/// The bag of position k (from upper_bound over the offsets, minus one) and its coefficient.
template <class T>
struct bag_coefficient {
    const std::int64_t* off;
    std::int64_t* bag;  // in: upper_bound result; out: the bag
    const T* psw;
    T* coef;
    std::size_t bags, n;
    bool mean;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t b = static_cast<std::size_t>(bag[k]) - 1;
        bag[k] = static_cast<std::int64_t>(b);
        const std::size_t s = static_cast<std::size_t>(off[b]), e = b + 1 < bags ? static_cast<std::size_t>(off[b + 1]) : n;
        coef[k] = psw ? psw[k] : (mean ? T(1) / static_cast<T>(e - s) : T(1));
    }
};

/// dw[r, j] = sum over the positions q of row r of coef[q] g[bag[q], j].
template <class T>
struct bag_row_sums {
    const std::int64_t* start;
    const std::int64_t* pos;
    const std::int64_t* bag;
    const T* coef;
    const T* g;
    T* dw;
    std::size_t dim;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const std::size_t r = static_cast<std::size_t>(k) / dim, j = static_cast<std::size_t>(k) - r * dim;
        T acc = 0;
        for (std::int64_t q = start[r]; q < start[r + 1]; ++q) {
            const auto p = static_cast<std::size_t>(pos[q]);
            acc += coef[p] * g[static_cast<std::size_t>(bag[p]) * dim + j];
        }
        dw[k] = acc;
    }
};

/// dpsw[k] = dot(g[bag[k], :], w[ids[k], :]).
template <class T>
struct bag_weight_grad {
    const std::int64_t* ids;
    const std::int64_t* bag;
    const T* g;
    const T* w;
    T* dp;
    std::size_t dim;
    XGRAD_HD void operator()(std::ptrdiff_t k) const {
        const T* gr = g + static_cast<std::size_t>(bag[k]) * dim;
        const T* wr = w + static_cast<std::size_t>(ids[k]) * dim;
        T acc = 0;
        for (std::size_t j = 0; j < dim; ++j) acc += gr[j] * wr[j];
        dp[k] = acc;
    }
};

/// The i-th output of splitmix64 seeded with `seed`.
XGRAD_HD inline std::uint64_t counter_hash(std::uint64_t seed, std::uint64_t i) {
    std::uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// mask[i] = 0 where the hash's top 53 bits, as u in [0, 1), are below p; else keep.
template <class T>
struct dropout_fill {
    T* mask;
    std::uint64_t seed;
    std::uint64_t threshold;  // ceil(p 2^53): u < p  <=>  (hash >> 11) < threshold
    T keep;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        mask[i] = (counter_hash(seed, static_cast<std::uint64_t>(i)) >> 11) < threshold ? T(0) : keep;
    }
};

/// out[k] = dropout_apply(x[k], mask[k]); out may be x.
template <class T>
struct dropout_apply_kernel {
    const T* x;
    const T* mask;
    T* out;
    XGRAD_HD void operator()(std::ptrdiff_t k) const { out[k] = dropout_apply(x[k], mask[k]); }
};

}  // namespace thrust_backend

template <class T, thrust_device D>
struct device_kernels<embedding_impl<T, D>, D> {
    static constexpr bool available = true;
    using op = embedding_impl<T, D>;

    static void check(const op& o, std::size_t rows) {
        const std::ptrdiff_t bad = thrust_backend::first_bad_label<D>(o.indices.data(), o.indices.size(), rows, false, 0);
        if (bad < static_cast<std::ptrdiff_t>(o.indices.size()))
            throw value_error(
                o.index_error(thrust_backend::read_element<D>(o.indices.data() + bad), static_cast<std::size_t>(bad), rows));
    }

    static tensor<T, D> forward(const op& o, const tensor<T, D>& w) {
        check(o, w.shape()[0]);  // the indices tensor may have changed since the op was built
        const std::size_t dim = w.shape()[1];
        shape_t s = o.indices.shape();
        s.push_back(dim);
        auto y = tensor<T, D>::uninitialized(s);
        thrust_backend::for_each_index<D>(y.size(), thrust_backend::embedding_gather<T>{o.indices.data(), w.data(), y.data(), dim});
        return y;
    }

    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 1>& in,
                         std::array<tensor<T, D>*, 1> grad) {
        if (!grad[0]) return;
        const std::size_t rows = in[0].shape()[0], dim = in[0].shape()[1], n = o.indices.size();
        auto policy = thrust_backend::system<D>::policy();
        auto keys = o.indices.clone();
        auto pos = tensor<std::int64_t, D>::uninitialized({n});
        auto start = tensor<std::int64_t, D>::uninitialized({rows + 1});
        if (n > 0) {
            thrust::sequence(policy, pos.data(), pos.data() + n);
            thrust::stable_sort_by_key(policy, keys.data(), keys.data() + n, pos.data());
        }
        thrust::lower_bound(policy, keys.data(), keys.data() + n, thrust::counting_iterator<std::int64_t>(0),
                            thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(rows + 1)), start.data());
        thrust_backend::for_each_index<D>(
            rows * dim, thrust_backend::embedding_row_sums<T>{start.data(), pos.data(), g.data(), grad[0]->data(), dim});
    }
};

template <class T, thrust_device D, bool Weighted>
struct device_kernels<embedding_bag_impl<T, D, Weighted>, D> {
    static constexpr bool available = true;
    using op = embedding_bag_impl<T, D, Weighted>;

    static void check(const op& o, std::size_t rows) {
        std::vector<std::int64_t> off(o.bags());
        if (!off.empty()) thrust_backend::system<D>::copy_out(o.offsets.data(), off.data(), off.size());
        check_bag_offsets(off.data(), off.size(), o.indices.size());
        const std::ptrdiff_t bad = thrust_backend::first_bad_label<D>(o.indices.data(), o.indices.size(), rows, false, 0);
        if (bad < static_cast<std::ptrdiff_t>(o.indices.size()))
            throw value_error(
                o.index_error(thrust_backend::read_element<D>(o.indices.data() + bad), static_cast<std::size_t>(bad), rows));
    }

    static tensor<T, D> forward(const op& o, const tensor<T, D>& w)
        requires(!Weighted)
    {
        return run(o, w, nullptr);
    }
    static tensor<T, D> forward(const op& o, const tensor<T, D>& w, const tensor<T, D>& psw)
        requires Weighted
    {
        return run(o, w, psw.data());
    }

    static tensor<T, D> run(const op& o, const tensor<T, D>& w, const T* psw) {
        check(o, w.shape()[0]);  // the index tensors may have changed since the op was built
        const std::size_t dim = w.shape()[1];
        auto y = tensor<T, D>::uninitialized({o.bags(), dim});
        thrust_backend::for_each_index<D>(
            y.size(), thrust_backend::bag_forward<T>{o.indices.data(), o.offsets.data(), w.data(), psw, y.data(), dim,
                                                     o.bags(), o.indices.size(), o.mode == bag_mode::mean});
        return y;
    }

    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&,
                         const std::array<tensor<T, D>, op::inputs>& in, std::array<tensor<T, D>*, op::inputs> grad) {
        const std::size_t rows = in[0].shape()[0], dim = in[0].shape()[1], n = o.indices.size();
        auto policy = thrust_backend::system<D>::policy();
        const T* psw = nullptr;
        if constexpr (Weighted) psw = in[1].data();
        auto bag = tensor<std::int64_t, D>::uninitialized({n});
        if (n > 0)
            thrust::upper_bound(policy, o.offsets.data(), o.offsets.data() + o.bags(),
                                thrust::counting_iterator<std::int64_t>(0),
                                thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(n)), bag.data());
        auto coef = tensor<T, D>::uninitialized({n});
        thrust_backend::for_each_index<D>(
            n, thrust_backend::bag_coefficient<T>{o.offsets.data(), bag.data(), psw, coef.data(), o.bags(), n,
                                                  o.mode == bag_mode::mean});
        if (grad[0]) {
            auto keys = o.indices.clone();
            auto pos = tensor<std::int64_t, D>::uninitialized({n});
            auto start = tensor<std::int64_t, D>::uninitialized({rows + 1});
            if (n > 0) {
                thrust::sequence(policy, pos.data(), pos.data() + n);
                thrust::stable_sort_by_key(policy, keys.data(), keys.data() + n, pos.data());
            }
            thrust::lower_bound(policy, keys.data(), keys.data() + n, thrust::counting_iterator<std::int64_t>(0),
                                thrust::counting_iterator<std::int64_t>(static_cast<std::int64_t>(rows + 1)),
                                start.data());
            thrust_backend::for_each_index<D>(
                rows * dim, thrust_backend::bag_row_sums<T>{start.data(), pos.data(), bag.data(), coef.data(), g.data(),
                                                            grad[0]->data(), dim});
        }
        if constexpr (Weighted) {
            if (grad[1])
                thrust_backend::for_each_index<D>(
                    n, thrust_backend::bag_weight_grad<T>{o.indices.data(), bag.data(), g.data(), in[0].data(),
                                                          grad[1]->data(), dim});
        }
    }
};

template <class T, thrust_device D>
struct device_kernels<barrier_dropout_impl<T, D>, D> {
    static constexpr bool available = true;
    using op = barrier_dropout_impl<T, D>;

    static tensor<T, D> forward(const op& o, const tensor<T, D>& x) {
        if (o.mask.size() == 0) return x;
        auto y = tensor<T, D>::uninitialized(x.shape());
        thrust_backend::for_each_index<D>(y.size(), thrust_backend::dropout_apply_kernel<T>{x.data(), o.mask.data(), y.data()});
        return y;
    }
    static void backward(const op& o, const tensor<T, D>& g, const tensor<T, D>&, const std::array<tensor<T, D>, 1>&,
                         std::array<tensor<T, D>*, 1> dx) {
        if (!dx[0]) return;
        if (o.mask.size() == 0) {
            *dx[0] = g;  // shares g's storage: dx = g
            return;
        }
        thrust_backend::for_each_index<D>(g.size(),
                                          thrust_backend::dropout_apply_kernel<T>{g.data(), o.mask.data(), dx[0]->data()});
    }
};

template <class T, thrust_device D>
struct device_kernels<dropout_mask<T>, D> {
    static constexpr bool available = true;
    static tensor<T, D> make(const dropout_mask<T>& m, const shape_t& s) {
        auto mask = tensor<T, D>::uninitialized(s);
        const auto threshold = static_cast<std::uint64_t>(std::ceil(m.p * 0x1.0p53));
        thrust_backend::for_each_index<D>(
            mask.size(), thrust_backend::dropout_fill<T>{mask.data(), m.seed, threshold, static_cast<T>(1.0 / (1.0 - m.p))});
        return mask;
    }
};

}  // namespace xgrad::detail
