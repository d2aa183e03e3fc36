#pragma once
// The distributed sampler is the loader's own: loader_options::num_shards / shard. shard()
// fills them in from the MPI rank and size, so that
//     data::loader(train_set, distributed::shard({.batch_size = 32, .shuffle = true, .seed = 1}))
// gives every rank its disjoint, equally long share of the same per-epoch permutation
// (the order depends on seed and epoch only, never on the rank).
#include "../data/loader.hpp"
#include "environment.hpp"

namespace xgrad::distributed {

/// `o` with num_shards = size() and shard = rank().
inline data::loader_options shard(data::loader_options o) {
    o.num_shards = static_cast<std::size_t>(size());
    o.shard = static_cast<std::size_t>(rank());
    return o;
}

}  // namespace xgrad::distributed
