#pragma once
// EmbeddingBag layer, as torch.nn.EmbeddingBag: per bag, the sum or mean of weight rows picked
// by integer indices (see ops/embedding_bag.hpp for bags, offsets and gradients), without
// materializing the rows. PyTorch's default initialisation: weight ~ N(0, 1), drawn on the
// host and copied to Device; the index tensors live on Device too.
#include <cstdint>
#include <string>

#include "../core/transfer.hpp"
#include "../ops/embedding_bag.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

template <class T = float, class Device = device::cpu>
class embedding_bag : public module<embedding_bag<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::embedding_bag<T>: T must be float or double");

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "embedding_bag";

    parameter<T, Device> weight;
    bag_mode mode;

    embedding_bag(std::size_t num_embeddings, std::size_t embedding_dim, bag_mode m = bag_mode::mean,
                  rng& gen = default_generator())
        : mode(m) {
        if (num_embeddings == 0 || embedding_dim == 0)
            throw value_error("embedding_bag: num_embeddings and embedding_dim must be > 0, got " +
                              std::to_string(num_embeddings) + " and " + std::to_string(embedding_dim));
        auto w = xgrad::param(tensor<T>::uninitialized({num_embeddings, embedding_dim}));
        init::normal(w, gen);
        weight = xgrad::to<Device>(w);
    }

    template <class From>
    explicit embedding_bag(const embedding_bag<T, From>& o) : weight(xgrad::to<Device>(o.weight)), mode(o.mode) {
        this->set_training(o.is_training());
    }

    std::size_t num_embeddings() const { return weight.shape()[0]; }
    std::size_t embedding_dim() const { return weight.shape()[1]; }

    /// Bags given by offsets into 1-D indices: {B, dim}.
    auto forward(const tensor<std::int64_t, Device>& indices, const tensor<std::int64_t, Device>& offsets) {
        return xgrad::embedding_bag(indices, offsets, weight, mode);
    }
    /// Each row of indices {B, L} is a bag: {B, dim}.
    auto forward(const tensor<std::int64_t, Device>& indices) { return xgrad::embedding_bag(indices, weight, mode); }
    /// Weighted bags (mode sum only): value_error otherwise.
    template <operand P>
    auto forward(const tensor<std::int64_t, Device>& indices, const tensor<std::int64_t, Device>& offsets,
                 P&& per_sample_weights) {
        return xgrad::embedding_bag(indices, offsets, weight, std::forward<P>(per_sample_weights), mode);
    }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
    }
};

}  // namespace xgrad::nn
