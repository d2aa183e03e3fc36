// A user-defined layer: a residual MLP block y = x + fc2(gelu(fc1(x))). One line,
// XGRAD_MODULE(fc1, fc2), makes it a layer like the built-in ones: it nests in sequential,
// its parameters get dotted names ("1.fc1.weight"), optimizers take them, summary() lists it,
// train()/eval() and freezing reach inside it. Its forward returns an expression, so the
// residual add fuses with whatever comes next.
#include <cstdio>

#include <xgrad/nn.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;

struct residual_block : nn::module<residual_block> {  // the base adds operator(), train(), named_parameters() ...
    nn::linear<float> fc1, fc2;

    residual_block(std::size_t dim, std::size_t hidden) : fc1(dim, hidden), fc2(hidden, dim) {}

    template <class X>
    auto forward(X&& x) {
        return x + fc2(xgrad::gelu(fc1(x)));  // gelu fuses into fc1's GEMM epilogue
    }

    XGRAD_MODULE(fc1, fc2)
};

int main() {
    nn::manual_seed(0);
    auto model = nn::sequential(nn::linear(8, 16), residual_block(16, 32), nn::relu(), nn::linear(16, 3));

    for (auto& [name, p] : model.named_parameters()) std::printf("%-16s %zu values\n", name.c_str(), p.size());
    nn::summary(model, {8});

    // fit a fixed random batch: the loss must fall
    xgrad::rng gen(1);
    auto x = xgrad::randn<float>({32, 8}, gen);
    auto y = xgrad::uniform<std::int64_t>({32}, gen, 0, 3);
    auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-2f});
    float first = 0, last = 0;
    for (int step = 0; step < 50; ++step) {
        opt.zero_grad();
        const float loss = xgrad::backward(xgrad::cross_entropy(model(x), y));
        opt.step();
        if (step == 0) first = loss;
        last = loss;
    }
    std::printf("cross-entropy %.4f -> %.4f after 50 Adam steps\n", first, last);
    return last < 0.5f * first ? 0 : 1;
}
