#define BOOST_TEST_MODULE rnn
#include <boost/test/unit_test.hpp>

#include <boost/mpl/list.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;

using real_types = boost::mpl::list<float, double>;

namespace {

/// Records of tests/data/rnn_reference.txt (gen_rnn_reference.py).
const std::map<std::string, tensor<double>>& ref_file() {
    static const auto r = xgrad_test::read_reference_file(std::string(XGRAD_TEST_DATA_DIR) + "/rnn_reference.txt");
    return r;
}
tensor<double> rref(const std::string& name) {
    auto it = ref_file().find(name);
    if (it == ref_file().end()) throw std::runtime_error("rnn reference: no record " + name);
    return it->second.clone();
}
bool has_ref(const std::string& name) { return ref_file().count(name) > 0; }

template <class T>
double rtol() {
    return std::is_same_v<T, double> ? 1e-9 : 1e-4;
}
template <class T>
double atol() {
    return std::is_same_v<T, double> ? 1e-11 : 2e-5;
}

template <class T>
void load_into(const parameter<T>& p, const tensor<double>& v) {
    BOOST_TEST_REQUIRE(p.shape() == v.shape(), p.name() << ": shape " << to_string(p.shape()));
    const auto src = v.template astype<T>();
    std::copy_n(src.data(), src.size(), p.value().data());
}

struct layer_case {
    const char* name;
    std::size_t layers;
    bool bidir, batch_first;
};
const layer_case layer_cases[] = {
    {"_1layer", 1, false, false}, {"_2layer_bidir", 2, true, false}, {"_batch_first_lengths", 2, true, true}};

template <class T, rnn_kind K>
void check_layer_case(const std::string& kind, const layer_case& lc) {
    const std::string c = kind + lc.name;
    BOOST_TEST_CONTEXT(c) {
        const auto x0 = rref(c + ".x");
        nn::recurrent<T, K> m(x0.shape()[2], rref(c + ".h0").shape()[2],
                              {.num_layers = lc.layers, .bidirectional = lc.bidir, .batch_first = lc.batch_first});
        for (auto& [n, p] : m.named_parameters()) load_into(p, rref(c + "." + n));
        auto x = param(x0.template astype<T>());
        auto h0 = param(rref(c + ".h0").template astype<T>());
        std::optional<tensor<std::int64_t>> len;
        if (has_ref(c + ".lengths")) len = rref(c + ".lengths").template astype<std::int64_t>();
        const double rt = rtol<T>(), at = atol<T>();
        if constexpr (K == rnn_kind::lstm) {
            auto c0 = param(rref(c + ".c0").template astype<T>());
            auto out = m.forward(x, h0, c0, len);
            check_close(eval(out.output), rref(c + ".y"), rt, at, c + ".y");
            check_close(eval(out.h_n), rref(c + ".h_n"), rt, at, c + ".h_n");
            check_close(eval(out.c_n), rref(c + ".c_n"), rt, at, c + ".c_n");
            backward(out.output, rref(c + ".gy").template astype<T>());
            backward(out.h_n, rref(c + ".gh").template astype<T>());
            backward(out.c_n, rref(c + ".gc").template astype<T>());
            check_close(c0.grad(), rref(c + ".dc0"), rt, at, c + ".dc0");
        } else {
            auto out = m.forward(x, h0, len);
            check_close(eval(out.output), rref(c + ".y"), rt, at, c + ".y");
            check_close(eval(out.h_n), rref(c + ".h_n"), rt, at, c + ".h_n");
            backward(out.output, rref(c + ".gy").template astype<T>());
            backward(out.h_n, rref(c + ".gh").template astype<T>());
        }
        check_close(x.grad(), rref(c + ".dx"), rt, at, c + ".dx");
        check_close(h0.grad(), rref(c + ".dh0"), rt, at, c + ".dh0");
        for (auto& [n, p] : m.named_parameters()) check_close(p.grad(), rref(c + ".d" + n), rt, at, c + ".d" + n);
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE_TEMPLATE(lstm_matches_pytorch, T, real_types) {
    for (const auto& lc : layer_cases) check_layer_case<T, rnn_kind::lstm>("lstm", lc);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(gru_matches_pytorch, T, real_types) {
    for (const auto& lc : layer_cases) check_layer_case<T, rnn_kind::gru>("gru", lc);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(cells_match_pytorch, T, real_types) {
    const double rt = rtol<T>(), at = atol<T>();
    for (const std::string c : {"lstm_cell", "gru_cell"}) {
        auto x = param(rref(c + ".x").template astype<T>());
        auto h = param(rref(c + ".h0").template astype<T>());
        auto w_ih = param(rref(c + ".weight_ih").template astype<T>()), w_hh = param(rref(c + ".weight_hh").template astype<T>());
        auto b_ih = param(rref(c + ".bias_ih").template astype<T>()), b_hh = param(rref(c + ".bias_hh").template astype<T>());
        if (c == "lstm_cell") {
            auto cs = param(rref(c + ".c0").template astype<T>());
            auto s = lstm_cell(x, h, cs, w_ih, w_hh, b_ih, b_hh);
            check_close(eval(s.h), rref(c + ".h_n"), rt, at, c + ".h");
            check_close(eval(s.c), rref(c + ".c_n"), rt, at, c + ".c");
            backward(s.h, rref(c + ".gh").template astype<T>());
            backward(s.c, rref(c + ".gc").template astype<T>());
            check_close(cs.grad(), rref(c + ".dc0"), rt, at, c + ".dc0");
        } else {
            auto hn = gru_cell(x, h, w_ih, w_hh, b_ih, b_hh);
            check_close(eval(hn), rref(c + ".h_n"), rt, at, c + ".h");
            backward(hn, rref(c + ".gh").template astype<T>());
        }
        check_close(x.grad(), rref(c + ".dx"), rt, at, c + ".dx");
        check_close(h.grad(), rref(c + ".dh0"), rt, at, c + ".dh0");
        check_close(w_ih.grad(), rref(c + ".dweight_ih"), rt, at, c + ".dweight_ih");
        check_close(w_hh.grad(), rref(c + ".dweight_hh"), rt, at, c + ".dweight_hh");
        check_close(b_ih.grad(), rref(c + ".dbias_ih"), rt, at, c + ".dbias_ih");
        check_close(b_hh.grad(), rref(c + ".dbias_hh"), rt, at, c + ".dbias_hh");
    }
}

BOOST_AUTO_TEST_CASE(pytorch_parameter_names) {
    nn::lstm<float> m(3, 4, {.num_layers = 2, .bidirectional = true});
    std::vector<std::string> names;
    for (auto& [n, p] : m.named_parameters()) names.push_back(n);
    const std::vector<std::string> want = {
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse",
        "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1",
        "weight_ih_l1_reverse", "weight_hh_l1_reverse", "bias_ih_l1_reverse", "bias_hh_l1_reverse"};
    BOOST_TEST(names == want, boost::test_tools::per_element());
    BOOST_TEST(m.weight_ih(1, true).shape() == (shape_t{16, 8}));
    nn::gru<float> g(3, 4);
    BOOST_TEST(g.weight_hh(0).shape() == (shape_t{12, 4}));
    BOOST_TEST(g.num_parameters() == 12u * 3 + 12u * 4 + 24);
}

// Every gradient (input, initial states, all weights) against finite differences, on random
// small configurations: both kinds, 1-2 layers, both directions, batch_first, lengths, and the
// stack inside a larger expression.
BOOST_AUTO_TEST_CASE(gradcheck_random_configurations) {
    rng gen(7);
    for (int trial = 0; trial < 8; ++trial) {
        const bool lstm = trial % 2 == 0;
        const std::size_t layers = 1 + (trial / 2) % 2, I = 2 + gen() % 2, H = 2 + gen() % 2, Tn = 2 + gen() % 3,
                          B = 1 + gen() % 3;
        const bool bidir = (trial / 4) % 2 == 1, bf = trial % 3 == 0, with_len = trial % 3 != 1;
        const std::size_t D = bidir ? 2 : 1;
        const nn::rnn_options o{.num_layers = layers, .bidirectional = bidir, .batch_first = bf};
        auto x = param(randn<double>(bf ? shape_t{B, Tn, I} : shape_t{Tn, B, I}, gen));
        auto h0 = param(randn<double>({layers * D, B, H}, gen));
        auto c0 = param(randn<double>({layers * D, B, H}, gen));
        std::optional<tensor<std::int64_t>> len;
        if (with_len) {
            len = tensor<std::int64_t>::uninitialized({B});
            for (std::size_t b = 0; b < B; ++b) len->data()[b] = 1 + static_cast<std::int64_t>(gen() % Tn);
        }
        const std::string what = std::string(lstm ? "lstm" : "gru") + " trial " + std::to_string(trial);
        auto run = [&](auto& m) {
            std::vector<parameter<double>> ps{x, h0};
            if (lstm) ps.push_back(c0);
            for (auto& p : m.parameters()) ps.push_back(p);
            for (int which = 0; which < (lstm ? 3 : 2); ++which)
                xgrad_test::expect_gradcheck(
                    [&] {
                        auto o2 = [&] {
                            if constexpr (std::is_same_v<std::remove_cvref_t<decltype(m)>, nn::lstm<double>>) {
                                auto r = m.forward(tanh(x), h0, c0, len);
                                return std::array{r.output, r.h_n, r.c_n};
                            } else {
                                auto r = m.forward(tanh(x), h0, len);
                                return std::array{r.output, r.h_n, r.h_n};
                            }
                        }();
                        return o2[static_cast<std::size_t>(which)] * 1.5;
                    },
                    ps, gen, what + " output " + std::to_string(which));
        };
        if (lstm) {
            nn::lstm<double> m(I, H, o, gen);
            run(m);
        } else {
            nn::gru<double> m(I, H, o, gen);
            run(m);
        }
    }
}

BOOST_AUTO_TEST_CASE(gradcheck_cells) {
    rng gen(11);
    auto x = param(randn<double>({3, 2}, gen)), h = param(randn<double>({3, 4}, gen)), c = param(randn<double>({3, 4}, gen));
    auto wl = param(randn<double>({16, 2}, gen)), ul = param(randn<double>({16, 4}, gen));
    auto bl = param(randn<double>({16}, gen)), vl = param(randn<double>({16}, gen));
    xgrad_test::expect_gradcheck([&] { auto s = lstm_cell(x, h, c, wl, ul, bl, vl); return s.h * s.c; },
                                 {x, h, c, wl, ul, bl, vl}, gen, "lstm_cell");
    auto wg = param(randn<double>({12, 2}, gen)), ug = param(randn<double>({12, 4}, gen));
    auto bg = param(randn<double>({12}, gen)), vg = param(randn<double>({12}, gen));
    // two steps of the same cell: the second reads the first's output
    xgrad_test::expect_gradcheck([&] { return gru_cell(x, gru_cell(x, h, wg, ug, bg, vg), wg, ug, bg, vg); },
                                 {x, h, wg, ug, bg, vg}, gen, "gru_cell twice");
}

// Dropout between layers: the masks are drawn when forward() is called, so one expression
// evaluates and differentiates consistently; evaluation mode is deterministic.
BOOST_AUTO_TEST_CASE(dropout_between_layers) {
    rng gen(3);
    nn::lstm<double> m(2, 3, {.num_layers = 2, .dropout = 0.5}, gen);
    auto x = param(randn<double>({4, 2, 2}, gen));
    auto out = m(x);
    std::vector<parameter<double>> ps{x};
    for (auto& p : m.parameters()) ps.push_back(p);
    xgrad_test::expect_gradcheck([&] { return out.output; }, ps, gen, "lstm dropout (one mask)");
    m.eval();
    const auto a = eval(m(x).output), b = eval(m(x).output);
    BOOST_TEST(a.to_vector() == b.to_vector(), boost::test_tools::per_element());
    m.train();
    BOOST_TEST(eval(m(x).output).to_vector() != a.to_vector());
}

BOOST_AUTO_TEST_CASE(padded_steps_change_nothing) {
    rng gen(5);
    nn::gru<float> m(3, 4, {.bidirectional = true, .batch_first = true}, gen);
    auto x = randn<float>({2, 5, 3}, gen);
    tensor<std::int64_t> len = tensor<std::int64_t>::uninitialized({2});
    len.data()[0] = 5;
    len.data()[1] = 2;
    const auto y = eval(m.forward(x, len).output);
    // changing padded inputs changes nothing
    auto x2 = x.clone();
    for (std::size_t t = 2; t < 5; ++t)
        for (std::size_t i = 0; i < 3; ++i) x2(1, t, i) = 100.0f;
    const auto y2 = eval(m.forward(x2, len).output);
    BOOST_TEST(y.to_vector() == y2.to_vector(), boost::test_tools::per_element());
    for (std::size_t t = 2; t < 5; ++t)
        for (std::size_t j = 0; j < 8; ++j) BOOST_TEST(y(1, t, j) == 0.0f);
    // and the short sequence alone gives its outputs
    auto xs = tensor<float>::uninitialized({1, 2, 3});
    for (std::size_t t = 0; t < 2; ++t)
        for (std::size_t i = 0; i < 3; ++i) xs(0, t, i) = x(1, t, i);
    const auto ys = eval(m(xs).output);
    for (std::size_t t = 0; t < 2; ++t)
        for (std::size_t j = 0; j < 8; ++j) BOOST_TEST(std::fabs(ys(0, t, j) - y(1, t, j)) < 1e-6f);
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_typed_error) {
    nn::lstm<float> m(3, 4, {.num_layers = 2});
    auto x = zeros<float>({5, 2, 3});
    auto len = [](std::int64_t a, std::int64_t b) {
        auto t = tensor<std::int64_t>::uninitialized({2});
        t.data()[0] = a;
        t.data()[1] = b;
        return t;
    };
    xgrad_test::check_throws<value_error>([&] { m.forward(x, len(5, 0)); }, {"lengths[1] = 0", "[1, 5]"});
    xgrad_test::check_throws<value_error>([&] { m.forward(x, len(6, 1)); }, {"lengths[0] = 6"});
    xgrad_test::check_throws<shape_error>([&] { m.forward(x, zeros<std::int64_t>({3})); }, {"lengths", "{2}"});
    xgrad_test::check_throws<shape_error>([&] { m(zeros<float>({5, 2, 4})); }, {"input_size 3"});
    xgrad_test::check_throws<shape_error>([&] { m(zeros<float>({5, 3})); }, {"lstm", "{seq, batch, 3}"});
    xgrad_test::check_throws<shape_error>([&] { m.forward(x, zeros<float>({1, 2, 4}), zeros<float>({2, 2, 4})); },
                                          {"h0", "{2, 2, 4}"});
    xgrad_test::check_throws<value_error>([] { nn::gru<float>(3, 4, {.dropout = 1.0}); }, {"dropout"});
    auto w = param(zeros<float>({12, 3}));
    xgrad_test::check_throws<shape_error>(
        [&] { gru_cell(zeros<float>({2, 3}), zeros<float>({2, 4}), w, w, param(zeros<float>({12})), param(zeros<float>({12}))); },
        {"gru_cell", "weight_hh", "{12, 4}"});
}

namespace {

struct threads_guard {
    std::size_t saved = num_threads();
    ~threads_guard() { set_num_threads(saved); }
};

/// The output {T, B, D H} of one layer with h0 = c0 = 0, in plain float64 loops (the definition).
/// w holds w_ih, w_hh, b_ih, b_hh per direction.
std::vector<double> naive_layer(bool lstm, const std::vector<tensor<double>>& w, const tensor<double>& x,
                                const std::vector<std::int64_t>& len, std::size_t D, std::size_t H) {
    const std::size_t Tn = x.shape()[0], B = x.shape()[1], I = x.shape()[2], G = (lstm ? 4 : 3) * H;
    std::vector<double> y(Tn * B * D * H, 0.0);
    auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
    for (std::size_t d = 0; d < D; ++d) {
        const double *wi = w[4 * d].data(), *wh = w[4 * d + 1].data(), *bi = w[4 * d + 2].data(), *bh = w[4 * d + 3].data();
        for (std::size_t b = 0; b < B; ++b) {
            std::vector<double> h(H, 0.0), c(H, 0.0), a(G), ah(G);
            const auto L = static_cast<std::size_t>(len[b]);
            for (std::size_t k = 0; k < L; ++k) {
                const std::size_t t = d == 1 ? L - 1 - k : k;
                for (std::size_t g = 0; g < G; ++g) {
                    a[g] = bi[g];
                    ah[g] = bh[g];
                    for (std::size_t i = 0; i < I; ++i) a[g] += wi[g * I + i] * x.data()[(t * B + b) * I + i];
                    for (std::size_t j = 0; j < H; ++j) ah[g] += wh[g * H + j] * h[j];
                }
                for (std::size_t j = 0; j < H; ++j) {
                    if (lstm) {
                        const double ig = sig(a[j] + ah[j]), fg = sig(a[H + j] + ah[H + j]),
                                     gg = std::tanh(a[2 * H + j] + ah[2 * H + j]), og = sig(a[3 * H + j] + ah[3 * H + j]);
                        c[j] = fg * c[j] + ig * gg;
                        h[j] = og * std::tanh(c[j]);
                    } else {
                        const double r = sig(a[j] + ah[j]), z = sig(a[H + j] + ah[H + j]),
                                     n = std::tanh(a[2 * H + j] + r * ah[2 * H + j]);
                        h[j] = (1 - z) * n + z * h[j];
                    }
                    y[(t * B + b) * D * H + d * H + j] = h[j];
                }
            }
        }
    }
    return y;
}

}  // namespace

// Sizes where the per-step products run full register tiles, several panels, two depth blocks
// (4H > 256) and a team of two threads: values against the plain loops, one thread against two,
// and (float64) the gradients against central differences along a random direction.
BOOST_AUTO_TEST_CASE_TEMPLATE(full_tiles_and_two_threads, T, real_types) {
    threads_guard guard;
    rng gen(13);
    constexpr std::size_t Tn = 4, B = 37, I = 7, H = 100;
    std::vector<std::int64_t> lv(B);
    std::optional<tensor<std::int64_t>> lengths = tensor<std::int64_t>::uninitialized({B});
    for (std::size_t b = 0; b < B; ++b) lengths->data()[b] = lv[b] = 1 + static_cast<std::int64_t>((b * 7) % Tn);
    auto check = [&](auto& m, bool lstm) {
        const std::string what = lstm ? "lstm" : "gru";
        auto x = param(randn<T>({Tn, B, I}, gen));
        auto h0 = param(zeros<T>({2, B, H})), c0 = param(zeros<T>({2, B, H}));
        const auto gy = randn<T>({Tn, B, 2 * H}, gen);
        // the argument types of check_layer_case's calls: no new instantiations
        auto forward = [&] {
            if constexpr (std::is_same_v<std::remove_cvref_t<decltype(m)>, nn::lstm<T>>)
                return m.forward(x, h0, c0, lengths).output;
            else
                return m.forward(x, h0, lengths).output;
        };
        std::vector<parameter<T>> ps{x, h0};
        if (lstm) ps.push_back(c0);
        for (auto& p : m.parameters()) ps.push_back(p);
        std::vector<tensor<double>> wd;
        for (auto& p : m.parameters()) wd.push_back(p.value().template astype<double>());
        const auto yv = naive_layer(lstm, wd, x.value().template astype<double>(), lv, 2, H);
        auto yref = tensor<double>::uninitialized({Tn, B, 2 * H});
        std::copy(yv.begin(), yv.end(), yref.data());
        std::vector<tensor<double>> one;  // y and every gradient with one thread
        for (std::size_t nt : {1, 2}) {
            set_num_threads(nt);
            for (auto& p : ps) p.zero_grad();
            auto out = forward();
            const auto y = eval(out);
            check_close(y, yref, rtol<T>(), atol<T>(), what + " y, threads " + std::to_string(nt));
            backward(out, gy);
            std::vector<tensor<double>> got{y.template astype<double>()};
            for (auto& p : ps) got.push_back(p.grad().template astype<double>());
            if (nt == 1) {
                one = got;
            } else {
                for (std::size_t k = 0; k < got.size(); ++k)
                    check_close(got[k], one[k], rtol<T>() / 10, atol<T>() / 10, what + " two threads, item " + std::to_string(k));
            }
        }
        if constexpr (std::is_same_v<T, double>) {
            // L = sum(y gy); dL along a random direction v of (x, h0, c0, every weight), at two threads
            std::vector<tensor<double>> v;
            double analytic = 0;
            for (auto& p : ps) {
                v.push_back(randn<double>(p.shape(), gen));
                const auto g = p.grad().to_vector(), d = v.back().to_vector();
                for (std::size_t i = 0; i < g.size(); ++i) analytic += g[i] * d[i];
            }
            auto loss_at = [&](double eps) {
                for (std::size_t k = 0; k < ps.size(); ++k)
                    for (std::size_t i = 0; i < v[k].size(); ++i) ps[k].value().data()[i] += eps * v[k].data()[i];
                const auto y = eval(forward()).to_vector(), g = gy.to_vector();
                for (std::size_t k = 0; k < ps.size(); ++k)
                    for (std::size_t i = 0; i < v[k].size(); ++i) ps[k].value().data()[i] -= eps * v[k].data()[i];
                double s = 0;
                for (std::size_t i = 0; i < y.size(); ++i) s += y[i] * g[i];
                return s;
            };
            const double eps = 1e-5, numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
            BOOST_TEST(std::fabs(analytic - numeric) <= 1e-7 + 1e-6 * std::fabs(numeric),
                       what << ": directional derivative " << analytic << " vs finite difference " << numeric);
        }
    };
    nn::lstm<T> lstm(I, H, {.bidirectional = true}, gen);
    check(lstm, true);
    nn::gru<T> gru(I, H, {.bidirectional = true}, gen);
    check(gru, false);
}
