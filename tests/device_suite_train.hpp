// The training suite on devices: optimizers, gradient clipping, models and checkpoints on the
// device under test, compared step by step with the same run on a reference device. Included
// by test_thrust_train.cpp (reference: the CPU backend) and by cuda/test_cuda_train.cu
// (reference: thrust_cpp); the includer defines the Boost.Test module and, before including it:
//   device_suite::reference  the device results are compared with
//   device_suite::full       devices that run every check
//   device_suite::subset     devices that run the core checks
// and may define XGRAD_TRAIN_SUITE_PART to compile half of the checks (two translation units
// build faster than one): 1 the optimizers, clipping, moving models and checkpoints, 2 the
// training runs (fit, an MLP, a CNN).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <xgrad/device.hpp>

#include "device_test_support.hpp"

namespace device_suite {

using cpu = xgrad::device::cpu;
using xgrad::shape_t;

/// |got - want| <= atol + rtol |want| elementwise.
inline void expect_near(const std::vector<float>& got, const std::vector<float>& want, const std::string& what,
                        double rtol = 1e-5, double atol = 1e-6) {
    BOOST_TEST_INFO(what);
    BOOST_TEST_REQUIRE(got.size() == want.size());
    int bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const double g = got[i], w = want[i];
        if (!(std::abs(g - w) <= atol + rtol * std::abs(w)) && bad++ < 5)
            BOOST_ERROR(what << ": element " << i << " is " << g << ", want " << w);
    }
}

using device_test::host;

/// Values in [lo, hi) from a seed, on the host.
inline xgrad::tensor<float> values(const shape_t& s, std::uint64_t seed, float lo = -1, float hi = 1) {
    xgrad::rng g(seed);
    return xgrad::uniform<float>(s, g, lo, hi);
}

/// Two parameters (a matrix and a vector) on device D with fixed initial values.
template <class D>
std::vector<xgrad::parameter<float, D>> make_params() {
    return {xgrad::param(xgrad::to<D>(values({7, 9}, 1).clone()), "w"),
            xgrad::param(xgrad::to<D>(values({9}, 2).clone()), "b")};
}

/// Gradients that depend on the parameters: d/dw sum(w^2 g1) = 2 w g1, d/db sum(b^3 g2) = 3 b^2 g2
/// with g1, g2 fixed per step.
template <class D>
void gradients(std::vector<xgrad::parameter<float, D>>& p, int step) {
    const auto g1 = xgrad::to<D>(values({7, 9}, 100 + static_cast<std::uint64_t>(step)));
    const auto g2 = xgrad::to<D>(values({9}, 200 + static_cast<std::uint64_t>(step)));
    for (auto& q : p) q.zero_grad();
    xgrad::backward(xgrad::sum(xgrad::square(p[0]) * g1));
    xgrad::backward(xgrad::sum(p[1] * p[1] * p[1] * g2));
}

/// Runs `steps` steps of the optimizer make(params) on device D; returns every parameter's
/// values after each step, concatenated.
template <class D, class Make>
std::vector<std::vector<float>> optimizer_run(Make make, int steps) {
    auto p = make_params<D>();
    auto opt = make(p);
    std::vector<std::vector<float>> out;
    for (int s = 0; s < steps; ++s) {
        gradients(p, s);
        opt.step();
        std::vector<float> v = host(p[0].value());
        const auto b = host(p[1].value());
        v.insert(v.end(), b.begin(), b.end());
        out.push_back(std::move(v));
    }
    return out;
}

template <class D, class Make>
void compare_optimizer(const std::string& what, Make make, int steps = 8) {
    const auto want = optimizer_run<reference>(make, steps);
    const auto got = optimizer_run<D>(make, steps);
    for (int s = 0; s < steps; ++s)
        expect_near(got[static_cast<std::size_t>(s)], want[static_cast<std::size_t>(s)],
                    what + ", step " + std::to_string(s + 1), 2e-5, 2e-6);
    // the run moved the parameters (a test of a no-op optimizer would pass anyway)
    BOOST_TEST(std::abs(got.back()[0] - values({7, 9}, 1).to_vector()[0]) > 1e-4f, what << " moved nothing");
}

}  // namespace device_suite

#if !defined(XGRAD_TRAIN_SUITE_PART) || XGRAD_TRAIN_SUITE_PART == 1

// --- optimizers -------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE_TEMPLATE(every_optimizer_matches_the_reference, D, device_suite::full) {
    using namespace device_suite;
    namespace optim = xgrad::optim;
    compare_optimizer<D>("sgd", [](auto p) { return optim::sgd(p, {.lr = 0.1}); });
    compare_optimizer<D>("sgd weight decay", [](auto p) { return optim::sgd(p, {.lr = 0.1, .weight_decay = 0.1}); });
    compare_optimizer<D>("sgd momentum",
                         [](auto p) { return optim::sgd(p, {.lr = 0.05, .momentum = 0.9, .dampening = 0.1}); });
    compare_optimizer<D>("sgd nesterov", [](auto p) {
        return optim::sgd(p, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
    });
    compare_optimizer<D>("adam", [](auto p) { return optim::adam(p, {.lr = 0.05, .weight_decay = 0.01}); });
    compare_optimizer<D>("adam amsgrad", [](auto p) { return optim::adam(p, {.lr = 0.05, .amsgrad = true}); });
    compare_optimizer<D>("adamw", [](auto p) { return optim::adamw(p, {.lr = 0.05, .weight_decay = 0.1}); });
    compare_optimizer<D>("adamw amsgrad",
                         [](auto p) { return optim::adamw(p, {.lr = 0.05, .weight_decay = 0.1, .amsgrad = true}); });
    compare_optimizer<D>("adagrad", [](auto p) {
        return optim::adagrad(p, {.lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.01, .initial_accumulator_value = 0.1});
    });
    compare_optimizer<D>("rmsprop", [](auto p) { return optim::rmsprop(p, {.lr = 0.01}); });
    compare_optimizer<D>("rmsprop centered momentum", [](auto p) {
        return optim::rmsprop(p, {.lr = 0.01, .weight_decay = 0.01, .momentum = 0.9, .centered = true});
    });
}

BOOST_AUTO_TEST_CASE_TEMPLATE(optimizer_state_lives_on_the_device_and_saves_through_the_host, D,
                              device_suite::subset) {
    using namespace device_suite;
    auto p = make_params<D>();
    auto opt = xgrad::optim::adam(p, {.lr = 0.05, .amsgrad = true});
    static_assert(std::is_same_v<decltype(opt), xgrad::optim::adam<float, D>>);
    for (int s = 0; s < 3; ++s) {
        gradients(p, s);
        opt.step();
    }
    const auto* st = opt.state(p[0]);
    BOOST_TEST_REQUIRE(st != nullptr);
    BOOST_TEST(st->step == 3);
    const xgrad::tensor<float, D>* m = st->find("exp_avg");  // a device tensor
    BOOST_TEST_REQUIRE(m != nullptr);

    // the state dictionary holds host copies, which a fresh optimizer on the device (or on the
    // CPU) loads; both then continue exactly like the original
    const auto d = opt.state_dict();
    const auto* saved = d.tensor_named("state.0.exp_avg");
    BOOST_TEST_REQUIRE(saved != nullptr);
    BOOST_TEST(saved->to_vector() == host(*m));
    BOOST_TEST(d.tensors.size() == 6u);  // exp_avg, exp_avg_sq, max_exp_avg_sq of 2 parameters

    auto q = make_params<D>();
    for (std::size_t i = 0; i < q.size(); ++i) q[i].value().assign(p[i].value());
    auto resumed = xgrad::optim::adam(q, {});
    resumed.load_state_dict(d);
    BOOST_TEST(resumed.options(0).amsgrad);
    gradients(p, 3);
    opt.step();
    gradients(q, 3);
    resumed.step();
    for (std::size_t i = 0; i < p.size(); ++i)
        BOOST_TEST(host(q[i].value()) == host(p[i].value()), "parameter " << i << " after resuming");

    // checkpoint files: save on the device, load on the reference (the CPU in the Thrust suite)
    const auto file = std::filesystem::temp_directory_path() / ("xgrad_train_opt_" + std::string(D::name) + ".st");
    xgrad::save(opt, file);
    auto c = make_params<reference>();
    auto on_ref = xgrad::optim::adam(c, {});
    xgrad::load(on_ref, file);
    std::filesystem::remove(file);
    BOOST_TEST(host(*on_ref.state(c[1])->find("max_exp_avg_sq")) ==
               host(*opt.state(p[1])->find("max_exp_avg_sq")));
    BOOST_TEST(on_ref.state(c[1])->step == 4);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(gradient_clipping_matches_the_reference, D, device_suite::full) {
    using namespace device_suite;
    for (double norm_type : {2.0, 1.0, 3.0, std::numeric_limits<double>::infinity()}) {
        auto pr = make_params<reference>();
        auto pd = make_params<D>();
        gradients(pr, 0);
        gradients(pd, 0);
        const double nr = xgrad::optim::clip_grad_norm_(pr, 0.5, norm_type);
        const double nd = xgrad::optim::clip_grad_norm_(pd, 0.5, norm_type);
        const std::string what = "clip_grad_norm_ of order " + std::to_string(norm_type);
        BOOST_TEST(std::abs(nd - nr) <= 1e-5 * nr, what << ": norm " << nd << ", want " << nr);
        BOOST_TEST(nd > 0.5);  // so the gradients were scaled
        for (std::size_t i = 0; i < pr.size(); ++i)
            expect_near(host(pd[i].grad()), host(pr[i].grad()), what + ", gradient " + std::to_string(i));
        BOOST_TEST(std::abs(xgrad::optim::grad_norm(pd, norm_type) - 0.5) < 1e-4, what << " after clipping");
    }
    auto pd = make_params<D>();
    gradients(pd, 1);
    const auto before = host(pd[0].grad());
    xgrad::optim::clip_grad_value_(pd, 0.3);
    const auto after = host(pd[0].grad());
    for (std::size_t i = 0; i < before.size(); ++i) BOOST_TEST(after[i] == std::clamp(before[i], -0.3f, 0.3f));
}

BOOST_AUTO_TEST_CASE_TEMPLATE(fused_assignment_runs_on_the_device, D, device_suite::full) {
    using namespace device_suite;
    const auto a = xgrad::to<D>(values({4, 6}, 5).clone());
    const auto b = xgrad::to<D>(values({4, 6}, 6).clone());
    const auto row = xgrad::to<D>(values({6}, 7));
    const auto a0 = host(a), b0 = host(b), r = host(row);
    // in order: the second expression reads the new a; a broadcast operand and a reduction inside
    xgrad::assign(xgrad::into(a, a * 2.0f + row), xgrad::into(b, b - a * xgrad::sum(row)));
    float rs = 0;
    for (float v : r) rs += v;
    std::vector<float> wa(24), wb(24);
    for (std::size_t i = 0; i < 24; ++i) {
        wa[i] = a0[i] * 2.0f + r[i % 6];
        wb[i] = b0[i] - wa[i] * rs;
    }
    expect_near(host(a), wa, "first destination");
    expect_near(host(b), wb, "second destination", 1e-5, 1e-5);
    // a strided destination (a transposed view) and the one-destination form
    const auto t = xgrad::zeros<float, D>({6, 4});
    xgrad::assign(t.transpose(0, 1), a + 1.0f);
    std::vector<float> wt(24);
    for (std::size_t i = 0; i < 4; ++i)
        for (std::size_t j = 0; j < 6; ++j) wt[j * 4 + i] = wa[i * 6 + j] + 1.0f;
    expect_near(host(t), wt, "transposed destination");
    BOOST_CHECK_THROW(xgrad::assign(xgrad::into(a, a), xgrad::into(row, row)), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::assign(row, a), xgrad::shape_error);
}

#endif  // part 1

// --- models -----------------------------------------------------------------------------------

namespace device_suite {

/// A user layer of elementwise work only, templated on its device like the library's layers:
/// y = tanh(x * scale + shift) per feature.
template <class T = float, class Device = cpu>
struct feature_gate : xgrad::nn::module<feature_gate<T, Device>> {
    xgrad::parameter<T, Device> scale, shift;  // {F}

    explicit feature_gate(std::size_t features, xgrad::rng& gen = xgrad::nn::default_generator())
        : scale(xgrad::to<Device>(xgrad::param(xgrad::uniform<T>({features}, gen, T(0.5), T(1.5))))),
          shift(xgrad::to<Device>(xgrad::param(xgrad::uniform<T>({features}, gen, T(-0.5), T(0.5))))) {}
    template <class From>
    explicit feature_gate(const feature_gate<T, From>& o)
        : scale(xgrad::to<Device>(o.scale)), shift(xgrad::to<Device>(o.shift)) {}

    template <class X>
    auto forward(X&& x) {
        return xgrad::tanh(std::forward<X>(x) * scale + shift);
    }
    XGRAD_MODULE(scale, shift)
};

/// y = sum(x * w, 1) + b: {N, F} -> {N}. No converting constructor: moved with copy_state.
template <class T = float, class Device = cpu>
struct readout : xgrad::nn::module<readout<T, Device>> {
    xgrad::parameter<T, Device> w, b;
    xgrad::tensor<T, Device> calls;  // a buffer
    explicit readout(std::size_t features, xgrad::rng& gen = xgrad::nn::default_generator())
        : w(xgrad::to<Device>(xgrad::param(xgrad::uniform<T>({features}, gen, T(-1), T(1))))),
          b(xgrad::param(xgrad::zeros<T, Device>({1}))),
          calls(xgrad::zeros<T, Device>({1})) {}

    template <class X>
    auto forward(X&& x) {
        return xgrad::sum(std::forward<X>(x) * w, 1) + b;
    }
    XGRAD_MODULE(w, b, calls)
};

template <class Device>
using gate_model = xgrad::nn::sequential<feature_gate<float, Device>, feature_gate<float, Device>>;

/// Regression batches {16, 6} -> {16} for fit: y = sin(3 x0) + x1 x2 - x5.
inline std::vector<std::pair<xgrad::tensor<float>, xgrad::tensor<float>>> regression_batches(std::size_t n) {
    std::vector<std::pair<xgrad::tensor<float>, xgrad::tensor<float>>> out;
    for (std::size_t k = 0; k < n; ++k) {
        auto x = values({16, 6}, 300 + k);
        auto y = xgrad::empty<float>({16});
        for (std::size_t i = 0; i < 16; ++i) y(i) = std::sin(3 * x(i, 0)) + x(i, 1) * x(i, 2) - x(i, 5);
        out.emplace_back(x, y);
    }
    return out;
}

template <class M>
std::vector<std::pair<std::string, std::vector<float>>> host_state(M& m) {
    std::vector<std::pair<std::string, std::vector<float>>> out;
    for (auto& [n, p] : xgrad::nn::named_parameters(m)) out.emplace_back(n, host(p.value()));
    for (auto& [n, t] : xgrad::nn::named_buffers(m)) out.emplace_back(n, host(t));
    return out;
}

}  // namespace device_suite

#if !defined(XGRAD_TRAIN_SUITE_PART) || XGRAD_TRAIN_SUITE_PART == 1

BOOST_AUTO_TEST_CASE_TEMPLATE(library_layers_move_to_the_device_and_back, D, device_suite::subset) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    nn::manual_seed(11);
    auto model = nn::sequential(nn::linear(4, 3), nn::relu(), nn::batch_norm1d(3), nn::dropout(0.25),
                                nn::layer_norm(3), nn::sequential(nn::conv2d(2, 3, 3, {.bias = false})));
    model.template get<2>().running_mean = values({3}, 12);  // not the defaults
    nn::eval(model);
    auto dev = xgrad::to<D>(model);
    static_assert(std::is_same_v<nn::device_type_of<decltype(dev)>, D>);
    static_assert(std::is_same_v<decltype(dev.template get<0>()), nn::linear<float, D>&>);
    static_assert(std::is_same_v<decltype(dev.template get<1>()), nn::relu&>);
    BOOST_TEST(!dev.template get<2>().is_training());  // the mode moves too
    const auto want = host_state(model);
    const auto got = host_state(dev);
    BOOST_TEST_REQUIRE(got.size() == want.size());
    BOOST_TEST(got.size() == 9u);  // 0.weight, 0.bias, 2.weight, 2.bias, 4.weight, 4.bias, 5.0.weight + 2 buffers
    for (std::size_t i = 0; i < got.size(); ++i) {
        BOOST_TEST(got[i].first == want[i].first);
        BOOST_TEST(got[i].second == want[i].second, got[i].first);
    }
    BOOST_TEST(nn::num_parameters(dev) == nn::num_parameters(model));

    // copies, not shared storage: a change on the device leaves the CPU model alone
    dev.template get<0>().weight.value().fill(2.0f);
    BOOST_TEST(model.template get<0>().weight.value().to_vector() != std::vector<float>(12, 2.0f));
    auto back = xgrad::to<cpu>(dev);
    static_assert(std::is_same_v<decltype(back), decltype(model)>);
    BOOST_TEST(back.template get<0>().weight.value().to_vector() == std::vector<float>(12, 2.0f));
    BOOST_TEST(back.template get<2>().running_mean.to_vector() == model.template get<2>().running_mean.to_vector());

    // built on the device directly with the same seed: the CPU model's initial values
    nn::manual_seed(5);
    nn::linear<float> lc(7, 5);
    nn::embedding<float> ec(10, 4);
    nn::manual_seed(5);
    nn::linear<float, D> ld(7, 5);
    nn::embedding<float, D> ed(10, 4);
    BOOST_TEST(host(ld.weight.value()) == lc.weight.value().to_vector());
    BOOST_TEST(host(ld.bias.value()) == lc.bias.value().to_vector());
    BOOST_TEST(host(ed.weight.value()) == ec.weight.value().to_vector());
    BOOST_TEST(host(xgrad::to<D>(ec).weight.value()) == ec.weight.value().to_vector());
}

BOOST_AUTO_TEST_CASE_TEMPLATE(user_layers_move_by_constructor_or_by_copy_state, D, device_suite::subset) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    nn::manual_seed(21);
    gate_model<cpu> model(feature_gate<float>(6), feature_gate<float>(6));
    auto dev = xgrad::to<D>(model);  // feature_gate has a converting constructor
    static_assert(std::is_same_v<decltype(dev), gate_model<D>>);
    BOOST_TEST((host_state(dev) == host_state(model)));

    readout<float> rc(6);
    rc.b.value().fill(0.25f);
    rc.calls.fill(3);
    readout<float, D> rd(6);  // other random values
    BOOST_TEST(host(rd.w.value()) != rc.w.value().to_vector());
    nn::copy_state(rd, rc);
    BOOST_TEST((host_state(rd) == host_state(rc)));
    readout<float, D> wrong(5);
    BOOST_CHECK_THROW(nn::copy_state(wrong, rc), xgrad::shape_error);
    BOOST_CHECK_THROW(nn::copy_state(rd, model), xgrad::value_error);

    // forward on the device gives the reference's outputs
    auto mr = xgrad::to<reference>(model);
    readout<float, reference> rr(6);
    nn::copy_state(rr, rc);
    const auto x = values({8, 6}, 22);
    const auto yr = xgrad::eval(rr(mr(xgrad::to<reference>(x))));
    const auto yd = xgrad::eval(rd(dev(xgrad::to<D>(x))));
    static_assert(std::is_same_v<typename decltype(yd)::device_type, D>);
    expect_near(host(yd), host(yr), "outputs", 1e-5, 1e-6);
}

// the reference is the CPU in the Thrust suite
BOOST_AUTO_TEST_CASE_TEMPLATE(checkpoint_of_a_device_model_loads_into_a_cpu_model, D, device_suite::subset) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    nn::manual_seed(41);
    auto dev = xgrad::to<D>(nn::sequential(feature_gate<float>(6), feature_gate<float>(6)));
    auto opt = xgrad::optim::sgd(dev.parameters(), {.lr = 0.1, .momentum = 0.9});
    const auto x = values({8, 6}, 42);
    const auto xd = xgrad::to<D>(x);
    for (int s = 0; s < 3; ++s) {
        opt.zero_grad();
        xgrad::backward(xgrad::mean(xgrad::square(dev(xd))));
        opt.step();
    }
    const auto file = std::filesystem::temp_directory_path() / ("xgrad_train_model_" + std::string(D::name) + ".st");
    xgrad::save(dev, file);
    nn::manual_seed(99);  // other initial values
    auto ref_model = nn::sequential(feature_gate<float, reference>(6), feature_gate<float, reference>(6));
    const auto report = xgrad::load(ref_model, file);
    BOOST_TEST(report.loaded == 4u);
    BOOST_TEST((host_state(ref_model) == host_state(dev)));  // bit for bit
    const auto yr = host(xgrad::eval(ref_model(xgrad::to<reference>(x))));
    expect_near(host(xgrad::eval(dev(xd))), yr, "outputs after loading");

    // and back into another device model
    nn::manual_seed(98);
    auto dev2 = xgrad::to<D>(nn::sequential(feature_gate<float>(6), feature_gate<float>(6)));
    xgrad::load(dev2, file);
    std::filesystem::remove(file);
    BOOST_TEST((host_state(dev2) == host_state(dev)));
}

#endif  // part 1

#if !defined(XGRAD_TRAIN_SUITE_PART) || XGRAD_TRAIN_SUITE_PART == 2

BOOST_AUTO_TEST_CASE_TEMPLATE(fit_trains_a_device_model_like_the_reference, D, device_suite::full) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    auto batches = regression_batches(6);
    struct run {
        std::vector<double> running;  // the running loss after every step
        xgrad::history h;
        double eval_loss = 0;
        std::vector<float> predicted, weights;
    };
    auto train = [&]<class Dev>(std::type_identity<Dev>) {
        nn::manual_seed(31);  // built on the device with the same seed: the same initial values
        auto model = nn::sequential(feature_gate<float, Dev>(6), feature_gate<float, Dev>(6), readout<float, Dev>(6));
        auto opt = xgrad::optim::adam(model.parameters(), {.lr = 0.05});
        run r;
        auto record = xgrad::callbacks::lambda(
            {.on_batch_end = [&](xgrad::train_context&, std::size_t, const xgrad::logs& l) {
                r.running.push_back(l.at("loss"));
            }});
        r.h = xgrad::fit(model, opt, nn::mse_loss(), batches,
                         {.epochs = 4, .validation = &batches, .callbacks = {record}, .clip_grad_norm = 5.0,
                          .progress = false});
        r.eval_loss = xgrad::evaluate(model, nn::mse_loss(), batches)["loss"];
        r.predicted = xgrad::predict(model, batches[0].first, {.batch_size = 5, .probabilities = false}).to_vector();
        r.weights = host(model.template get<0>().scale.value());
        return r;
    };
    const run want = train(std::type_identity<reference>{});
    const run got = train(std::type_identity<D>{});
    BOOST_TEST_REQUIRE(got.running.size() == 24u);
    BOOST_TEST_REQUIRE(want.running.size() == 24u);
    for (std::size_t i = 0; i < got.running.size(); ++i)
        BOOST_TEST(std::abs(got.running[i] - want.running[i]) <= 1e-4 * want.running[i],
                   "step " << i << ": loss " << got.running[i] << ", want " << want.running[i]);
    for (std::size_t e = 0; e < 4; ++e) {
        BOOST_TEST(std::abs(got.h["val_loss"][e] - want.h["val_loss"][e]) <= 1e-4 * want.h["val_loss"][e]);
    }
    BOOST_TEST(got.h["loss"].back() < 0.5 * got.h["loss"].front());  // it learns
    BOOST_TEST(std::abs(got.eval_loss - want.eval_loss) <= 1e-4 * want.eval_loss);
    expect_near(got.predicted, want.predicted, "predict", 1e-4, 1e-5);
    expect_near(got.weights, want.weights, "trained weights", 1e-4, 1e-5);
}

// --- models with barrier ops: linear, conv2d, pooling, cross_entropy -------------------------

namespace device_suite {
/// n samples of {shape...} inputs with labels in [0, classes): the label is the position of
/// the largest of the first `classes` input elements, so that a model can learn it.
inline xgrad::data::tensor_dataset<float> classification_set(std::size_t n, shape_t sample, std::size_t classes,
                                                             std::uint64_t seed) {
    shape_t s{n};
    s.insert(s.end(), sample.begin(), sample.end());
    auto x = values(s, seed);
    auto y = xgrad::empty<std::int64_t>({n});
    const std::size_t per = x.size() / n;
    for (std::size_t i = 0; i < n; ++i) {
        const float* row = x.data() + i * per;
        y(i) = static_cast<std::int64_t>(std::max_element(row, row + classes) - row);
    }
    return {x, y};
}
}  // namespace device_suite

BOOST_AUTO_TEST_CASE_TEMPLATE(an_mlp_fits_with_cross_entropy_like_the_reference, D, device_suite::full) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    const auto set = classification_set(96, {10}, 4, 61);
    struct run {
        std::vector<double> running;
        xgrad::history h;
        std::vector<float> probs;
    };
    auto train = [&]<class Dev>(std::type_identity<Dev>) {
        nn::manual_seed(62);
        auto model = xgrad::to<Dev>(nn::sequential(nn::linear(10, 32), nn::relu(), nn::linear(32, 4)));
        auto opt = xgrad::optim::sgd(model.parameters(), {.lr = 0.2, .momentum = 0.9});
        auto loader = xgrad::data::loader(set, {.batch_size = 16});
        run r;
        auto record = xgrad::callbacks::lambda(
            {.on_batch_end = [&](xgrad::train_context&, std::size_t, const xgrad::logs& l) {
                r.running.push_back(l.at("loss"));
            }});
        r.h = xgrad::fit(model, opt, nn::cross_entropy(), loader,
                         {.epochs = 5, .validation = &loader, .metrics = {xgrad::metrics::accuracy()},
                          .callbacks = {record}, .progress = false});
        r.probs = xgrad::predict(model, set.inputs().slice(0, 0, 8)).to_vector();
        return r;
    };
    const run want = train(std::type_identity<reference>{});
    const run got = train(std::type_identity<D>{});
    BOOST_TEST_REQUIRE(got.running.size() == 30u);
    for (std::size_t i = 0; i < got.running.size(); ++i)
        BOOST_TEST(std::abs(got.running[i] - want.running[i]) <= 1e-4 * want.running[i],
                   "step " << i << ": loss " << got.running[i] << ", want " << want.running[i]);
    BOOST_TEST(got.h["accuracy"] == want.h["accuracy"], boost::test_tools::per_element());
    BOOST_TEST(got.h["val_accuracy"].back() > 0.6);  // it learns
    BOOST_TEST(got.h["loss"].back() < 0.7 * got.h["loss"].front());
    expect_near(got.probs, want.probs, "predicted probabilities", 1e-4, 1e-5);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(a_small_cnn_trains_on_the_device_like_the_reference, D, device_suite::full) {
    using namespace device_suite;
    namespace nn = xgrad::nn;
    const auto set = classification_set(8, {1, 8, 8}, 3, 71);
    nn::manual_seed(72);
    auto cpu_model = nn::sequential(nn::conv2d(1, 4, 3, {.padding = 1}), nn::relu(), nn::max_pool2d(2),
                                    nn::conv2d(4, 6, 3), nn::relu(), nn::flatten(), nn::linear(6 * 2 * 2, 3));
    auto steps = [&](auto model) {
        using Dev = xgrad::nn::device_type_of<decltype(model)>;
        auto opt = xgrad::optim::adam(model.parameters(), {.lr = 0.05});
        const auto x = xgrad::to<Dev>(set.inputs());
        const auto y = xgrad::to<Dev>(set.labels());
        std::vector<float> losses;
        for (int s = 0; s < 10; ++s) {
            opt.zero_grad();
            losses.push_back(static_cast<float>(xgrad::backward(nn::cross_entropy()(model(x), y))));
            opt.step();
        }
        return std::pair{losses, host_state(model)};
    };
    auto on_reference = xgrad::to<reference>(cpu_model);  // on the CPU: shares cpu_model's parameters
    auto on_device = xgrad::to<D>(cpu_model);              // so copy before training
    const auto [want, want_state] = steps(on_reference);
    const auto [got, got_state] = steps(on_device);
    expect_near(got, want, "losses step by step", 1e-4, 1e-5);
    BOOST_TEST(got.back() < 0.8f * got.front());
    BOOST_TEST_REQUIRE(got_state.size() == want_state.size());
    for (std::size_t i = 0; i < got_state.size(); ++i)
        expect_near(got_state[i].second, want_state[i].second, "trained " + got_state[i].first, 1e-3, 1e-4);
}

#endif  // part 2
