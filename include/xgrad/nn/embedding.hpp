#pragma once
// Embedding layer, as torch.nn.Embedding: rows of a weight {num_embeddings, dim} picked by
// integer indices of any shape (the result has shape indices.shape() + {dim}); the backward
// scatter-adds into the picked rows. PyTorch's default initialisation: weight ~ N(0, 1).
#include <cstdint>
#include <string>

#include "../ops/nn_functional.hpp"
#include "init.hpp"
#include "module.hpp"

namespace xgrad::nn {

template <class T = float>
class embedding : public module<embedding<T>> {
    static_assert(std::is_floating_point_v<T>, "xgrad::nn::embedding<T>: T must be float or double");

public:
    using value_type = T;
    static constexpr const char* kind = "embedding";

    parameter<T> weight;

    embedding(std::size_t num_embeddings, std::size_t embedding_dim, rng& gen = default_generator())
        : weight(xgrad::param(tensor<T>::uninitialized({num_embeddings, embedding_dim}))) {
        if (num_embeddings == 0 || embedding_dim == 0)
            throw value_error("embedding: num_embeddings and embedding_dim must be > 0, got " +
                              std::to_string(num_embeddings) + " and " + std::to_string(embedding_dim));
        init::normal(weight, gen);
    }

    std::size_t num_embeddings() const { return weight.shape()[0]; }
    std::size_t embedding_dim() const { return weight.shape()[1]; }

    /// Throws value_error for an index outside [0, num_embeddings).
    auto forward(const tensor<std::int64_t>& indices) { return xgrad::embedding(indices, weight); }

    template <class F>
    void for_each_member(F&& f) {
        f("weight", weight);
    }
};

}  // namespace xgrad::nn
