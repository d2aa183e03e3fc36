#pragma once
// embedding and dropout's mask on the Thrust devices.
//   embedding forward: one position per output element (a gather). Backward: the positions
//     are sorted by index (stable, so each row keeps them in order), then one position per
//     element of the weight gradient sums its row's upstream rows in that order: no atomics,
//     and the same sums, in the same order, as the CPU's serial scatter-add.
//   dropout: element i of the mask is kept when a counter-based hash of (seed, i) (the i-th
//     output of splitmix64 started at the seed) falls at or above p; the seed is drawn from
//     the caller's generator, so every element is independent of the launch's shape.
#include <cmath>

#include <thrust/binary_search.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>

#include "../../ops/dropout.hpp"
#include "../../ops/embedding.hpp"
#include "ops_common.hpp"

namespace xgrad::detail {

namespace thrust_backend {

template <class T>
struct embedding_gather {
    const std::int64_t* ids;
    const T* w;
    T* y;
    std::size_t dim;
    XGRAD_HOST_DEVICE void operator()(std::ptrdiff_t k) const {
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
    XGRAD_HOST_DEVICE void operator()(std::ptrdiff_t k) const {
        const std::size_t r = static_cast<std::size_t>(k) / dim, j = static_cast<std::size_t>(k) - r * dim;
        T acc = 0;
        for (std::int64_t q = start[r]; q < start[r + 1]; ++q) acc += g[static_cast<std::size_t>(pos[q]) * dim + j];
        dw[k] = acc;
    }
};

/// The i-th output of splitmix64 seeded with `seed`.
XGRAD_HOST_DEVICE inline std::uint64_t counter_hash(std::uint64_t seed, std::uint64_t i) {
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
    XGRAD_HOST_DEVICE void operator()(std::ptrdiff_t i) const {
        mask[i] = (counter_hash(seed, static_cast<std::uint64_t>(i)) >> 11) < threshold ? T(0) : keep;
    }
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
