// A 2-layer transformer encoder classifier on Reuters-21578 Grain (or Corn): is this news
// story about grain? About 6% of the stories are, so the loss weighs each class by
// N / (2 N_class) and the figure reported is the F1 score of the rare class on the test split.
//
//   scripts/fetch_data.sh reuters            # the ARFF files into ~/.cache/xgrad
//   build/examples/news_transformer [--data-dir DIR] [--set grain|corn] [--epochs 6]
//                                   [--max-len 128] [--threads 2]
//
// Model: token embedding (d 64) * sqrt(d) + sinusoidal positions -> 2 x transformer encoder
// layer (4 heads, feed-forward 128, post-norm, dropout 0.1, key padding mask) -> mean over
// the real tokens -> linear(64, 2). Adam, lr 1e-3, batches of 32 cut to their longest story.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include <xgrad/nn/attention.hpp>
#include <xgrad/text.hpp>
#include <xgrad/xgrad.hpp>

using namespace xgrad;

namespace {

struct text_split {
    std::vector<std::vector<std::int64_t>> ids;  // token ids, truncated to max_len, at least 1
    std::vector<std::int64_t> labels;
};

struct model : nn::module<model> {
    static constexpr std::size_t d = 64;
    nn::embedding<float> embed;
    nn::sinusoidal_positional_encoding<float> pos;
    nn::transformer_encoder_layer<float> layer0, layer1;
    nn::linear<float> head;

    model(std::size_t vocab, std::size_t max_len)
        : embed(vocab, d),
          pos(max_len, d),
          layer0(d, 4, {.dim_feedforward = 128, .dropout = 0.1}),
          layer1(d, 4, {.dim_feedforward = 128, .dropout = 0.1}),
          head(d, 2) {}

    /// Logits {B, 2} of token ids {B, S}; `pool` {B, S, 1} holds 1/length on real tokens, 0 on padding.
    auto forward(const tensor<std::int64_t>& ids, const tensor<float>& pool, const attention_mask& mask) {
        auto x = pos(embed.forward(ids) * std::sqrt(static_cast<float>(d)));
        auto h = layer1.forward(layer0.forward(std::move(x), mask), mask);
        return head(sum(std::move(h) * pool, {1}));
    }
    XGRAD_MODULE(embed, pos, layer0, layer1, head)
};

/// Token ids {B, S}, the padding mask {B, S} (1 = padding) and the pooling weights of the rows
/// `rows` of `s`, S the longest of them.
struct batch {
    tensor<std::int64_t> ids, labels;
    tensor<float> pool;
    attention_mask mask;
};
batch make_batch(const text_split& s, const std::vector<std::size_t>& order, std::size_t from, std::size_t to) {
    const std::size_t B = to - from;
    std::size_t S = 0;
    for (std::size_t i = from; i < to; ++i) S = std::max(S, s.ids[order[i]].size());
    batch b{zeros<std::int64_t>({B, S}), zeros<std::int64_t>({B}), zeros<float>({B, S, 1}), {}};
    auto pad = tensor<std::uint8_t>::uninitialized({B, S});
    for (std::size_t r = 0; r < B; ++r) {
        const auto& t = s.ids[order[from + r]];
        for (std::size_t j = 0; j < S; ++j) {
            const bool real = j < t.size();
            b.ids.data()[r * S + j] = real ? t[j] : 0;
            pad.data()[r * S + j] = real ? 0 : 1;
            b.pool.data()[r * S + j] = real ? 1.0f / static_cast<float>(t.size()) : 0.0f;
        }
        b.labels.data()[r] = s.labels[order[from + r]];
    }
    b.mask = attention_mask::key_padding(pad);
    return b;
}

}  // namespace

int main(int argc, char** argv) {
    std::string dir, set = "grain";
    std::size_t epochs = 6, max_len = 128, threads = 2;
    if (const char* e = std::getenv("XGRAD_DATA_DIR")) dir = e;
    else if (const char* h = std::getenv("HOME")) dir = std::string(h) + "/.cache/xgrad";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--data-dir") dir = v;
        else if (a == "--set") set = v;
        else if (a == "--epochs") epochs = std::stoul(v);
        else if (a == "--max-len") max_len = std::stoul(v);
        else if (a == "--threads") threads = std::stoul(v);
        else {
            std::fprintf(stderr, "unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (set != "grain" && set != "corn") {
        std::fprintf(stderr, "--set must be grain or corn\n");
        return 2;
    }
    set_num_threads(threads);
    const std::string stem = std::string("Reuters") + (set == "grain" ? "Grain" : "Corn");
    std::filesystem::path train_path = std::filesystem::path(dir) / (stem + "-train.arff");
    if (!std::filesystem::exists(train_path)) {
        std::fprintf(stderr, "%s not found: run scripts/fetch_data.sh reuters (or pass --data-dir)\n", train_path.c_str());
        return 1;
    }
    const auto train_t = io::read_arff(train_path);
    const auto test_t = io::read_arff(std::filesystem::path(dir) / (stem + "-test.arff"));

    // tokens -> vocabulary (words seen at least twice in training) -> ids
    text::tokenizer tok;
    std::vector<std::vector<std::string>> train_tokens, test_tokens;
    for (const auto& s : train_t.strings("Text")) train_tokens.push_back(tok(s));
    for (const auto& s : test_t.strings("Text")) test_tokens.push_back(tok(s));
    const auto vocab = text::vocabulary::build(train_tokens, {.min_count = 2});
    auto encode = [&](const std::vector<std::vector<std::string>>& docs, const std::vector<std::int64_t>& labels) {
        text_split s{{}, labels};
        for (const auto& d : docs) {
            auto ids = vocab.encode(d);
            if (ids.size() > max_len) ids.resize(max_len);
            if (ids.empty()) ids.push_back(vocab.id("<unk>"));
            s.ids.push_back(std::move(ids));
        }
        return s;
    };
    const text_split train = encode(train_tokens, train_t.labels("class-att"));
    const text_split test = encode(test_tokens, test_t.labels("class-att"));
    const std::size_t pos_train = static_cast<std::size_t>(std::count(train.labels.begin(), train.labels.end(), 1));
    std::printf("%s: %zu training stories (%zu positive), %zu test, vocabulary %zu, max_len %zu, %zu thread(s)\n",
                stem.c_str(), train.labels.size(), pos_train, test.labels.size(), vocab.size(), max_len, threads);

    nn::manual_seed(0);
    model m(vocab.size(), max_len);
    optim::adam<float> opt(m.parameters(), {.lr = 1e-3});
    const double n = static_cast<double>(train.labels.size());
    const auto weights = from_vector<float>({static_cast<float>(n / (2.0 * (n - pos_train))),
                                             static_cast<float>(n / (2.0 * pos_train))}, {2});

    auto evaluate = [&](const text_split& s) {
        m.eval();
        std::vector<std::size_t> order(s.labels.size());
        std::iota(order.begin(), order.end(), 0);
        std::size_t tp = 0, fp = 0, fn = 0, correct = 0;
        for (std::size_t i = 0; i < order.size(); i += 64) {
            const auto b = make_batch(s, order, i, std::min(order.size(), i + 64));
            const auto logits = eval(m.forward(b.ids, b.pool, b.mask)).to_vector();
            for (std::size_t r = 0; r < b.labels.size(); ++r) {
                const std::int64_t p = logits[2 * r + 1] > logits[2 * r] ? 1 : 0, y = b.labels.data()[r];
                correct += p == y;
                tp += p == 1 && y == 1;
                fp += p == 1 && y == 0;
                fn += p == 0 && y == 1;
            }
        }
        m.train();
        const double prec = tp + fp ? double(tp) / double(tp + fp) : 0, rec = tp + fn ? double(tp) / double(tp + fn) : 0;
        return std::array<double, 4>{prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0, prec, rec,
                                     double(correct) / double(s.labels.size())};
    };

    rng shuffle(1);
    std::vector<std::size_t> order(train.labels.size());
    std::iota(order.begin(), order.end(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t epoch = 0; epoch < epochs; ++epoch) {
        for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle() % i]);
        double loss_sum = 0;
        std::size_t steps = 0;
        const auto e0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < order.size(); i += 32) {
            const auto b = make_batch(train, order, i, std::min(order.size(), i + 32));
            opt.zero_grad();
            loss_sum += backward(cross_entropy(m.forward(b.ids, b.pool, b.mask), b.labels, {.weight = weights}));
            opt.step();
            ++steps;
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();
        const auto r = evaluate(test);
        std::printf("epoch %zu: loss %.4f, %.1f s (%.0f samples/s); test F1(%s) %.3f (precision %.3f, recall %.3f), accuracy %.3f\n",
                    epoch + 1, loss_sum / double(steps), secs, n / secs, set.c_str(), r[0], r[1], r[2], r[3]);
        std::fflush(stdout);
    }
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto r = evaluate(test);
    std::printf("final: test F1 of the rare class (%s) %.3f, accuracy %.3f; training %.1f s\n", set.c_str(), r[0], r[3], total);
    return 0;
}
