// Customer-service intent classification on the synthetic intent set (text::synthetic_intents:
// 10 intents written from templates; the test part uses a phrasing per intent that training
// never sees) with an embedding, a GRU over the padded batch (lengths) and a linear layer on
// the final hidden state. Prints the test accuracy and the confusion matrix.
//
//   ./build/examples/intent_gru [--epochs 4] [--threads 2]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include <xgrad/text.hpp>
#include <xgrad/xgrad.hpp>

namespace nn = xgrad::nn;
namespace text = xgrad::text;
using xgrad::tensor;

namespace {

struct model : nn::module<model> {
    nn::embedding<float> emb;
    nn::gru<float> rnn;
    nn::dropout drop;
    nn::linear<float> fc;
    model(std::size_t vocab, std::size_t classes)
        : emb(vocab, 64), rnn(64, 96, {.batch_first = true}), drop(0.4), fc(96, classes) {}
    auto forward(const tensor<std::int64_t>& ids, const tensor<std::int64_t>& lengths) {
        auto out = rnn.forward(drop(emb(ids)), lengths);
        return fc(drop(xgrad::reshape(out.h_n, {static_cast<std::ptrdiff_t>(ids.shape()[0]), -1})));  // {1, B, H} -> {B, H}
    }
    XGRAD_MODULE(emb, rnn, drop, fc)
};

struct batch {
    tensor<std::int64_t> ids, lengths, labels;
};
batch rows(const text::text_dataset& ds, std::size_t b, std::size_t e, const std::vector<std::size_t>& order) {
    const std::size_t L = ds.max_len();
    auto ids = tensor<std::int64_t>::uninitialized({e - b, L});
    auto labels = tensor<std::int64_t>::uninitialized({e - b});
    for (std::size_t i = b; i < e; ++i) {
        std::copy_n(ds.ids().data() + order[i] * L, L, ids.data() + (i - b) * L);
        labels.data()[i - b] = ds.labels()[order[i]];
    }
    auto cut = text::trim_padding(ids);
    return {cut, text::lengths(cut), labels};
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t epochs = 4, threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--epochs") epochs = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--threads") threads = std::strtoul(argv[i + 1], nullptr, 10);
    }
    xgrad::set_num_threads(threads);
    nn::manual_seed(3);
    const auto train_set = text::synthetic_intents(300, text::intent_part::train, 1);
    const auto test_set = text::synthetic_intents(100, text::intent_part::test, 1);
    text::tokenizer tok;
    std::vector<std::vector<std::string>> docs;
    for (const auto& t : train_set.texts) docs.push_back(tok.tokenize(t));
    const auto vocab = text::vocabulary::build(docs);
    const text::text_dataset train(train_set.texts, train_set.labels, vocab, 32, tok),
        test(test_set.texts, test_set.labels, vocab, 32, tok);
    const std::size_t C = train_set.classes.size();
    std::printf("synthetic intents: %zu classes, train %zu, test %zu, vocabulary %zu\n", C, train.size(), test.size(),
                vocab.size());

    model m(vocab.size(), C);
    xgrad::optim::adam<float> opt(m.parameters(), {.lr = 3e-3});
    std::vector<std::size_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    xgrad::rng gen(5);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t ep = 1; ep <= epochs; ++ep) {
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[gen() % i]);
        double loss = 0;
        for (std::size_t b = 0; b < order.size(); b += 32) {
            const auto bt = rows(train, b, std::min(order.size(), b + 32), order);
            opt.zero_grad();
            loss += xgrad::backward(xgrad::cross_entropy(m.forward(bt.ids, bt.lengths), bt.labels)) *
                    static_cast<double>(bt.labels.size());
            opt.step();
        }
        std::printf("epoch %zu: loss %.4f\n", ep, loss / static_cast<double>(order.size()));
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    m.eval();
    xgrad::metrics::confusion_matrix cm(C, test_set.classes);
    std::vector<std::size_t> all(test.size());
    std::iota(all.begin(), all.end(), 0);
    for (std::size_t b = 0; b < all.size(); b += 256) {
        const auto bt = rows(test, b, std::min(all.size(), b + 256), all);
        cm.update(xgrad::eval(m.forward(bt.ids, bt.lengths)), bt.labels);
    }
    std::size_t right = 0;
    for (std::size_t k = 0; k < C; ++k) right += cm(k, k);
    const double acc = static_cast<double>(right) / static_cast<double>(cm.total());
    std::printf("%s\ntest accuracy %.4f (held-out phrasings); training %.0f samples/s on %zu threads\n",
                cm.report().c_str(), acc, static_cast<double>(epochs * train.size()) / s, threads);
    return 0;
}
