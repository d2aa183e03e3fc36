#define BOOST_TEST_MODULE train_callbacks
#include <boost/test/unit_test.hpp>

#include <xgrad/train/callbacks.hpp>
#include <xgrad/train/history.hpp>
#include <xgrad/train/progress.hpp>
#include <xgrad/optim/sgd.hpp>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using xgrad_test::contains;

using xgrad::logs;
namespace cb = xgrad::callbacks;

namespace {

std::string read_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// A model of one tensor "w" and an optimizer state of one tensor and one number.
class fake_context : public xgrad::train_context {
public:
    xgrad::tensor<float> w = xgrad::from_vector<float>({1.f, 2.f}, {2});
    xgrad::tensor<float> moment = xgrad::from_vector<float>({0.5f, 0.25f}, {2});
    double opt_step = 0;
    double rng = 42;

    std::vector<xgrad::io::named_tensor> model_state() const override { return {{"w", w.clone(), ""}}; }
    void load_model_state(const std::vector<xgrad::io::named_tensor>& s) override {
        w = std::get<xgrad::tensor<float>>(s.at(0).value).clone();
    }
    void optimizer_state(std::vector<xgrad::io::named_tensor>& t, xgrad::scalar_state& s,
                         const std::string& prefix) const override {
        t.push_back({prefix + "state.0.exp_avg", moment.clone(), ""});
        s.emplace_back("state.0.step", opt_step);
    }
    void load_optimizer_state(const xgrad::io::safetensors_file& f, const xgrad::scalar_state& s,
                              const std::string& prefix) override {
        moment = f.get<float>(prefix + "state.0.exp_avg");
        opt_step = cb::detail::find_scalar(s, "state.0.step", "fake");
    }
    xgrad::scalar_state rng_state() const override { return {{"seed", rng}}; }
    void load_rng_state(const xgrad::scalar_state& s) override { rng = s.at(0).second; }
};

/// Runs the callback protocol for the given per-epoch logs, as fit() does; returns the number
/// of epochs run. `before_epoch_end` lets a test change the model first.
std::size_t drive(fake_context& ctx, const std::vector<xgrad::callback_ptr>& cbs, const std::vector<logs>& epochs,
                  xgrad::history& h, const std::function<void(std::size_t)>& before_epoch_end = {}) {
    ctx.history = &h;
    ctx.callbacks.clear();
    for (auto& c : cbs) ctx.callbacks.push_back(c.get());
    ctx.epochs = epochs.size();
    ctx.stop_training = false;
    for (auto* c : ctx.callbacks) c->on_train_begin(ctx);
    std::size_t run = 0;
    for (ctx.epoch = ctx.initial_epoch; ctx.epoch < ctx.epochs && !ctx.stop_training; ++ctx.epoch) {
        for (auto* c : ctx.callbacks) c->on_epoch_begin(ctx);
        if (before_epoch_end) before_epoch_end(ctx.epoch);
        logs l = epochs[ctx.epoch];
        for (auto* c : ctx.callbacks) c->on_epoch_end(ctx, l);
        h.record(l, ctx.epoch);
        ++run;
    }
    if (ctx.epoch > 0) --ctx.epoch;  // the last epoch that ran
    for (auto* c : ctx.callbacks) c->on_train_end(ctx);
    return run;
}

}  // namespace

BOOST_AUTO_TEST_CASE(logs_and_history) {
    logs l{{"loss", 0.5}, {"accuracy", 0.75}};
    l.set("loss", 0.25);
    BOOST_TEST(l.size() == 2u);
    BOOST_TEST(l.at("loss") == 0.25);
    BOOST_TEST(l.names() == "loss, accuracy");
    BOOST_TEST(contains([&] {
        try {
            l.at("val_loss");
        } catch (const xgrad::index_error& e) {
            return std::string(e.what());
        }
        return std::string();
    }(), "no value named 'val_loss' (have: loss, accuracy)"));

    xgrad::history h;
    h.record({{"loss", 1.0}, {"accuracy", 0.5}});
    h.record({{"loss", 0.5}, {"accuracy", 0.75}, {"val_loss", 0.625}});
    BOOST_TEST(h.size() == 2u);
    BOOST_TEST(h.keys() == (std::vector<std::string>{"loss", "accuracy", "val_loss"}), boost::test_tools::per_element());
    BOOST_TEST(h["loss"] == (std::vector<double>{1.0, 0.5}), boost::test_tools::per_element());
    BOOST_TEST(std::isnan(h["val_loss"][0]));
    BOOST_TEST(h.last("val_loss") == 0.625);
    BOOST_TEST(!h.at(0).contains("val_loss"));
    BOOST_TEST(h.to_csv() == "epoch,loss,accuracy,val_loss\n1,1,0.5,\n2,0.5,0.75,0.625\n");
    BOOST_CHECK_THROW(h["nope"], xgrad::index_error);
}

BOOST_AUTO_TEST_CASE(durations_and_values_format) {
    BOOST_TEST(xgrad::format_duration(0.25) == "250ms");
    BOOST_TEST(xgrad::format_duration(12.34) == "12.3s");
    BOOST_TEST(xgrad::format_duration(245) == "4m05s");
    BOOST_TEST(xgrad::format_duration(3725) == "1h02m");
    BOOST_TEST(xgrad::format_logs({{"loss", 0.31274}, {"accuracy", 0.9}}) == "loss 0.3127  accuracy 0.9000");
}

BOOST_AUTO_TEST_CASE(progress_bar_on_a_terminal_redraws_one_line) {
    std::ostringstream out;
    double now = 100;
    xgrad::progress_options o{.out = &out, .interactive = true, .bar_width = 10, .refresh = 0.5,
                              .clock = [&] { return now; }};
    xgrad::progress_bar bar("Epoch 1/2", 4, o);
    now = 101;
    bar.update(1, 32, {{"loss", 2.0}});
    now = 101.1;  // within the refresh interval: not drawn
    bar.update(2, 64, {{"loss", 1.5}});
    now = 102;
    bar.update(3, 96, {{"loss", 1.25}});
    now = 104;
    bar.update(4, 120, {{"loss", 1.0}});  // the last batch is always drawn
    bar.end_batches();
    now = 106;  // validation: counts in the time, not in samples/s
    BOOST_TEST(bar.finish({{"loss", 1.0}, {"val_loss", 1.5}}) == 6.0);
    const std::string expect =
        "\rEpoch 1/2  1/4 [==>.......]  1.0s<3.0s  32 samples/s  loss 2.0000\033[K"
        "\rEpoch 1/2  3/4 [=======>..]  2.0s<667ms  48 samples/s  loss 1.2500\033[K"
        "\rEpoch 1/2  4/4 [==========]  4.0s  30 samples/s  loss 1.0000\033[K"
        "\rEpoch 1/2  4/4  6.0s  30 samples/s  loss 1.0000  val_loss 1.5000\033[K\n";
    BOOST_TEST(out.str() == expect);
}

BOOST_AUTO_TEST_CASE(progress_bar_elsewhere_prints_only_the_summary) {
    std::ostringstream out;
    double now = 0;
    xgrad::progress_bar bar("Epoch 3/10", 100, {.out = &out, .interactive = false, .clock = [&] { return now; }});
    for (std::size_t b = 1; b <= 100; ++b) {
        now += 0.5;
        bar.update(b, b * 64, {{"loss", 0.5}});
    }
    bar.finish({{"loss", 0.5}, {"accuracy", 0.875}});
    BOOST_TEST(out.str() == "Epoch 3/10  100/100  50.0s  128 samples/s  loss 0.5000  accuracy 0.8750\n");
}

BOOST_AUTO_TEST_CASE(early_stopping_waits_patience_epochs_and_restores_the_best) {
    fake_context ctx;
    xgrad::history h;
    auto es = cb::early_stopping({.monitor = "val_loss", .patience = 2, .restore_best = true});
    // best at epoch 1 (0.5); epochs 2 and 3 do not improve; stops after epoch 3
    const std::vector<logs> epochs{{{"val_loss", 0.9}}, {{"val_loss", 0.5}}, {{"val_loss", 0.5}},
                                   {{"val_loss", 0.7}}, {{"val_loss", 0.1}}};
    const auto run = drive(ctx, {es}, epochs, h, [&](std::size_t e) { ctx.w.fill(static_cast<float>(e)); });
    BOOST_TEST(run == 4u);
    BOOST_TEST(es->stopped_epoch() == 3);
    BOOST_TEST(es->best_epoch() == 1);
    BOOST_TEST(es->best() == 0.5);
    BOOST_TEST(ctx.w(0) == 1.f);  // the weights of epoch 1

    // accuracy is maximized; min_delta demands real improvement
    fake_context c2;
    xgrad::history h2;
    auto acc = cb::early_stopping({.monitor = "val_accuracy", .patience = 0, .min_delta = 0.01});
    BOOST_TEST(drive(c2, {acc}, {{{"val_accuracy", 0.8}}, {{"val_accuracy", 0.805}}, {{"val_accuracy", 0.9}}}, h2) == 2u);
    BOOST_TEST(acc->best() == 0.8);

    fake_context c3;
    xgrad::history h3;
    auto missing = cb::early_stopping({.monitor = "val_loss"});
    try {
        drive(c3, {missing}, {{{"loss", 1.0}}}, h3);
        BOOST_FAIL("expected value_error");
    } catch (const xgrad::value_error& e) {
        BOOST_TEST(contains(e.what(), "early_stopping: monitored value 'val_loss' is not among this epoch's values (loss)"));
    }
}

BOOST_AUTO_TEST_CASE(model_checkpoint_saves_the_best_epoch) {
    xgrad_test::temp_dir dir;
    fake_context ctx;
    xgrad::history h;
    auto best = cb::model_checkpoint(dir / "best.safetensors", {.monitor = "val_accuracy"});
    auto every = cb::model_checkpoint(dir / "epoch{epoch}.safetensors", {.save_best_only = false});
    drive(ctx, {best, every}, {{{"val_accuracy", 0.5}}, {{"val_accuracy", 0.75}}, {{"val_accuracy", 0.6}}}, h,
          [&](std::size_t e) { ctx.w.fill(static_cast<float>(10 * e)); });
    BOOST_TEST(best->saves() == 2u);
    BOOST_TEST(best->best_epoch() == 1);
    const auto f = xgrad::io::load_safetensors(dir / "best.safetensors");
    BOOST_TEST(f.get<float>("w")(0) == 10.f);
    BOOST_TEST(f.metadata.at("epoch") == "2");
    BOOST_TEST(f.metadata.at("val_accuracy") == "0.75");
    BOOST_TEST(every->saves() == 3u);
    BOOST_TEST(xgrad::io::load_safetensors(dir / "epoch3.safetensors").get<float>("w")(1) == 20.f);
}

BOOST_AUTO_TEST_CASE(csv_logger_writes_one_line_per_epoch) {
    xgrad_test::temp_dir dir;
    fake_context ctx;
    xgrad::history h;
    drive(ctx, {cb::csv_logger(dir / "h.csv")}, {{{"loss", 1.5}, {"val_loss", 2.0}}, {{"loss", 0.25}}}, h);
    BOOST_TEST(read_text(dir / "h.csv") == "epoch,loss,val_loss\n1,1.5,2\n2,0.25,\n");
    // append continues the columns of the existing file
    fake_context c2;
    c2.initial_epoch = 2;
    xgrad::history h2;
    drive(c2, {cb::csv_logger(dir / "h.csv", {.append = true})},
          {{}, {}, {{"val_loss", 0.5}, {"loss", 0.125}}}, h2);
    BOOST_TEST(read_text(dir / "h.csv") == "epoch,loss,val_loss\n1,1.5,2\n2,0.25,\n3,0.125,0.5\n");
}

BOOST_AUTO_TEST_CASE(backup_and_restore_resumes_where_it_stopped) {
    xgrad_test::temp_dir dir;
    const auto path = dir / "backup.safetensors";
    const std::vector<logs> epochs{{{"val_loss", 0.9}, {"loss", 1.0}}, {{"val_loss", 0.5}, {"loss", 0.8}},
                                   {{"val_loss", 0.6}, {"loss", 0.7}}, {{"val_loss", 0.4}, {"loss", 0.6}}};
    {
        // the first run is "killed" after two epochs: stop without on_train_end
        fake_context ctx;
        xgrad::history h;
        auto es = cb::early_stopping({.patience = 5});
        auto backup = cb::backup_and_restore(path);
        ctx.history = &h;
        ctx.callbacks = {es.get(), backup.get()};
        for (auto* c : ctx.callbacks) c->on_train_begin(ctx);
        for (ctx.epoch = 0; ctx.epoch < 2; ++ctx.epoch) {
            ctx.w.fill(static_cast<float>(ctx.epoch + 1));
            ctx.moment.fill(0.5f * static_cast<float>(ctx.epoch));
            ctx.opt_step = static_cast<double>(ctx.epoch + 1) * 10;
            ctx.rng = 1000 + static_cast<double>(ctx.epoch);
            ctx.global_step = (ctx.epoch + 1) * 7;
            logs l = epochs[ctx.epoch];
            for (auto* c : ctx.callbacks) c->on_epoch_end(ctx, l);
            h.record(l, ctx.epoch);
        }
        BOOST_TEST(std::filesystem::exists(path));
    }
    fake_context ctx;
    xgrad::history h;
    auto es = cb::early_stopping({.patience = 5});
    auto backup = cb::backup_and_restore(path);
    std::vector<std::size_t> ran;
    auto seen = cb::lambda({.on_epoch_begin = [&](xgrad::train_context& c) { ran.push_back(c.epoch); }});
    // the restored state is what the first run saved after its second epoch
    auto check = cb::lambda({.on_train_begin = [&](xgrad::train_context& c) {
        BOOST_TEST(c.initial_epoch == 2u);
        BOOST_TEST(c.global_step == 14u);
        BOOST_TEST(ctx.w(0) == 2.f);
        BOOST_TEST(ctx.moment(1) == 0.5f);
        BOOST_TEST(ctx.opt_step == 20.0);
        BOOST_TEST(ctx.rng == 1001.0);
    }});
    drive(ctx, {es, backup, seen, check}, epochs, h);
    BOOST_TEST(backup->resumed());
    BOOST_TEST(ran == (std::vector<std::size_t>{2, 3}), boost::test_tools::per_element());
    BOOST_TEST(h.size() == 4u);
    BOOST_TEST(h["loss"] == (std::vector<double>{1.0, 0.8, 0.7, 0.6}), boost::test_tools::per_element());
    BOOST_TEST(es->best_epoch() == 3);  // early stopping's counters came back too
    BOOST_TEST(!std::filesystem::exists(path));  // finished: the backup is gone
}

BOOST_AUTO_TEST_CASE(lr_scheduler_steps_and_logs_the_rate) {
    auto p = xgrad::param(xgrad::zeros<float>({1}));
    xgrad::optim::sgd<float> opt({p}, {.lr = 1.0});
    xgrad::optim::step_lr sched(opt, {.step_size = 1, .gamma = 0.5});
    fake_context ctx;
    ctx.optimizer = &opt;
    xgrad::history h;
    drive(ctx, {cb::lr_scheduler(sched)}, {{{"loss", 1.0}}, {{"loss", 1.0}}, {{"loss", 1.0}}}, h);
    BOOST_TEST(h["lr"] == (std::vector<double>{1.0, 0.5, 0.25}), boost::test_tools::per_element());
    BOOST_TEST(opt.lr(0) == 0.125);
}
