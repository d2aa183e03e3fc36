#define BOOST_TEST_MODULE scheduler
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <xgrad/optim/scheduler.hpp>
#include <xgrad/optim/sgd.hpp>

#include "optim_reference.hpp"

namespace optim = xgrad::optim;
using optim_test::reference;

namespace {

// Two groups with base rates 0.1 and 0.02, as in gen_optim_reference.py.
struct two_groups {
    xgrad::parameter<float> p = xgrad::param(xgrad::zeros<float>({1}));
    xgrad::parameter<float> q = xgrad::param(xgrad::zeros<float>({1}));
    optim::sgd<float> opt{std::vector{p}, {.lr = 0.1}};
    two_groups() { opt.add_param_group({q}, {.lr = 0.02}); }
};

/// Row e of the reference holds both groups' rates at epoch e: after construction (e = 0) and
/// after each step(). Rates match to 1e-6 relative (a tiny absolute floor for rates near 0).
template <class S>
void check_rates(const std::string& name, two_groups& g, S& sched, int epochs, const std::vector<double>& metric = {}) {
    const auto ref = reference::get().at("sched." + name + ".lr");
    BOOST_TEST_REQUIRE(ref.shape(0) >= static_cast<std::size_t>(epochs + 1));
    for (int e = 0; e <= epochs; ++e) {
        if (e > 0) {
            if constexpr (std::is_same_v<S, optim::reduce_lr_on_plateau>)
                sched.step(metric[static_cast<std::size_t>(e - 1)]);
            else
                sched.step();
        }
        for (std::size_t k = 0; k < 2; ++k) {
            const double expected = ref(e, k);
            BOOST_TEST(std::fabs(g.opt.lr(k) - expected) <= 1e-6 * expected + 1e-15,
                       name << " epoch " << e << " group " << k << ": " << g.opt.lr(k) << " vs " << expected);
            BOOST_TEST(sched.last_lr()[k] == g.opt.lr(k));
        }
    }
    BOOST_TEST(sched.last_epoch() == epochs);
}

constexpr int epochs = 15;

}  // namespace

BOOST_AUTO_TEST_CASE(step_lr_matches_pytorch) {
    two_groups g;
    optim::step_lr s(g.opt, {.step_size = 3, .gamma = 0.5});
    check_rates("step_lr", g, s, epochs);
}

BOOST_AUTO_TEST_CASE(multi_step_lr_matches_pytorch) {
    two_groups g;
    optim::multi_step_lr s(g.opt, {.milestones = {9, 5, 2, 5}, .gamma = 0.1});  // unsorted, 5 twice
    check_rates("multi_step_lr", g, s, epochs);
}

BOOST_AUTO_TEST_CASE(exponential_lr_matches_pytorch) {
    two_groups g;
    optim::exponential_lr s(g.opt, {.gamma = 0.9});
    check_rates("exponential_lr", g, s, epochs);
}

BOOST_AUTO_TEST_CASE(cosine_annealing_lr_matches_pytorch) {
    two_groups g;
    optim::cosine_annealing_lr s(g.opt, {.t_max = 10, .eta_min = 0.001});
    check_rates("cosine_annealing_lr", g, s, epochs);  // past t_max it rises again, as PyTorch
}

BOOST_AUTO_TEST_CASE(warmup_cosine_lr_matches_pytorch) {
    // PyTorch: SequentialLR(LinearLR(start_factor 0.1, 3 epochs), CosineAnnealingLR(T_max 7))
    two_groups g;
    optim::warmup_cosine_lr s(g.opt, {.warmup_steps = 3, .total_steps = 10, .start_factor = 0.1, .eta_min = 0.001});
    check_rates("warmup_cosine_lr", g, s, 10);
    // after total_steps it stays at eta_min (PyTorch's cosine would rise again)
    for (int e = 0; e < 5; ++e) {
        s.step();
        BOOST_TEST(g.opt.lr(0) == 0.001);
        BOOST_TEST(g.opt.lr(1) == 0.001);
    }
}

BOOST_AUTO_TEST_CASE(warmup_from_zero) {
    two_groups g;
    optim::warmup_cosine_lr s(g.opt, {.warmup_steps = 4, .total_steps = 12});
    const double expected[] = {0.0, 0.025, 0.05, 0.075, 0.1};
    for (double e : expected) {
        BOOST_TEST(g.opt.lr(0) == e, boost::test_tools::tolerance(1e-15));
        s.step();
    }
    // halfway through the cosine: (b + eta_min) / 2
    for (int e = 5; e < 8; ++e) s.step();
    BOOST_TEST(g.opt.lr(0) == 0.05, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(reduce_lr_on_plateau_matches_pytorch) {
    {
        two_groups g;
        optim::reduce_lr_on_plateau s(
            g.opt, {.factor = 0.5, .patience = 1, .threshold = 0.01, .cooldown = 1, .min_lr = 0.004});
        check_rates("plateau_min_rel", g, s, epochs, reference::get().at("sched.plateau_min_rel.metric").to_vector());
    }
    {
        two_groups g;
        optim::reduce_lr_on_plateau s(g.opt, {.mode = optim::plateau_mode::max,
                                              .factor = 0.2,
                                              .patience = 2,
                                              .threshold = 0.02,
                                              .threshold_mode = optim::threshold_mode::abs});
        check_rates("plateau_max_abs", g, s, epochs, reference::get().at("sched.plateau_max_abs.metric").to_vector());
    }
}

BOOST_AUTO_TEST_CASE(plateau_state_round_trip) {
    const auto metric = reference::get().at("sched.plateau_min_rel.metric").to_vector();
    const optim::reduce_lr_on_plateau_options o{.factor = 0.5, .patience = 1, .threshold = 0.01, .cooldown = 1};
    two_groups a, b;
    optim::reduce_lr_on_plateau sa(a.opt, o), sb(b.opt, o);
    for (int e = 0; e < 6; ++e) sa.step(metric[static_cast<std::size_t>(e)]);
    sb.load_state_dict(sa.state_dict());
    b.opt.set_lr(0, a.opt.lr(0));
    b.opt.set_lr(1, a.opt.lr(1));
    for (std::size_t e = 6; e < metric.size(); ++e) {
        sa.step(metric[e]);
        sb.step(metric[e]);
        BOOST_TEST(a.opt.lr(0) == b.opt.lr(0));
    }
    BOOST_TEST(sa.best() == sb.best());
    BOOST_TEST(sa.last_epoch() == sb.last_epoch());
}

BOOST_AUTO_TEST_CASE(closed_form_state_round_trip) {
    two_groups a, b;
    optim::cosine_annealing_lr sa(a.opt, {.t_max = 10});
    for (int e = 0; e < 4; ++e) sa.step();
    b.opt.set_lr(0, 0.5);  // the saved base rates win over the optimizer's current ones
    optim::cosine_annealing_lr sb(b.opt, {.t_max = 10});
    sb.load_state_dict(sa.state_dict());
    BOOST_TEST(sb.last_epoch() == 4);
    BOOST_TEST(b.opt.lr(0) == a.opt.lr(0));
    sa.step();
    sb.step();
    BOOST_TEST(b.opt.lr(1) == a.opt.lr(1));
    BOOST_TEST(a.opt.lr(0) == 0.001 * 0 + 0.1 * (1 + std::cos(std::numbers::pi * 0.5)) / 2,
               boost::test_tools::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(bad_options_throw) {
    two_groups g;
    using xgrad::value_error;
    BOOST_CHECK_THROW(optim::step_lr(g.opt, {.step_size = 0}), value_error);
    BOOST_CHECK_THROW(optim::step_lr(g.opt, {.step_size = 2, .gamma = -0.1}), value_error);
    BOOST_CHECK_THROW(optim::multi_step_lr(g.opt, {.milestones = {3, -1}}), value_error);
    BOOST_CHECK_THROW(optim::exponential_lr(g.opt, {.gamma = NAN}), value_error);
    BOOST_CHECK_THROW(optim::cosine_annealing_lr(g.opt, {.t_max = 0}), value_error);
    BOOST_CHECK_THROW(optim::cosine_annealing_lr(g.opt, {.t_max = 5, .eta_min = -1}), value_error);
    BOOST_CHECK_THROW(optim::warmup_cosine_lr(g.opt, {.warmup_steps = 5, .total_steps = 5}), value_error);
    BOOST_CHECK_THROW(optim::warmup_cosine_lr(g.opt, {.warmup_steps = -1, .total_steps = 5}), value_error);
    BOOST_CHECK_THROW(optim::warmup_cosine_lr(g.opt, {.total_steps = 5, .start_factor = 1.5}), value_error);
    BOOST_CHECK_THROW(optim::reduce_lr_on_plateau(g.opt, {.factor = 1.0}), value_error);
    BOOST_CHECK_THROW(optim::reduce_lr_on_plateau(g.opt, {.patience = -1}), value_error);
    BOOST_CHECK_THROW(optim::reduce_lr_on_plateau(g.opt, {.threshold = NAN}), value_error);
    // a failed construction leaves the rates alone
    BOOST_TEST(g.opt.lr(0) == 0.1);
    BOOST_TEST(g.opt.lr(1) == 0.02);
}
