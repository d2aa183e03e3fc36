#pragma once
// Embedding layer, as torch.nn.Embedding: rows of a weight {num_embeddings, dim} picked by
// integer indices of any shape (the result has shape indices.shape() + {dim}); the backward
// scatter-adds into the picked rows. PyTorch's default initialisation: weight ~ N(0, 1), drawn
// on the host and copied to Device; the indices live on Device too.
#include <cstdint>
#include <string>

#include "../core/transfer.hpp"
#include "../ops/nn_functional.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

template <class T = float, class Device = device::cpu>
class embedding : public module<embedding<T, Device>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::embedding<T>: T must be float or double");

public:
    using value_type = T;
    using device_type = Device;
    static constexpr const char* kind = "embedding";

    parameter<T, Device> weight;

    embedding(std::size_t num_embeddings, std::size_t embedding_dim, rng& gen = default_generator()) {
        if (num_embeddings == 0 || embedding_dim == 0)
            throw value_error("embedding: num_embeddings and embedding_dim must be > 0, got " +
                              std::to_string(num_embeddings) + " and " + std::to_string(embedding_dim));
        auto w = xgrad::param(tensor<T>::uninitialized({num_embeddings, embedding_dim}));
        init::normal(w, gen);
        weight = xgrad::to<Device>(w);
    }

    /// The same layer on Device (the weight copied).
    template <class From>
    explicit embedding(const embedding<T, From>& o) : weight(xgrad::to<Device>(o.weight)) {
        this->set_training(o.is_training());
    }

    std::size_t num_embeddings() const { return weight.shape()[0]; }
    std::size_t embedding_dim() const { return weight.shape()[1]; }

    /// Throws value_error for an index outside [0, num_embeddings).
    auto forward(const tensor<std::int64_t, Device>& indices) { return xgrad::embedding(indices, weight); }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
    }
};

}  // namespace xgrad::nn
