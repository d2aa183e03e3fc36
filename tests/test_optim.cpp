#define BOOST_TEST_MODULE optim
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <xgrad/optim.hpp>
#include <xgrad/xgrad.hpp>

#include "optim_reference.hpp"

namespace optim = xgrad::optim;
using optim_test::check_close;
using optim_test::reference;
using xgrad::parameter;
using xgrad::tensor;

namespace {

constexpr int steps = 10;

template <class T>
std::vector<parameter<T>> reference_params() {
    std::vector<parameter<T>> ps;
    for (int k = 0; k < 3; ++k) ps.push_back(xgrad::param(reference::get().at<T>("param." + std::to_string(k)),
                                                          "p" + std::to_string(k)));
    return ps;
}

/// Gives every parameter the reference gradient of step s through a real backward pass
/// (d/dp sum(p * g) = g exactly); a parameter without a gradient at s gets none.
template <class T>
void set_grads(const std::vector<parameter<T>>& ps, int s) {
    for (std::size_t k = 0; k < ps.size(); ++k) {
        ps[k].zero_grad();
        const std::string name = "grad." + std::to_string(s) + "." + std::to_string(k);
        if (reference::get().has(name)) xgrad::backward(xgrad::sum(ps[k] * reference::get().at<T>(name)));
    }
}

/// Ten steps of the optimizer make(params) against PyTorch: float64 after steps 1, 2 and 10,
/// float32 after step 10. Both to 1e-6 relative (float32 with an absolute floor of 1e-6, its
/// rounding of values near zero).
template <class T, class Make>
void check_against_pytorch(const std::string& name, Make make) {
    auto ps = reference_params<T>();
    auto opt = make(ps);
    double worst = 0;
    for (int s = 0; s < steps; ++s) {
        set_grads(ps, s);
        opt.step();
        const int done = s + 1;
        const bool f64 = std::is_same_v<T, double>;
        if (f64 ? (done == 1 || done == 2 || done == 10) : done == 10)
            for (int k = 0; k < 3; ++k) {
                const std::string ref = name + (f64 ? ".f64" : ".f32") + ".step" + std::to_string(done) + "." +
                                        std::to_string(k);
                worst = std::max(worst, check_close(ps[k].value(), reference::get().at(ref), 1e-6,
                                                    f64 ? 1e-12 : 1e-6, ref));
            }
    }
    BOOST_TEST_MESSAGE(name << (std::is_same_v<T, double> ? " f64" : " f32") << ": largest relative error "
                            << worst);
}

}  // namespace

#define PYTORCH_CASE(name, ...)                                \
    BOOST_AUTO_TEST_CASE(name) {                               \
        auto make = __VA_ARGS__;                               \
        check_against_pytorch<double>(#name, make);            \
        check_against_pytorch<float>(#name, make);             \
    }

// --- ten steps against PyTorch ------------------------------------------------------------------
PYTORCH_CASE(sgd_plain, [](auto ps) { return optim::sgd(ps, {.lr = 0.1}); })
PYTORCH_CASE(sgd_weight_decay, [](auto ps) { return optim::sgd(ps, {.lr = 0.1, .weight_decay = 0.01}); })
PYTORCH_CASE(sgd_momentum, [](auto ps) { return optim::sgd(ps, {.lr = 0.05, .momentum = 0.9}); })
PYTORCH_CASE(sgd_dampening, [](auto ps) {
    return optim::sgd(ps, {.lr = 0.05, .momentum = 0.9, .dampening = 0.3, .weight_decay = 0.02});
})
PYTORCH_CASE(sgd_nesterov, [](auto ps) {
    return optim::sgd(ps, {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
})
PYTORCH_CASE(sgd_groups, [](auto ps) {
    auto o = optim::sgd(decltype(ps){ps[0], ps[1]}, {.lr = 0.1, .momentum = 0.9});
    o.add_param_group({ps[2]}, {.lr = 0.01});
    return o;
})
PYTORCH_CASE(adam, [](auto ps) { return optim::adam(ps, {.lr = 0.01}); })
PYTORCH_CASE(adam_weight_decay, [](auto ps) {
    return optim::adam(ps, {.lr = 0.01, .betas = {0.8, 0.95}, .eps = 1e-6, .weight_decay = 0.1});
})
PYTORCH_CASE(adam_amsgrad, [](auto ps) { return optim::adam(ps, {.lr = 0.02, .weight_decay = 0.05, .amsgrad = true}); })
PYTORCH_CASE(adamw, [](auto ps) { return optim::adamw(ps, {.lr = 0.01}); })
PYTORCH_CASE(adamw_amsgrad, [](auto ps) { return optim::adamw(ps, {.lr = 0.01, .weight_decay = 0.1, .amsgrad = true}); })
PYTORCH_CASE(adagrad, [](auto ps) { return optim::adagrad(ps, {.lr = 0.1}); })
PYTORCH_CASE(adagrad_decay, [](auto ps) {
    return optim::adagrad(
        ps, {.lr = 0.1, .lr_decay = 0.05, .weight_decay = 0.01, .initial_accumulator_value = 0.5, .eps = 1e-8});
})
PYTORCH_CASE(rmsprop, [](auto ps) { return optim::rmsprop(ps, {.lr = 0.01}); })
PYTORCH_CASE(rmsprop_centered, [](auto ps) { return optim::rmsprop(ps, {.lr = 0.01, .centered = true}); })
PYTORCH_CASE(rmsprop_momentum, [](auto ps) { return optim::rmsprop(ps, {.lr = 0.01, .momentum = 0.5}); })
PYTORCH_CASE(rmsprop_all, [](auto ps) {
    return optim::rmsprop(ps, {.lr = 0.01, .alpha = 0.9, .weight_decay = 0.01, .momentum = 0.9, .centered = true});
})

// --- clipping against PyTorch -------------------------------------------------------------------
namespace {
template <class T, class F>
void check_clip(const std::string& name, F clip) {
    auto ps = reference_params<T>();
    set_grads(ps, 0);
    const double norm = clip(ps);
    const double tol = std::is_same_v<T, double> ? 1e-12 : 1e-6;
    if (reference::get().has("clip." + name + ".norm")) {
        const double expected = reference::get().at("clip." + name + ".norm").item();
        BOOST_TEST(std::fabs(norm - expected) <= 1e-6 * expected, name << ": norm " << norm << " vs " << expected);
    }
    for (int k = 0; k < 3; ++k) {
        const std::string ref = "clip." + name + "." + std::to_string(k);
        check_close(ps[k].grad(), reference::get().at(ref), 1e-6, tol, ref);
    }
}
template <class F>
void check_clip_both(const std::string& name, F clip) {
    check_clip<double>(name, clip);
    check_clip<float>(name, clip);
}
}  // namespace

BOOST_AUTO_TEST_CASE(clip_grad_norm_matches_pytorch) {
    check_clip_both("norm2", [](const auto& ps) { return optim::clip_grad_norm_(ps, 1.0); });
    check_clip_both("norm2_large", [](const auto& ps) { return optim::clip_grad_norm_(ps, 100.0); });
    check_clip_both("norm1", [](const auto& ps) { return optim::clip_grad_norm_(ps, 2.0, 1.0); });
    check_clip_both("norm3", [](const auto& ps) { return optim::clip_grad_norm_(ps, 1.5, 3.0); });
    check_clip_both("norm_inf", [](const auto& ps) { return optim::clip_grad_norm_(ps, 0.5, INFINITY); });
    check_clip_both("value", [](const auto& ps) {
        optim::clip_grad_value_(ps, 0.5);
        return 0.0;
    });
}

BOOST_AUTO_TEST_CASE(clip_edge_cases) {
    auto ps = reference_params<double>();
    // no gradients at all: norm 0, nothing to scale
    BOOST_TEST(optim::clip_grad_norm_(ps, 1.0) == 0.0);
    set_grads(ps, 3);  // parameter 2 has no gradient at step 3: it is left out of the norm
    double expected = 0;
    for (int k = 0; k < 2; ++k)
        for (double g : reference::get().at("grad.3." + std::to_string(k)).to_vector()) expected += g * g;
    BOOST_TEST(optim::grad_norm(ps) == std::sqrt(expected), boost::test_tools::tolerance(1e-12));
    // a non-finite gradient
    ps[0].zero_grad();
    xgrad::backward(xgrad::sum(ps[0] * xgrad::full<double>(ps[0].shape(), INFINITY)));
    BOOST_CHECK_THROW(optim::clip_grad_norm_(ps, 1.0, 2.0, true), xgrad::value_error);
    BOOST_CHECK_THROW(optim::clip_grad_norm_(ps, -1.0), xgrad::value_error);
    BOOST_CHECK_THROW(optim::clip_grad_norm_(ps, 1.0, 0.0), xgrad::value_error);
    BOOST_CHECK_THROW(optim::clip_grad_value_(ps, NAN), xgrad::value_error);
}

// --- semantics ----------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(skips_frozen_parameters_and_missing_gradients) {
    auto ps = reference_params<float>();
    const auto before1 = ps[1].value().to_vector();
    const auto before2 = ps[2].value().to_vector();
    auto opt = optim::adam(ps, {.lr = 0.1});
    ps[1].requires_grad(false);
    set_grads(ps, 3);  // p2 gets no gradient, p1 is frozen
    opt.step();
    BOOST_TEST(ps[1].value().to_vector() == before1);
    BOOST_TEST(ps[2].value().to_vector() == before2);
    BOOST_TEST(opt.state(ps[0])->step == 1);
    BOOST_TEST(opt.state(ps[1])->step == 0);
    BOOST_TEST(opt.state(ps[2])->step == 0);
    BOOST_TEST(opt.state(ps[2])->buffers.empty());
    // zero_grad clears everything: the next step changes nothing
    const auto before0 = ps[0].value().to_vector();
    opt.zero_grad();
    opt.step();
    BOOST_TEST(ps[0].value().to_vector() == before0);
}

BOOST_AUTO_TEST_CASE(learning_rates_and_groups) {
    auto ps = reference_params<float>();
    auto opt = optim::sgd(std::vector{ps[0]}, {.lr = 0.5, .momentum = 0.9});
    opt.add_param_group({ps[1]});
    opt.add_param_group({ps[2]}, {.lr = 0.25});
    BOOST_TEST(opt.num_param_groups() == 3u);
    BOOST_TEST(opt.lr(1) == 0.5);
    BOOST_TEST(opt.options(1).momentum == 0.9);  // the defaults
    BOOST_TEST(opt.options(2).momentum == 0.0);  // its own options
    opt.set_lr(2, 0.125);
    BOOST_TEST(opt.lr(2) == 0.125);
    BOOST_CHECK_THROW(opt.set_lr(0, -1.0), xgrad::value_error);
    BOOST_CHECK_THROW(opt.set_options(0, {.lr = NAN}), xgrad::value_error);
    BOOST_CHECK_THROW(opt.add_param_group({ps[0]}), xgrad::value_error);  // already optimized
    BOOST_CHECK_THROW(opt.add_param_group({}), xgrad::value_error);
    BOOST_TEST(opt.lr(0) == 0.5);
}

BOOST_AUTO_TEST_CASE(bad_hyper_parameters_throw_at_construction) {
    auto ps = reference_params<float>();
    using xgrad::value_error;
    BOOST_CHECK_THROW(optim::sgd(ps, {.lr = -0.1}), value_error);
    BOOST_CHECK_THROW(optim::sgd(ps, {.lr = NAN}), value_error);
    BOOST_CHECK_THROW(optim::sgd(ps, {.momentum = -0.9}), value_error);
    BOOST_CHECK_THROW(optim::sgd(ps, {.weight_decay = -1}), value_error);
    BOOST_CHECK_THROW(optim::sgd(ps, {.dampening = NAN}), value_error);
    BOOST_CHECK_THROW(optim::sgd(ps, {.nesterov = true}), value_error);  // needs momentum
    BOOST_CHECK_THROW(optim::sgd(ps, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}), value_error);
    BOOST_CHECK_THROW(optim::adam(ps, {.lr = -1e-3}), value_error);
    BOOST_CHECK_THROW(optim::adam(ps, {.betas = {1.0, 0.999}}), value_error);
    BOOST_CHECK_THROW(optim::adam(ps, {.betas = {0.9, NAN}}), value_error);
    BOOST_CHECK_THROW(optim::adam(ps, {.eps = -1e-8}), value_error);
    BOOST_CHECK_THROW(optim::adamw(ps, {.weight_decay = NAN}), value_error);
    BOOST_CHECK_THROW(optim::adagrad(ps, {.lr_decay = -1}), value_error);
    BOOST_CHECK_THROW(optim::adagrad(ps, {.initial_accumulator_value = -0.1}), value_error);
    BOOST_CHECK_THROW(optim::rmsprop(ps, {.alpha = -0.5}), value_error);
    BOOST_CHECK_THROW(optim::rmsprop(ps, {.momentum = NAN}), value_error);
    BOOST_CHECK_THROW(optim::rmsprop(ps, {.eps = INFINITY}), value_error);
    BOOST_CHECK_THROW(optim::adam(std::vector<parameter<float>>{}), value_error);
    BOOST_CHECK_THROW(optim::adam(std::vector{ps[0], ps[0]}), value_error);
    try {
        optim::adam(ps, {.lr = -0.5});
    } catch (const xgrad::value_error& e) {
        BOOST_TEST(std::string(e.what()) == "adam: lr must be finite and >= 0, got -0.5");
    }
    BOOST_TEST(optim::adamw(ps).options(0).weight_decay == 1e-2);  // AdamW's own default
}

// --- state --------------------------------------------------------------------------------------
BOOST_AUTO_TEST_CASE(state_dict_names_like_pytorch) {
    auto ps = reference_params<float>();
    auto opt = optim::adam(ps, {.lr = 0.01, .amsgrad = true});
    set_grads(ps, 0);
    opt.step();
    const auto d = opt.state_dict();
    BOOST_TEST(d.tensors.size() == 9u);
    BOOST_TEST(d.tensor_named("state.0.exp_avg") != nullptr);
    BOOST_TEST(d.tensor_named("state.1.exp_avg_sq") != nullptr);
    BOOST_TEST(d.tensor_named("state.2.max_exp_avg_sq") != nullptr);
    BOOST_TEST(d.tensor_named("state.2.exp_avg")->shape() == ps[2].shape());
    BOOST_TEST(*d.scalar_named("state.1.step") == 1.0);
    BOOST_TEST(*d.scalar_named("param_groups.0.lr") == 0.01);
    BOOST_TEST(*d.scalar_named("param_groups.0.beta2") == 0.999);
    BOOST_TEST(*d.scalar_named("param_groups.0.amsgrad") == 1.0);
    // after one step, m = (1 - beta1) g exactly as PyTorch computes it
    const auto g = reference::get().at<float>("grad.0.0").to_vector();
    const auto m = d.tensor_named("state.0.exp_avg")->to_vector();
    for (std::size_t i = 0; i < g.size(); ++i) BOOST_TEST(m[i] == 0.0f + 0.1f * (g[i] - 0.0f));
}

// A run interrupted after 4 steps and resumed from a state dictionary in a new optimizer over
// copied parameters continues exactly as the uninterrupted run.
template <class Make>
void check_resume(Make make) {
    auto a = reference_params<double>();
    auto b = reference_params<double>();
    auto opt_a = make(a);
    for (int s = 0; s < 4; ++s) {
        set_grads(a, s);
        opt_a.step();
    }
    auto saved = opt_a.state_dict();
    for (auto& [n, t] : saved.tensors) t = t.clone();
    for (int k = 0; k < 3; ++k) b[k].value().assign(a[k].value());
    auto opt_b = make(b);
    opt_b.load_state_dict(saved);
    for (int s = 4; s < steps; ++s) {
        set_grads(a, s);
        set_grads(b, s);
        opt_a.step();
        opt_b.step();
    }
    for (int k = 0; k < 3; ++k) BOOST_TEST(a[k].value().to_vector() == b[k].value().to_vector());
}

BOOST_AUTO_TEST_CASE(state_dict_round_trip) {
    check_resume([](auto ps) { return optim::sgd(ps, {.lr = 0.05, .momentum = 0.9, .nesterov = true}); });
    check_resume([](auto ps) { return optim::adam(ps, {.lr = 0.01, .amsgrad = true}); });
    check_resume([](auto ps) { return optim::adamw(ps, {.lr = 0.01}); });
    check_resume([](auto ps) { return optim::adagrad(ps, {.lr = 0.1, .lr_decay = 0.05}); });
    check_resume([](auto ps) { return optim::rmsprop(ps, {.momentum = 0.5, .centered = true}); });
}

BOOST_AUTO_TEST_CASE(load_state_dict_checks) {
    auto ps = reference_params<double>();
    auto opt = optim::adam(ps);
    set_grads(ps, 0);
    opt.step();
    auto d = opt.state_dict();
    // options come back too
    auto other = optim::adam(ps, {.lr = 0.5});
    other.load_state_dict(d);
    BOOST_TEST(other.lr(0) == 1e-3);
    // a tensor of the wrong shape
    auto bad = d;
    bad.tensors[0].second = xgrad::zeros<double>({7});
    BOOST_CHECK_THROW(other.load_state_dict(bad), xgrad::shape_error);
    // fewer parameters than the state has
    auto small = optim::adam(std::vector{ps[0]});
    BOOST_CHECK_THROW(small.load_state_dict(d), xgrad::value_error);
    auto plain = optim::sgd(ps, {.lr = 0.1});  // no buffers: the step counts tell
    set_grads(ps, 1);
    plain.step();
    auto small_sgd = optim::sgd(std::vector{ps[0], ps[1]}, {.lr = 0.1});
    BOOST_CHECK_THROW(small_sgd.load_state_dict(plain.state_dict()), xgrad::value_error);
    // a missing option
    auto missing = d;
    missing.scalars.pop_back();
    BOOST_CHECK_THROW(other.load_state_dict(missing), xgrad::value_error);
}

// --- one fused pass -----------------------------------------------------------------------------
// After the first step created the state, a step allocates no tensor: value, gradient and state
// are read and written in place by one loop per parameter.
BOOST_AUTO_TEST_CASE(steps_allocate_nothing) {
    auto ps = reference_params<float>();
    auto sgd = optim::sgd(ps, {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});
    auto adam = optim::adamw(ps, {.amsgrad = true});
    auto rms = optim::rmsprop(ps, {.momentum = 0.9, .centered = true});
    auto ada = optim::adagrad(ps);
    set_grads(ps, 0);
    sgd.step();
    adam.step();
    rms.step();
    ada.step();
    const auto n0 = xgrad::detail::allocation_count().load();
    sgd.step();
    adam.step();
    rms.step();
    ada.step();
    BOOST_TEST(xgrad::detail::allocation_count().load() == n0);
}

// A parameter large enough to be split across threads updates exactly as on one thread: the
// dense update loop starts thread chunks at multiples of 64 elements, so every element takes
// the same SIMD or scalar path whatever the split.
BOOST_AUTO_TEST_CASE(threaded_update_matches_single_thread) {
    xgrad::rng gen(5);
    const auto w0 = xgrad::randn<float>({300, 301}, gen);
    const auto g = xgrad::randn<float>({300, 301}, gen);
    auto run = [&](std::size_t threads) {
        const std::size_t saved = xgrad::num_threads();
        xgrad::set_num_threads(threads);
        auto p = xgrad::param(w0.clone());
        auto opt = optim::adam(std::vector{p}, {.lr = 0.01, .weight_decay = 0.01});
        for (int s = 0; s < 3; ++s) {
            p.zero_grad();
            xgrad::backward(xgrad::sum(p * g));
            opt.step();
        }
        xgrad::set_num_threads(saved);
        return p.value().to_vector();
    };
    BOOST_TEST(run(1) == run(2));
}

BOOST_AUTO_TEST_CASE(fused_assign_runs_in_order) {
    // per element: m = m + g, then p = p - m uses the new m
    auto m = xgrad::from_vector<double>({1, 2, 3}, {3});
    auto p = xgrad::from_vector<double>({10, 10, 10}, {3});
    auto g = xgrad::from_vector<double>({0.5, 0.25, 0.125}, {3});
    xgrad::assign(xgrad::into(m, m + g), xgrad::into(p, p - m));
    BOOST_TEST(m.to_vector() == (std::vector<double>{1.5, 2.25, 3.125}));
    BOOST_TEST(p.to_vector() == (std::vector<double>{8.5, 7.75, 6.875}));
    // broadcasting source, and a destination shape mismatch
    xgrad::assign(p, xgrad::zeros<double>({1}) + 2.0);
    BOOST_TEST(p.to_vector() == (std::vector<double>{2, 2, 2}));
    BOOST_CHECK_THROW(xgrad::assign(xgrad::into(p, g), xgrad::into(xgrad::zeros<double>({4}), g)),
                      xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::assign(p, xgrad::zeros<double>({2})), xgrad::shape_error);
    // a strided destination (the general engine) and a contiguous one (the dense loop) agree
    auto a = xgrad::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
    auto at = xgrad::zeros<double>({3, 2}).transpose(0, 1);
    auto b = xgrad::zeros<double>({2, 3});
    xgrad::assign(xgrad::into(at, a * 2.0 + 1.0), xgrad::into(a, a - at));
    BOOST_TEST(a.to_vector() == (std::vector<double>{-2, -3, -4, -5, -6, -7}));
    BOOST_TEST(at.to_vector() == (std::vector<double>{3, 5, 7, 9, 11, 13}));
    auto c = xgrad::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
    xgrad::assign(xgrad::into(b, c * 2.0 + 1.0), xgrad::into(c, c - b));
    BOOST_TEST(c.to_vector() == a.to_vector());
}
