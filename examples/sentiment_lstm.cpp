// Sentiment of Rotten Tomatoes review snippets (fresh / rotten) with an embedding, a
// bidirectional LSTM over the padded batch (lengths, so padding changes nothing) and a linear
// classifier on the two final hidden states. Prints per epoch the training loss, samples/s and
// validation accuracy, then the test accuracy of the epoch with the best validation accuracy.
//
//   scripts/fetch_data.sh rotten_tomatoes        # once: the corpus into ~/.cache/xgrad
//   ./build/examples/sentiment_lstm [--epochs 8] [--threads 2] [--data FILE.csv.bz2]
//
// Split (fixed seed): 80% train (of which 10% validation), 20% test. Vocabulary: training
// tokens seen at least twice. Batches are bucketed by length (sorted within chunks of 20
// batches) and cut to their longest text.
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
    nn::lstm<float> rnn;
    nn::dropout drop;
    nn::linear<float> fc;
    model(std::size_t vocab, std::size_t dim, std::size_t hidden)
        : emb(vocab, dim), rnn(dim, hidden, {.bidirectional = true, .batch_first = true}), drop(0.5),
          fc(2 * hidden, 2) {}
    /// ids {B, L} -> logits {B, 2}
    auto forward(const tensor<std::int64_t>& ids, const tensor<std::int64_t>& lengths) {
        auto out = rnn.forward(drop(emb(ids)), lengths);
        // h_n {2, B, H} -> {B, 2H}: forward and backward final states side by side
        auto h = xgrad::reshape(xgrad::transpose(out.h_n, 0, 1), {static_cast<std::ptrdiff_t>(ids.shape()[0]), -1});
        return fc(drop(h));
    }
    XGRAD_MODULE(emb, rnn, drop, fc)
};

/// Rows `idx` of ids {N, L}, cut to their longest text, and their lengths and labels.
struct batch {
    tensor<std::int64_t> ids, lengths, labels;
};
batch make_batch(const text::text_dataset& ds, const std::vector<std::size_t>& idx) {
    const std::size_t L = ds.max_len();
    auto ids = tensor<std::int64_t>::uninitialized({idx.size(), L});
    auto labels = tensor<std::int64_t>::uninitialized({idx.size()});
    for (std::size_t i = 0; i < idx.size(); ++i) {
        std::copy_n(ds.ids().data() + idx[i] * L, L, ids.data() + i * L);
        labels.data()[i] = ds.labels()[idx[i]];
    }
    auto cut = text::trim_padding(ids);
    return {cut, text::lengths(cut), labels};
}

double accuracy(model& m, const text::text_dataset& ds, const std::vector<std::size_t>& rows) {
    m.eval();
    std::size_t right = 0;
    for (std::size_t b = 0; b < rows.size(); b += 256) {
        std::vector<std::size_t> idx(rows.begin() + b, rows.begin() + std::min(rows.size(), b + 256));
        const auto bt = make_batch(ds, idx);
        const auto logits = xgrad::eval(m.forward(bt.ids, bt.lengths));
        for (std::size_t i = 0; i < idx.size(); ++i)
            right += (logits(i, 1) > logits(i, 0) ? 1 : 0) == bt.labels.data()[i];
    }
    m.train();
    return static_cast<double>(right) / static_cast<double>(rows.size());
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t epochs = 8, threads = 2;
    std::string path = std::string(std::getenv("HOME") ? std::getenv("HOME") : ".") +
                       "/.cache/xgrad/rotten_tomatoes_corpus_full.csv.bz2";
    if (const char* d = std::getenv("XGRAD_DATA_DIR")) path = std::string(d) + "/rotten_tomatoes_corpus_full.csv.bz2";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--epochs") epochs = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--threads") threads = std::strtoul(argv[i + 1], nullptr, 10);
        else if (a == "--data") path = argv[i + 1];
    }
    xgrad::set_num_threads(threads);
    nn::manual_seed(1);

    text::text_csv_options opt;
    opt.text_column = std::string("text");
    opt.label_column = std::string("category");
    opt.classes = {"rotten", "fresh"};
    opt.skip_other_labels = true;
    text::text_table table;
    try {
        table = text::read_text_csv(path, opt);
    } catch (const xgrad::error& e) {
        std::fprintf(stderr, "%s\nfetch the corpus first: scripts/fetch_data.sh rotten_tomatoes\n", e.what());
        return 1;
    }
    const std::size_t N = table.texts.size();
    std::vector<std::size_t> order(N);
    std::iota(order.begin(), order.end(), 0);
    xgrad::rng gen(20261204);
    for (std::size_t i = N; i > 1; --i) std::swap(order[i - 1], order[gen() % i]);
    const std::size_t n_test = N / 5, n_val = (N - n_test) / 10;
    std::vector<std::size_t> test(order.begin(), order.begin() + n_test),
        val(order.begin() + n_test, order.begin() + n_test + n_val), train(order.begin() + n_test + n_val, order.end());

    text::tokenizer tok;
    std::vector<std::vector<std::string>> train_tokens;
    for (auto i : train) train_tokens.push_back(tok.tokenize(table.texts[i]));
    const auto vocab = text::vocabulary::build(train_tokens, {.min_count = 2});
    const text::text_dataset ds(table.texts, table.labels, vocab, 64, tok);
    std::printf("Rotten Tomatoes: %zu snippets (%zu skipped rows), train %zu, validation %zu, test %zu; vocabulary %zu\n",
                N, table.skipped, train.size(), val.size(), test.size(), vocab.size());

    model m(vocab.size(), 128, 128);
    xgrad::optim::adam<float> opt_adam(m.parameters(), {.lr = 2e-3});
    const std::size_t bs = 64;
    double best_val = -1, test_at_best = 0;
    std::size_t best_epoch = 0;
    double total_samples = 0, total_s = 0;
    for (std::size_t ep = 1; ep <= epochs; ++ep) {
        // bucketing: shuffle, sort chunks of 20 batches by length, shuffle the batches
        for (std::size_t i = train.size(); i > 1; --i) std::swap(train[i - 1], train[gen() % i]);
        for (std::size_t c = 0; c < train.size(); c += 20 * bs) {
            auto e = train.begin() + static_cast<std::ptrdiff_t>(std::min(train.size(), c + 20 * bs));
            std::sort(train.begin() + static_cast<std::ptrdiff_t>(c), e,
                      [&](std::size_t a, std::size_t b) { return ds.length(a) < ds.length(b); });
        }
        std::vector<std::size_t> starts;
        for (std::size_t b = 0; b < train.size(); b += bs) starts.push_back(b);
        for (std::size_t i = starts.size(); i > 1; --i) std::swap(starts[i - 1], starts[gen() % i]);
        double loss_sum = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (auto b : starts) {
            std::vector<std::size_t> idx(train.begin() + static_cast<std::ptrdiff_t>(b),
                                         train.begin() + static_cast<std::ptrdiff_t>(std::min(train.size(), b + bs)));
            const auto bt = make_batch(ds, idx);
            opt_adam.zero_grad();
            loss_sum += xgrad::backward(xgrad::cross_entropy(m.forward(bt.ids, bt.lengths), bt.labels)) * idx.size();
            xgrad::optim::clip_grad_norm_(m.parameters(), 5.0);
            opt_adam.step();
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        total_samples += static_cast<double>(train.size());
        total_s += s;
        const double va = accuracy(m, ds, val), te = accuracy(m, ds, test);
        if (va > best_val) {
            best_val = va;
            test_at_best = te;
            best_epoch = ep;
        }
        std::printf("epoch %zu: loss %.4f, %.0f samples/s, validation accuracy %.4f\n", ep,
                    loss_sum / static_cast<double>(train.size()), static_cast<double>(train.size()) / s, va);
        std::fflush(stdout);
    }
    std::printf("test accuracy %.4f (epoch %zu, best validation %.4f); training %.0f samples/s on %zu threads\n",
                test_at_best, best_epoch, best_val, total_samples / total_s, threads);
    return test_at_best >= 0.74 ? 0 : 3;
}
