#define BOOST_TEST_MODULE compression
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <xgrad/nn.hpp>
#include <xgrad/nn/prune.hpp>
#include <xgrad/nn/quantized.hpp>
#include <xgrad/optim.hpp>
#include <xgrad/train.hpp>
#include <xgrad/xgrad.hpp>

#include "reference_file.hpp"
#include "test_support.hpp"

using namespace xgrad;
using xgrad_test::error_of;

namespace {

const std::map<std::string, tensor<double>>& ref() {
    static const auto r = xgrad_test::read_reference_file(XGRAD_TEST_DATA_DIR "/prune_reference.txt");
    return r;
}
tensor<float> ref_f(const std::string& name) { return ref().at(name).astype<float>(); }

template <class L>
void set_weight(L& l, const std::string& name) {
    BOOST_REQUIRE(l.weight.shape() == ref().at(name).shape());
    l.weight.value().assign(ref_f(name));
}

void check_mask(const parameter<float>& p, const std::string& name) {
    const auto& want = ref().at(name);
    BOOST_TEST_CONTEXT(name) {
        BOOST_REQUIRE(p.state().pruned);
        BOOST_REQUIRE(p.state().prune_mask.shape() == want.shape());
        std::size_t diff = 0;
        for (std::size_t i = 0; i < want.size(); ++i) diff += p.state().prune_mask.data()[i] != static_cast<float>(want.data()[i]);
        BOOST_TEST(diff == 0u);
        for (std::size_t i = 0; i < want.size(); ++i)
            if (want.data()[i] == 0) BOOST_TEST(p.value().data()[i] == 0.0f);
    }
}

std::filesystem::path temp_file(const std::string& name) {
    return std::filesystem::temp_directory_path() / ("xgrad_compression_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

// --- pruning ---------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(l1_unstructured_masks_match_pytorch) {
    struct c {
        const char* name;
        double amount;
        bool conv;
        std::size_t in, out;
    };
    for (const c& k : {c{"l1u_a", 0.3, false, 5, 6}, c{"l1u_b", 0.25, false, 5, 6}, c{"l1u_c", 0.25, false, 5, 2},
                       c{"l1u_d", 0.8, true, 2, 4}, c{"l1u_zero", 0.0, false, 5, 6}, c{"l1u_all", 1.0, false, 5, 6}}) {
        const std::string n = k.name;
        if (k.conv) {
            nn::conv2d l(k.in, k.out, 3);
            set_weight(l, n + ".weight");
            prune::l1_unstructured(l, "weight", k.amount);
            check_mask(l.weight, n + ".mask");
        } else {
            nn::linear l(k.in, k.out);
            set_weight(l, n + ".weight");
            prune::l1_unstructured(l, "weight", k.amount);
            check_mask(l.weight, n + ".mask");
        }
    }
    // iterative: the second 50 % applies to what the first left
    nn::linear l(6, 7);
    set_weight(l, "l1u_iter.weight");
    prune::l1_unstructured(l, "weight", 0.5);
    check_mask(l.weight, "l1u_iter.mask1");
    prune::l1_unstructured(l, "weight", 0.5);
    check_mask(l.weight, "l1u_iter.mask");
}

BOOST_AUTO_TEST_CASE(ln_structured_masks_match_pytorch) {
    {
        nn::conv2d l(3, 8, 3);
        set_weight(l, "lns_a.weight");
        prune::ln_structured(l, "weight", 0.4, 2, 0);
        check_mask(l.weight, "lns_a.mask");
    }
    {
        nn::conv2d l(5, 4, 3);
        set_weight(l, "lns_b.weight");
        prune::ln_structured(l, "weight", 0.6, 1, 1);
        check_mask(l.weight, "lns_b.mask");
    }
    {
        nn::linear l(7, 6);
        set_weight(l, "lns_c.weight");
        prune::ln_structured(l, "weight", 0.5, INFINITY, 0);
        check_mask(l.weight, "lns_c.mask");
    }
    {
        nn::linear l(7, 6);
        set_weight(l, "lns_d.weight");
        prune::ln_structured(l, "weight", 0.3, 2, -1);
        check_mask(l.weight, "lns_d.mask");
    }
    {
        nn::conv2d l(3, 4, 3);
        set_weight(l, "lns_e.weight");
        prune::ln_structured(l, "weight", 0.5, 3, 2);
        check_mask(l.weight, "lns_e.mask");
    }
    {  // structured after unstructured: norms of the originals, amount of the channels left
        nn::conv2d l(3, 8, 3);
        set_weight(l, "lns_iter.weight");
        prune::l1_unstructured(l, "weight", 0.3);
        check_mask(l.weight, "lns_iter.mask1");
        prune::ln_structured(l, "weight", 0.5, 2, 0);
        check_mask(l.weight, "lns_iter.mask");
    }
}

BOOST_AUTO_TEST_CASE(global_unstructured_masks_match_pytorch) {
    for (const std::string c : {"glob_a", "glob_b"}) {
        nn::conv2d l0(2, 4, 3);
        nn::linear l1(10, 6), l2(6, 3);
        set_weight(l0, c + ".weight0");
        set_weight(l1, c + ".weight1");
        set_weight(l2, c + ".weight2");
        if (c == "glob_b") {
            prune::l1_unstructured(l1, "weight", 0.5);
            check_mask(l1.weight, c + ".mask1_1");
        }
        prune::global_unstructured({prune::target(l0, "weight"), prune::target(l1, "weight"), prune::target(l2, "weight")},
                                   0.6);
        check_mask(l0.weight, c + ".mask0");
        check_mask(l1.weight, c + ".mask1");
        check_mask(l2.weight, c + ".mask2");
    }
}

BOOST_AUTO_TEST_CASE(pruning_bad_arguments_name_the_layer) {
    auto model = nn::sequential(nn::linear(4, 3), nn::relu(), nn::linear(3, 2));
    auto& fc = model.get<0>();
    for (double a : {-0.1, 1.5, std::nan("")}) {
        const auto m = error_of<value_error>([&] { prune::l1_unstructured(fc, "weight", a); });
        BOOST_TEST(m.find("layer '0' (linear)") != std::string::npos, m);
        BOOST_TEST(m.find("[0, 1]") != std::string::npos, m);
    }
    auto m = error_of<value_error>([&] { prune::l1_unstructured(model.get<2>(), "weigth", 0.5); });
    BOOST_TEST(m.find("layer '2' (linear) has no parameter 'weigth'") != std::string::npos, m);
    m = error_of<value_error>([&] { prune::ln_structured(fc, "weight", 0.5, 2, 2); });
    BOOST_TEST(m.find("dim 2 is out of range") != std::string::npos, m);
    m = error_of<value_error>([&] { prune::ln_structured(fc, "bias", 0.5, 2, 0); });
    BOOST_TEST(m.find("2 or more dimensions") != std::string::npos, m);
    m = error_of<value_error>([&] { prune::ln_structured(fc, "weight", 0.5, -1, 0); });
    BOOST_TEST(m.find("norm order") != std::string::npos, m);
    m = error_of<value_error>([&] { prune::remove(fc, "weight"); });
    BOOST_TEST(m.find("is not pruned") != std::string::npos, m);
    BOOST_TEST(!prune::is_pruned(fc, "weight"));
    m = error_of<value_error>([&] { prune::global_unstructured({prune::target(fc, "weight"), prune::target(fc, "weight")}, 0.5); });
    BOOST_TEST(m.find("listed twice") != std::string::npos, m);
}

BOOST_AUTO_TEST_CASE(pruned_weights_stay_zero_while_fine_tuning) {
    nn::manual_seed(3);
    auto model = nn::sequential(nn::linear(8, 16), nn::relu(), nn::linear(16, 4));
    prune::l1_unstructured(model.get<0>(), "weight", 0.7);
    prune::ln_structured(model.get<2>(), "weight", 0.5, 2, 0);
    const auto w0 = model.get<0>().weight.value().clone();
    const auto orig0 = model.get<0>().weight.state().prune_orig.clone();
    auto opt = optim::adamw(model.parameters(), {.lr = 1e-2, .weight_decay = 0.1});
    rng g(5);
    const auto x = randn<float>({32, 8}, g), y = randn<float>({32, 4}, g);
    for (int step = 0; step < 25; ++step) {
        opt.zero_grad();
        backward(mean(square(model(x) - y)));
        opt.step();
    }
    for (auto* l : {&model.get<0>().weight, &model.get<2>().weight}) {
        const auto& s = l->state();
        std::size_t nonzero_pruned = 0, kept = 0;
        for (std::size_t i = 0; i < s.value.size(); ++i) {
            if (s.prune_mask.data()[i] == 0) nonzero_pruned += s.value.data()[i] != 0.0f;
            kept += s.prune_mask.data()[i] != 0;
        }
        BOOST_TEST(nonzero_pruned == 0u);
        BOOST_TEST(kept > 0u);
    }
    // kept weights trained, pruned originals untouched (their gradient is masked)
    std::size_t moved = 0;
    for (std::size_t i = 0; i < w0.size(); ++i) {
        const auto& s = model.get<0>().weight.state();
        if (s.prune_mask.data()[i] != 0) moved += s.value.data()[i] != w0.data()[i];
        else BOOST_TEST(s.prune_orig.data()[i] == orig0.data()[i]);
    }
    BOOST_TEST(moved > 0u);
    const auto rep = prune::sparsity(model);
    BOOST_REQUIRE(rep.size() == 5u);  // 4 parameters and the total
    BOOST_TEST(rep[0].name == "0.weight");
    BOOST_TEST(rep[0].zeros == static_cast<std::size_t>(std::nearbyint(0.7 * 128)));
    BOOST_TEST(rep[0].pruned);
    BOOST_TEST(rep[2].zeros == 32u);  // 2 of 4 output rows of 16
    BOOST_TEST(rep[4].name == "total");
    BOOST_TEST(prune::sparsity_report(model).find("0.weight") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(pruned_checkpoints_round_trip_as_pytorch_names) {
    nn::manual_seed(4);
    auto model = nn::sequential(nn::linear(6, 5), nn::relu(), nn::linear(5, 3));
    prune::l1_unstructured(model.get<0>(), "weight", 0.4);
    const auto orig = model.get<0>().weight.state().prune_orig.clone();
    const auto path = temp_file("pruned.safetensors");
    save(model, path);
    const auto f = io::load_safetensors(path);
    BOOST_TEST(!f.find("0.weight"));
    BOOST_REQUIRE(f.find("0.weight_orig"));
    BOOST_REQUIRE(f.find("0.weight_mask"));
    BOOST_TEST(f.find("2.weight"));
    const auto saved_orig = f.get<float>("0.weight_orig");
    for (std::size_t i = 0; i < orig.size(); ++i) BOOST_TEST(saved_orig.data()[i] == orig.data()[i]);

    auto fresh = nn::sequential(nn::linear(6, 5), nn::relu(), nn::linear(5, 3));
    const auto m = error_of<value_error>([&] { load(fresh, path); });  // unpruned model: names differ
    BOOST_TEST(m.find("unexpected: 0.weight_orig, 0.weight_mask") != std::string::npos, m);
    prune::identity(fresh.get<0>(), "weight");
    load(fresh, path);
    const auto& a = model.get<0>().weight.state();
    const auto& b = fresh.get<0>().weight.state();
    for (std::size_t i = 0; i < a.value.size(); ++i) {
        BOOST_TEST(b.value.data()[i] == a.value.data()[i]);
        BOOST_TEST(b.prune_mask.data()[i] == a.prune_mask.data()[i]);
        BOOST_TEST(b.prune_orig.data()[i] == a.prune_orig.data()[i]);
    }
    prune::remove(fresh.get<0>(), "weight");
    save(fresh, path);
    const auto g = io::load_safetensors(path);
    BOOST_TEST(g.find("0.weight"));
    BOOST_TEST(!g.find("0.weight_mask"));
    std::filesystem::remove(path);
}

// --- int8 GEMM -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(int8_gemm_is_exact) {
    rng g(11);
    std::mt19937 gen(7);
    BOOST_TEST_MESSAGE("int8 GEMM kernel: " << (quant::int8_gemm_uses_vnni() ? "AVX-512 VNNI" : "portable"));
    for (std::size_t M : {1, 3, 4, 5, 17, 64})
        for (std::size_t N : {1, 15, 16, 17, 64, 65, 130})
            for (std::size_t K : {1, 3, 4, 5, 64, 100}) {
                std::vector<std::uint8_t> a(M * K);
                std::vector<std::int8_t> b(N * K);
                for (auto& v : a) v = static_cast<std::uint8_t>(gen() % 256);
                for (auto& v : b) v = static_cast<std::int8_t>(static_cast<int>(gen() % 255) - 127);
                std::vector<std::int32_t> want(M * N), got(M * N, -1), portable(M * N, -1);
                quant::int8_gemm_reference(a.data(), b.data(), want.data(), M, N, K);
                quant::packed_int8_weights w(b.data(), N, K);
                std::vector<std::uint8_t> ap(M * w.kp, 0);
                for (std::size_t m = 0; m < M; ++m) std::copy_n(a.data() + m * K, K, ap.data() + m * w.kp);
                for (std::size_t threads : {1, 2}) {
                    quant::int8_gemm(ap.data(), M, w, {.c32 = got.data()}, threads);
                    BOOST_TEST_REQUIRE(got == want, "M " << M << " N " << N << " K " << K << " threads " << threads);
                }
                for (std::size_t j0 = 0; j0 < w.np; j0 += 64)
                    quant::detail::int8_kernel_portable(ap.data(), 0, M, j0, w, {.c32 = portable.data()});
                BOOST_TEST_REQUIRE(portable == want, "portable M " << M << " N " << N << " K " << K);
            }
    // the extremes: 255 * 127 and 255 * -127 summed over K = 8192 fit in int32 without saturating
    const std::size_t K = 8192, N = 32;
    std::vector<std::uint8_t> a(K, 255);
    std::vector<std::int8_t> b(N * K);
    for (std::size_t j = 0; j < N; ++j)
        for (std::size_t k = 0; k < K; ++k) b[j * K + k] = j % 2 ? -127 : 127;
    quant::packed_int8_weights w(b.data(), N, K);
    std::vector<std::int32_t> c(N);
    quant::int8_gemm(a.data(), 1, w, {.c32 = c.data()});
    for (std::size_t j = 0; j < N; ++j) BOOST_TEST(c[j] == (j % 2 ? -1 : 1) * 255 * 127 * 8192);
    std::vector<std::int8_t> big(70000);
    BOOST_CHECK_THROW(quant::packed_int8_weights(big.data(), 1, big.size()), value_error);
}

BOOST_AUTO_TEST_CASE(int8_gemm_float_epilogue_over_k_blocks) {
    // K = 1300: the VNNI kernel sums K in several blocks, keeping the partial int32 sums in the
    // float output between them; the epilogue (zero point, scales, bias, relu) runs on the last
    std::mt19937 gen(5);
    const std::size_t M = 13, N = 70, K = 1300;
    std::vector<std::uint8_t> a(M * K);
    std::vector<std::int8_t> b(N * K);
    for (auto& v : a) v = static_cast<std::uint8_t>(gen() % 256);
    for (auto& v : b) v = static_cast<std::int8_t>(static_cast<int>(gen() % 255) - 127);
    std::vector<float> ws(N), bias(N);
    for (std::size_t j = 0; j < N; ++j) ws[j] = 1e-4f * static_cast<float>(1 + j % 7), bias[j] = 0.5f * static_cast<float>(j % 5) - 1;
    std::vector<std::int32_t> c(M * N);
    quant::int8_gemm_reference(a.data(), b.data(), c.data(), M, N, K);
    quant::packed_int8_weights w(b.data(), N, K);
    std::vector<std::uint8_t> ap(M * w.kp, 0);
    for (std::size_t m = 0; m < M; ++m) std::copy_n(a.data() + m * K, K, ap.data() + m * w.kp);
    const float as = 0.003f;
    const std::int32_t z = 131;
    for (bool relu : {false, true}) {
        std::vector<float> got(M * N, -7), portable(M * N, -7);
        const quant::int8_epilogue e{.c = got.data(), .a_scale = as, .a_zero_point = z, .w_scale = ws.data(), .bias = bias.data(), .relu = relu};
        quant::int8_gemm(ap.data(), M, w, e, 2);
        auto ep = e;
        ep.c = portable.data();
        for (std::size_t j0 = 0; j0 < w.np; j0 += 64) quant::detail::int8_kernel_portable(ap.data(), 0, M, j0, w, ep);
        int negatives = 0;
        for (std::size_t m = 0; m < M; ++m)
            for (std::size_t j = 0; j < N; ++j) {
                double want = static_cast<double>(as) * ws[j] * (static_cast<double>(c[m * N + j]) - static_cast<double>(z) * w.row_sum[j]) + bias[j];
                negatives += want < 0;
                if (relu) want = std::max(want, 0.0);
                BOOST_TEST_REQUIRE(std::abs(got[m * N + j] - want) <= 1e-5 * (1 + std::abs(want)), "m " << m << " n " << j << " relu " << relu);
                BOOST_TEST_REQUIRE(std::abs(portable[m * N + j] - want) <= 1e-5 * (1 + std::abs(want)), "portable m " << m << " n " << j);
            }
        BOOST_TEST(negatives > 100);  // relu has something to clip
    }
}

// --- quantized layers ------------------------------------------------------------------------

namespace {

/// The layer's float result from the dequantized operands (double): what the int8 path must
/// reproduce up to float rounding.
double dequantized_dot(const float* x, const std::int8_t* wq, float ws, std::size_t K, const quant::uint8_params& p) {
    double s = 0;
    for (std::size_t k = 0; k < K; ++k)
        s += (static_cast<double>(quant::quantize_uint8(x[k], p)) - p.zero_point) * p.scale * wq[k] * ws;
    return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(quantized_linear_matches_dequantized_and_float) {
    nn::manual_seed(9);
    nn::linear fc(37, 21);
    rng g(2);
    const auto x = randn<float>({2, 5, 37}, g);
    quant::quantized_linear q(fc);
    const auto yq = q(x);
    const auto yf = eval(fc(x));
    BOOST_REQUIRE(yq.shape() == (shape_t{2, 5, 21}));
    float lo = 0, hi = 0;
    for (std::size_t i = 0; i < x.size(); ++i) lo = std::min(lo, x.data()[i]), hi = std::max(hi, x.data()[i]);
    const auto p = quant::choose_uint8_params(lo, hi);
    const auto w = fc.weight.value();
    for (std::size_t m = 0; m < 10; ++m)
        for (std::size_t n = 0; n < 21; ++n) {
            const float* xr = x.data() + m * 37;
            const double dq = dequantized_dot(xr, q.weight.data() + n * 37, q.scale.data()[n], 37, p) + fc.bias.value().data()[n];
            BOOST_TEST(std::abs(yq.data()[m * 21 + n] - dq) <= 1e-5 * (1 + std::abs(dq)));
            // |x w - x_q w_q| <= sum_k |w_k| s_x / 2 + |x_k| s_w / 2 + s_x s_w / 4
            double bound = 0;
            for (std::size_t k = 0; k < 37; ++k)
                bound += std::abs(w.data()[n * 37 + k]) * p.scale / 2 + std::abs(xr[k]) * q.scale.data()[n] / 2 +
                         p.scale * q.scale.data()[n] / 4;
            BOOST_TEST(std::abs(yq.data()[m * 21 + n] - yf.data()[m * 21 + n]) <= bound + 1e-5);
        }
    BOOST_CHECK_THROW(q(randn<float>({3, 36}, g)), shape_error);
    // relu(t) goes in unevaluated (its clamp is the quantization's): the same result as relu(t) evaluated first
    const auto t = randn<float>({7, 37}, g);
    const auto fused = q(relu(t)), evaluated = q(eval(relu(t)));
    BOOST_TEST(fused.shape() == evaluated.shape());
    BOOST_TEST(std::equal(fused.data(), fused.data() + fused.size(), evaluated.data()));
    BOOST_TEST(std::memcmp(fused.data(), q(t).data(), fused.size() * sizeof(float)) != 0);
    // a large input, whose range the threads find part by part: extremes in different halves
    auto big = randn<float>({1000, 37}, g);
    big.data()[36999] = 50;
    big.data()[20000] = -40;
    const auto yb = q(big);
    const auto pb = quant::choose_uint8_params(-40, 50);
    for (std::size_t m : {0, 540, 999})
        for (std::size_t n = 0; n < 21; ++n) {
            const double dq = dequantized_dot(big.data() + m * 37, q.weight.data() + n * 37, q.scale.data()[n], 37, pb) +
                              fc.bias.value().data()[n];
            BOOST_TEST(std::abs(yb.data()[m * 21 + n] - dq) <= 1e-5 * (1 + std::abs(dq)));
        }
}

BOOST_AUTO_TEST_CASE(quantized_lstm_close_to_float_and_round_trips) {
    nn::manual_seed(4);
    auto model = nn::sequential(nn::linear(6, 8), nn::lstm(8, 16, {.num_layers = 2, .bidirectional = true, .batch_first = true}));
    rng g(7);
    const auto x = randn<float>({3, 9, 6}, g);
    auto q = quant::quantize_dynamic(model);  // linear -> quantized_linear, lstm -> quantized_lstm
    const auto yq = q(x);
    const auto yf = model(x);
    const tensor<float> f[3] = {eval(yf.output), eval(yf.h_n), eval(yf.c_n)};
    const tensor<float>* qs[3] = {&yq.output, &yq.h_n, &yq.c_n};
    const char* names[3] = {"output", "h_n", "c_n"};
    for (int i = 0; i < 3; ++i) {
        BOOST_TEST_CONTEXT(names[i]) {
            BOOST_REQUIRE(qs[i]->shape() == f[i].shape());
            double diff = 0, mag = 0;
            for (std::size_t j = 0; j < f[i].size(); ++j) {
                diff = std::max(diff, static_cast<double>(std::abs(qs[i]->data()[j] - f[i].data()[j])));
                mag = std::max(mag, static_cast<double>(std::abs(f[i].data()[j])));
            }
            BOOST_TEST_MESSAGE(names[i] << ": max abs diff int8 vs float " << diff << " (max |float| " << mag << ")");
            BOOST_TEST(diff > 0.0);    // the int8 path ran
            BOOST_TEST(diff <= 0.006);  // measured 0.0014 (output), 0.0012 (h_n), 0.0026 (c_n)
            BOOST_TEST(mag > 0.1);
        }
    }
    BOOST_TEST(yq.output.shape() == (shape_t{3, 9, 32}));
    BOOST_TEST(yq.h_n.shape() == (shape_t{4, 3, 16}));
    BOOST_CHECK_THROW(q(randn<float>({3, 9, 5}, g)), shape_error);
    nn::lstm<float> alone(8, 4);
    quant::quantized_lstm ql(alone);
    BOOST_CHECK_THROW(ql(randn<float>({9, 8}, g)), shape_error);

    // save and load into the quantization of another float model: the same outputs, exactly
    const auto path = temp_file("lstm_int8.safetensors");
    quant::save(q, path);
    auto other = nn::sequential(nn::linear(6, 8), nn::lstm(8, 16, {.num_layers = 2, .bidirectional = true, .batch_first = true}));
    auto q2 = quant::quantize_dynamic(other);
    quant::load(q2, path);
    std::filesystem::remove(path);
    const auto y2 = q2(x);
    BOOST_REQUIRE(y2.output.shape() == yq.output.shape());
    std::size_t differ = 0;
    for (std::size_t j = 0; j < yq.output.size(); ++j) differ += y2.output.data()[j] != yq.output.data()[j];
    BOOST_TEST(differ == 0u);
}

BOOST_AUTO_TEST_CASE(static_conv_calibrates_and_round_trips) {
    nn::manual_seed(10);
    auto model = nn::sequential(nn::conv2d(3, 8, 3, {.stride = 2, .padding = 1}), nn::relu(), nn::max_pool2d(2),
                                nn::flatten(), nn::linear(8 * 3 * 3, 5));
    auto q = quant::prepare_static(model);
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(q.get<0>())>, quant::quantized_conv2d>);
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(q.get<4>())>, quant::quantized_linear>);
    auto m = error_of<value_error>([&] { quant::convert(q); });
    BOOST_TEST(m.find("layer '0' (quantized_conv2d) has observed no input") != std::string::npos, m);
    rng g(3);
    for (int b = 0; b < 3; ++b) (void)q(randn<float>({4, 3, 12, 12}, g));  // calibration
    quant::convert(q);
    BOOST_TEST(q.get<0>().calibrated());
    const float lo = q.get<0>().input_range.data()[0], hi = q.get<0>().input_range.data()[1];
    BOOST_TEST(lo < -2.0f);
    BOOST_TEST(hi > 2.0f);

    // the conv against the float conv of the dequantized operands
    const auto x = randn<float>({2, 3, 12, 12}, g);
    const auto p = quant::choose_uint8_params(lo, hi);
    auto xd = x.clone();
    for (std::size_t i = 0; i < xd.size(); ++i)
        xd.data()[i] = (static_cast<float>(quant::quantize_uint8(x.data()[i], p)) - p.zero_point) * p.scale;
    auto& qc = q.get<0>();
    auto wd = tensor<float>::uninitialized(qc.weight.shape());
    const std::size_t per = wd.size() / 8;
    for (std::size_t i = 0; i < wd.size(); ++i) wd.data()[i] = qc.weight.data()[i] * qc.scale.data()[i / per];
    const auto want = eval(conv2d(xd, wd, model.get<0>().bias.value(), model.get<0>().options()));
    const auto got = qc(x);
    BOOST_REQUIRE(got.shape() == want.shape());
    for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(std::abs(got.data()[i] - want.data()[i]) <= 1e-4f);
    // and close to the float model
    const auto yf = eval(model(x)), yq = eval(q(x));
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < yf.size(); ++i) {
        worst = std::max(worst, static_cast<double>(std::abs(yf.data()[i] - yq.data()[i])));
        scale = std::max(scale, static_cast<double>(std::abs(yf.data()[i])));
    }
    BOOST_TEST(worst <= 0.05 * scale, "worst " << worst << " of " << scale);

    // save/load: int8 tensors stored as I8, outputs identical after loading
    const auto path = temp_file("int8.safetensors");
    quant::save(q, path);
    const auto info = io::inspect_safetensors(path);
    for (auto& t : info.tensors)
        if (t.name.find(".weight") != std::string::npos) BOOST_TEST(t.dtype == "I8", t.name);
    nn::manual_seed(99);
    auto other = nn::sequential(nn::conv2d(3, 8, 3, {.stride = 2, .padding = 1}), nn::relu(), nn::max_pool2d(2),
                                nn::flatten(), nn::linear(8 * 3 * 3, 5));
    auto q2 = quant::prepare_static(other);
    quant::load(q2, path);
    BOOST_TEST(q2.get<0>().calibrated());
    const auto y2 = eval(q2(x));
    for (std::size_t i = 0; i < yq.size(); ++i) BOOST_TEST(y2.data()[i] == yq.data()[i]);
    auto dyn = quant::quantize_dynamic(other);  // a different structure (float conv): rejected
    m = error_of<value_error>([&] { quant::load(dyn, path); });
    BOOST_TEST(m.find("does not match the model") != std::string::npos, m);
    std::filesystem::remove(path);

    // what cannot be quantized
    auto grouped = nn::sequential(nn::conv2d(4, 4, 3, {.groups = 2}));
    m = error_of<value_error>([&] { (void)quant::prepare_static(grouped); });
    BOOST_TEST(m.find("layer '0' (conv2d): quantized conv2d supports groups = 1 only") != std::string::npos, m);
    auto no_linear = nn::sequential(nn::relu());
    m = error_of<value_error>([&] { (void)quant::quantize_dynamic(no_linear); });
    BOOST_TEST(m.find("no layer to quantize") != std::string::npos, m);
}
