#define BOOST_TEST_MODULE fit
#include <boost/test/unit_test.hpp>

#include <xgrad/data/loader.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/ops/dropout.hpp>
#include <xgrad/ops/loss.hpp>
#include <xgrad/ops/matmul.hpp>
#include <xgrad/optim/adam.hpp>
#include <xgrad/optim/sgd.hpp>
#include <xgrad/train.hpp>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using xgrad_test::contains;

namespace nn = xgrad::nn;
namespace cb = xgrad::callbacks;
using xgrad::tensor;

namespace {

/// 2 -> hidden -> 3 with ReLU and optional dropout; records the mode each forward ran in.
struct mlp : nn::module<mlp> {
    xgrad::parameter<float> w1, b1, w2, b2;
    double p_drop = 0;
    std::vector<bool>* modes = nullptr;

    explicit mlp(std::uint64_t seed, double p = 0, std::size_t hidden = 16) : p_drop(p) {
        xgrad::rng g(seed);
        w1 = xgrad::param(xgrad::randn<float>({hidden, 2}, g, 0.f, 0.7f));
        b1 = xgrad::param(xgrad::zeros<float>({hidden}));
        w2 = xgrad::param(xgrad::randn<float>({3, hidden}, g, 0.f, 0.3f));
        b2 = xgrad::param(xgrad::zeros<float>({3}));
    }
    template <class X>
    auto forward(X&& x) {
        if (modes) modes->push_back(is_training());
        auto h = xgrad::relu(xgrad::linear(std::forward<X>(x), w1, b1));
        return xgrad::linear(xgrad::dropout(std::move(h), p_drop, is_training(), nn::default_generator()), w2, b2);
    }
    XGRAD_MODULE(w1, b1, w2, b2)
};

/// Three Gaussian blobs in the plane, n per class, interleaved.
xgrad::data::tensor_dataset<float> blobs(std::size_t n, std::uint64_t seed) {
    xgrad::rng g(seed);
    const float cx[3] = {-2.f, 2.f, 0.f}, cy[3] = {-1.f, -1.f, 2.f};
    auto x = tensor<float>::uninitialized({3 * n, 2});
    auto y = tensor<std::int64_t>::uninitialized({3 * n});
    for (std::size_t i = 0; i < 3 * n; ++i) {
        const std::size_t c = i % 3;
        x(i, 0) = cx[c] + static_cast<float>(g.normal(0, 0.6));
        x(i, 1) = cy[c] + static_cast<float>(g.normal(0, 0.6));
        y(i) = static_cast<std::int64_t>(c);
    }
    return {x, y};
}

auto cross_entropy = [](auto&& out, const tensor<std::int64_t>& y) { return xgrad::cross_entropy(out, y); };

std::vector<float> flat(mlp& m) {
    std::vector<float> v;
    for (auto& [n, p] : m.named_parameters())
        for (float f : p.value().to_vector()) v.push_back(f);
    return v;
}


}  // namespace

BOOST_AUTO_TEST_CASE(fit_learns_and_records_history) {
    nn::manual_seed(1);
    mlp model(3, 0.1);
    auto train = xgrad::data::loader(blobs(100, 1), {.batch_size = 32, .shuffle = true, .seed = 1});
    auto test = xgrad::data::loader(blobs(50, 2), {.batch_size = 64});
    xgrad::optim::adam<float> opt(model.parameters(), {.lr = 0.02});
    std::ostringstream log;
    auto h = xgrad::fit(model, opt, cross_entropy, train,
                        {.epochs = 12, .validation = &test, .metrics = {xgrad::metrics::accuracy()},
                         .progress_style = {.out = &log, .interactive = false}});
    BOOST_TEST(h.size() == 12u);
    BOOST_TEST(h.keys() == (std::vector<std::string>{"loss", "accuracy", "val_loss", "val_accuracy"}),
               boost::test_tools::per_element());
    BOOST_TEST(h["loss"].back() < 0.5 * h["loss"].front());
    BOOST_TEST(h.last("val_accuracy") > 0.9);
    BOOST_TEST(h.last("accuracy") > 0.85);
    // one summary line per epoch, nothing else, when the output is not a terminal
    std::size_t lines = 0;
    for (char c : log.str()) lines += c == '\n';
    BOOST_TEST(lines == 12u);
    BOOST_TEST(contains(log.str(), "Epoch 12/12  10/10  "));
    BOOST_TEST(contains(log.str(), " samples/s  loss "));
    BOOST_TEST(contains(log.str(), "val_accuracy "));

    // evaluate agrees with the last validation and fills a confusion matrix
    const auto scores = xgrad::evaluate(model, cross_entropy, test,
                                        {xgrad::metrics::accuracy(), xgrad::metrics::confusion_matrix(3)});
    BOOST_TEST(scores["accuracy"] == h.last("val_accuracy"), boost::test_tools::tolerance(1e-12));
    BOOST_TEST(scores["loss"] == h.last("val_loss"), boost::test_tools::tolerance(1e-9));
    const auto& cm = scores.get<xgrad::metrics::confusion_matrix>();
    BOOST_TEST(cm.total() == 150u);
    BOOST_TEST(cm.accuracy() == scores["accuracy"], boost::test_tools::tolerance(1e-12));
    BOOST_TEST(contains(scores.report(), "confusion matrix (rows: true class, columns: predicted class)"));
    const auto no_loss = xgrad::evaluate(model, test, {xgrad::metrics::accuracy()});
    BOOST_TEST(!no_loss.values.contains("loss"));
}

BOOST_AUTO_TEST_CASE(fit_and_evaluate_switch_modes_and_restore_them) {
    std::vector<bool> modes;
    mlp model(3);
    model.modes = &modes;
    auto train = xgrad::data::loader(blobs(10, 1), {.batch_size = 10});
    auto val = xgrad::data::loader(blobs(5, 2), {.batch_size = 15});
    xgrad::optim::sgd<float> opt(model.parameters(), {.lr = 0.1});
    model.eval();
    xgrad::fit(model, opt, cross_entropy, train, {.epochs = 2, .validation = &val, .progress = false});
    // per epoch: 3 training batches, then 1 validation batch
    BOOST_TEST(modes == (std::vector<bool>{true, true, true, false, true, true, true, false}),
               boost::test_tools::per_element());
    BOOST_TEST(!model.is_training());  // given back as it came
    model.train();
    modes.clear();
    const auto p = xgrad::predict(model, blobs(4, 3).inputs(), {.batch_size = 5});
    BOOST_TEST(modes == (std::vector<bool>{false, false, false}), boost::test_tools::per_element());
    BOOST_TEST(model.is_training());
    BOOST_TEST(p.shape() == (xgrad::shape_t{12, 3}));
    for (std::size_t i = 0; i < 12; ++i) BOOST_TEST(p(i, 0) + p(i, 1) + p(i, 2) == 1.f, boost::test_tools::tolerance(1e-5f));
    const auto logits = xgrad::predict(model, blobs(4, 3).inputs(), {.probabilities = false});
    BOOST_TEST(logits(0, 0) != p(0, 0));
}

BOOST_AUTO_TEST_CASE(gradient_accumulation_matches_the_larger_batch) {
    auto data = blobs(32, 5);  // 96 samples
    mlp a(7), b(7);
    xgrad::optim::sgd<float> oa(a.parameters(), {.lr = 0.05, .momentum = 0.9});
    xgrad::optim::sgd<float> ob(b.parameters(), {.lr = 0.05, .momentum = 0.9});
    auto big = xgrad::data::loader(data, {.batch_size = 32});
    auto small = xgrad::data::loader(data, {.batch_size = 16});
    auto ha = xgrad::fit(a, oa, cross_entropy, big, {.epochs = 3, .progress = false});
    auto hb = xgrad::fit(b, ob, cross_entropy, small, {.epochs = 3, .accumulate = 2, .progress = false});
    const auto va = flat(a), vb = flat(b);
    for (std::size_t i = 0; i < va.size(); ++i) BOOST_TEST(va[i] == vb[i], boost::test_tools::tolerance(2e-5f));
    BOOST_TEST(ha["loss"][2] == hb["loss"][2], boost::test_tools::tolerance(1e-5));
    BOOST_CHECK_THROW(xgrad::fit(a, oa, cross_entropy, big, {.accumulate = 0}), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(steps_per_epoch_and_callbacks_per_batch) {
    mlp model(3);
    auto train = xgrad::data::loader(blobs(40, 1), {.batch_size = 8});  // 15 batches
    xgrad::optim::sgd<float> opt(model.parameters(), {.lr = 0.1});
    std::vector<std::size_t> batches;
    auto seen = cb::lambda({.on_batch_end = [&](xgrad::train_context& c, std::size_t b, const xgrad::logs& l) {
        batches.push_back(b);
        BOOST_TEST(l.contains("loss"));
        BOOST_TEST(c.batches_per_epoch == 4u);
    }});
    xgrad::fit(model, opt, cross_entropy, train, {.epochs = 2, .callbacks = {seen}, .steps_per_epoch = 4, .progress = false});
    BOOST_TEST(batches == (std::vector<std::size_t>{0, 1, 2, 3, 0, 1, 2, 3}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(an_interrupted_fit_resumes_exactly) {
    xgrad_test::temp_dir dir;
    const auto backup = dir / "backup.safetensors";
    auto run = [&](std::size_t kill_after, std::uint64_t generator_seed) {
        nn::manual_seed(generator_seed);
        mlp model(11, 0.2);
        xgrad::optim::adam<float> opt(model.parameters(), {.lr = 0.01});
        xgrad::optim::step_lr sched(opt, {.step_size = 2, .gamma = 0.5});
        auto train = xgrad::data::loader(blobs(30, 1), {.batch_size = 16, .shuffle = true, .seed = 9});
        auto val = xgrad::data::loader(blobs(10, 2), {.batch_size = 30});
        auto es = cb::early_stopping({.monitor = "val_loss", .patience = 10});
        auto killer = cb::lambda({.on_epoch_end = [&](xgrad::train_context& c, xgrad::logs&) {
            if (c.epoch + 1 == kill_after) throw std::runtime_error("killed");
        }});
        xgrad::history h;
        try {
            h = xgrad::fit(model, opt, cross_entropy, train,
                           {.epochs = 5, .validation = &val, .metrics = {xgrad::metrics::accuracy()},
                            .callbacks = {cb::lr_scheduler(sched), es, cb::backup_and_restore(backup), killer},
                            .progress = false});
        } catch (const std::runtime_error& e) {
            BOOST_TEST(std::string(e.what()) == "killed");
        }
        return std::make_tuple(flat(model), h, opt.lr(0), es->best_epoch());
    };
    const auto [full, full_h, full_lr, full_best] = run(0, 5);
    BOOST_TEST(!std::filesystem::exists(backup));
    run(3, 5);  // dies after epoch 3 (its backup is on disk)
    BOOST_TEST(std::filesystem::exists(backup));
    // a new process: different generator state, fresh model, optimizer, scheduler and loaders
    const auto [resumed, resumed_h, resumed_lr, resumed_best] = run(0, 777);
    BOOST_TEST(resumed == full, boost::test_tools::per_element());  // bit for bit
    BOOST_TEST(resumed_h.size() == 5u);
    BOOST_TEST(resumed_h["val_loss"] == full_h["val_loss"], boost::test_tools::per_element());
    BOOST_TEST(resumed_h["lr"] == full_h["lr"], boost::test_tools::per_element());
    BOOST_TEST(resumed_lr == full_lr);
    BOOST_TEST(resumed_best == full_best);
    BOOST_TEST(!std::filesystem::exists(backup));
}

BOOST_AUTO_TEST_CASE(early_stopping_restores_the_best_weights_in_fit) {
    mlp model(3);
    auto train = xgrad::data::loader(blobs(20, 1), {.batch_size = 20});
    xgrad::optim::sgd<float> opt(model.parameters(), {.lr = 0.5});
    std::vector<std::vector<float>> weights;
    // val_loss is made up: best at epoch 1, then worse
    const double fake[] = {1.0, 0.5, 0.8, 0.9, 0.95, 1.0};
    auto fake_val = cb::lambda({.on_epoch_end = [&](xgrad::train_context& c, xgrad::logs& l) {
        l.set("val_loss", fake[c.epoch]);
        weights.push_back(flat(model));
    }});
    auto es = cb::early_stopping({.monitor = "val_loss", .patience = 2, .restore_best = true});
    auto h = xgrad::fit(model, opt, cross_entropy, train, {.epochs = 6, .callbacks = {fake_val, es}, .progress = false});
    BOOST_TEST(h.size() == 4u);
    BOOST_TEST(es->stopped_epoch() == 3);
    BOOST_TEST(flat(model) == weights[1], boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(model_checkpoints_load_strictly_or_report) {
    xgrad_test::temp_dir dir;
    mlp a(1), b(2);
    xgrad::save(a, dir / "a.safetensors");
    const auto f = xgrad::io::load_safetensors(dir / "a.safetensors");
    BOOST_TEST(f.metadata.at("format") == "pt");
    BOOST_TEST(f.find("w1") != nullptr);
    auto report = xgrad::load(b, dir / "a.safetensors");
    BOOST_TEST(report.ok());
    BOOST_TEST(report.loaded == 4u);
    BOOST_TEST(flat(a) == flat(b), boost::test_tools::per_element());

    // a different head: strict throws and changes nothing, non-strict loads what matches
    mlp wide(3, 0, 8);
    const auto before = flat(wide);
    xgrad::io::save_safetensors(dir / "odd.safetensors",
                                {{"w1", a.w1.value(), ""}, {"b1", a.b1.value(), ""}, {"extra", a.b2.value(), ""}});
    try {
        xgrad::load(wide, dir / "odd.safetensors");
        BOOST_FAIL("expected value_error");
    } catch (const xgrad::value_error& e) {
        BOOST_TEST(contains(e.what(), "odd.safetensors: the checkpoint does not match the model: missing: w2, b2; "
                                      "unexpected: extra; shape mismatch: w1: file {16, 2} vs model {8, 2}, "
                                      "b1: file {16} vs model {8}"));
    }
    BOOST_TEST(flat(wide) == before, boost::test_tools::per_element());
    mlp same(3);
    report = xgrad::load(same, dir / "odd.safetensors", {.strict = false});
    BOOST_TEST(report.loaded == 2u);
    BOOST_TEST(report.missing == (std::vector<std::string>{"w2", "b2"}), boost::test_tools::per_element());
    BOOST_TEST(report.unexpected == (std::vector<std::string>{"extra"}), boost::test_tools::per_element());
    BOOST_TEST(same.w1.value().to_vector() == a.w1.value().to_vector(), boost::test_tools::per_element());
    // float64 files convert
    xgrad::io::save_safetensors(dir / "f64.safetensors", {{"w1", a.w1.value().astype<double>(), ""},
                                                          {"b1", a.b1.value().astype<double>(), ""},
                                                          {"w2", a.w2.value().astype<double>(), ""},
                                                          {"b2", a.b2.value().astype<double>(), ""}});
    mlp c(9);
    xgrad::load(c, dir / "f64.safetensors");
    BOOST_TEST(flat(c) == flat(a), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(optimizer_state_round_trips) {
    xgrad_test::temp_dir dir;
    auto data = xgrad::data::loader(blobs(20, 1), {.batch_size = 20});
    mlp a(4), b(4);
    xgrad::optim::adam<float> oa(a.parameters(), {.lr = 0.01, .amsgrad = true});
    xgrad::fit(a, oa, cross_entropy, data, {.epochs = 3, .progress = false});
    xgrad::save(a, dir / "m.safetensors");
    xgrad::save(oa, dir / "o.safetensors");
    xgrad::optim::adam<float> ob(b.parameters(), {.lr = 0.5});
    xgrad::load(b, dir / "m.safetensors");
    xgrad::load(ob, dir / "o.safetensors");
    BOOST_TEST(ob.lr(0) == 0.01);
    BOOST_TEST(ob.options(0).amsgrad);
    // the next epoch is the same for both
    xgrad::fit(a, oa, cross_entropy, data, {.epochs = 1, .progress = false});
    xgrad::fit(b, ob, cross_entropy, data, {.epochs = 1, .progress = false});
    BOOST_TEST(flat(a) == flat(b), boost::test_tools::per_element());
    // the wrong optimizer layout is refused
    mlp wide(4, 0, 8);
    xgrad::optim::adam<float> ow(wide.parameters());
    BOOST_CHECK_THROW(xgrad::load(ow, dir / "o.safetensors"), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(ensembles_average_and_vote) {
    mlp a(1), b(2), c(3);
    const auto x = blobs(5, 4).inputs();
    auto e = xgrad::ensemble(a, b, c);
    const auto pa = xgrad::predict(a, x), pb = xgrad::predict(b, x), pc = xgrad::predict(c, x);
    const auto pe = xgrad::predict(e, x);
    BOOST_TEST(pe.shape() == pa.shape());
    for (std::size_t i = 0; i < pe.size(); ++i)
        BOOST_TEST(pe.data()[i] == (pa.data()[i] + pb.data()[i] + pc.data()[i]) / 3.f, boost::test_tools::tolerance(1e-6f));
    const auto votes = e.vote(x);
    for (std::size_t i = 0; i < 15; ++i) {
        int count[3] = {0, 0, 0};
        for (auto* p : {&pa, &pb, &pc}) {
            std::size_t best = 0;
            for (std::size_t k = 1; k < 3; ++k)
                if ((*p)(i, k) > (*p)(i, best)) best = k;
            ++count[best];
        }
        const auto v = static_cast<std::size_t>(votes(i));
        for (int k = 0; k < 3; ++k) BOOST_TEST(count[v] >= count[k]);
    }
    // an ensemble evaluates like a model
    auto test = xgrad::data::loader(blobs(5, 4), {.batch_size = 8});
    const auto s = xgrad::evaluate(e, test, {xgrad::metrics::accuracy()});
    BOOST_TEST(s["accuracy"] >= 0.0);
}

BOOST_AUTO_TEST_CASE(checkpoint_averaging) {
    xgrad_test::temp_dir dir;
    mlp a(1), b(2), avg(3);
    xgrad::save(a, dir / "a.safetensors");
    xgrad::save(b, dir / "b.safetensors");
    xgrad::load_state_dict(avg, xgrad::average_checkpoints({dir / "a.safetensors", dir / "b.safetensors"}));
    const auto va = flat(a), vb = flat(b), v = flat(avg);
    for (std::size_t i = 0; i < v.size(); ++i) BOOST_TEST(v[i] == (va[i] + vb[i]) / 2, boost::test_tools::tolerance(1e-6f));
    mlp wide(1, 0, 8);
    xgrad::save(wide, dir / "w.safetensors");
    BOOST_CHECK_THROW(xgrad::average_checkpoints({dir / "a.safetensors", dir / "w.safetensors"}), xgrad::value_error);
}

namespace {
auto make_seq() {
    return nn::sequential(nn::linear(2, 16), nn::batch_norm1d(16), nn::relu(), nn::dropout(0.3), nn::linear(16, 3));
}
}  // namespace

BOOST_AUTO_TEST_CASE(nn_models_resume_exactly_with_dropout_and_batch_norm) {
    xgrad_test::temp_dir dir;
    const auto backup = dir / "backup.safetensors";
    auto run = [&](std::size_t kill_after, std::uint64_t seed_before_fit) {
        nn::manual_seed(42);
        auto model = make_seq();  // dropout's generator is split off the default one here
        nn::manual_seed(seed_before_fit);
        auto opt = xgrad::optim::adam(model.parameters(), {.lr = 0.01});
        auto train = xgrad::data::loader(blobs(30, 1), {.batch_size = 16, .shuffle = true, .seed = 3});
        auto killer = cb::lambda({.on_epoch_end = [&](xgrad::train_context& c, xgrad::logs&) {
            if (c.epoch + 1 == kill_after) throw std::runtime_error("killed");
        }});
        try {
            xgrad::fit(model, opt, cross_entropy, train,
                       {.epochs = 4, .callbacks = {cb::backup_and_restore(backup), killer}, .progress = false});
        } catch (const std::runtime_error&) {
        }
        std::vector<float> v;
        for (auto& t : xgrad::state_dict(model))
            if (auto* f = std::get_if<tensor<float>>(&t.value))
                for (float x : f->to_vector()) v.push_back(x);
        return v;
    };
    const auto full = run(0, 1);
    run(2, 1);
    const auto resumed = run(0, 99);
    BOOST_TEST(resumed.size() == full.size());
    BOOST_TEST(resumed == full, boost::test_tools::per_element());  // weights and running statistics
}

BOOST_AUTO_TEST_CASE(batch_norm_counters_follow_pytorch) {
    xgrad_test::temp_dir dir;
    auto model = make_seq();
    xgrad::save(model, dir / "m.safetensors");
    const auto f = xgrad::io::load_safetensors(dir / "m.safetensors");
    std::vector<std::string> names;
    for (auto& t : f.tensors) names.push_back(t.name);
    std::sort(names.begin(), names.end());
    BOOST_TEST(names == (std::vector<std::string>{"0.bias", "0.weight", "1.bias", "1.num_batches_tracked",
                                                  "1.running_mean", "1.running_var", "1.weight", "4.bias",
                                                  "4.weight"}),
               boost::test_tools::per_element());
    BOOST_TEST(f.find("1.num_batches_tracked")->dtype == "I64");
    auto other = make_seq();
    BOOST_TEST(xgrad::load(other, dir / "m.safetensors").ok());
    // a file without the counter loads strictly too
    std::vector<xgrad::io::named_tensor> without;
    for (auto& t : f.tensors)
        if (t.name != "1.num_batches_tracked") without.push_back(t);
    BOOST_TEST(xgrad::load_state_dict(other, without).ok());
}

BOOST_AUTO_TEST_CASE(the_issue_snippet_works_as_written) {
    xgrad_test::temp_dir dir;
    const auto cwd = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());  // the snippet writes relative paths
    nn::manual_seed(0);
    auto model = make_seq();
    auto train_loader = xgrad::data::loader(blobs(50, 1), {.batch_size = 25, .shuffle = true});
    auto test_loader = xgrad::data::loader(blobs(20, 2), {.batch_size = 30});
    const auto images = blobs(3, 3).inputs();

    auto opt = xgrad::optim::adam(model.parameters(), {.lr = 1e-3f});
    auto history = xgrad::fit(model, opt, xgrad::nn::cross_entropy(), train_loader,
        {.epochs = 10, .validation = &test_loader,
         .metrics = {xgrad::metrics::accuracy()},
         .callbacks = {xgrad::callbacks::early_stopping({.monitor = "val_loss", .patience = 3, .restore_best = true}),
                       xgrad::callbacks::model_checkpoint("best.safetensors", {.monitor = "val_accuracy"}),
                       xgrad::callbacks::csv_logger("history.csv")},
         .progress = false});
    auto scores = xgrad::evaluate(model, test_loader, {xgrad::metrics::accuracy(), xgrad::metrics::confusion_matrix(3)});
    auto probs  = xgrad::predict(model, images);

    BOOST_TEST(history.size() >= 4u);
    BOOST_TEST(std::filesystem::exists("best.safetensors"));
    BOOST_TEST(std::filesystem::exists("history.csv"));
    BOOST_TEST(scores["accuracy"] >= 0.0);
    BOOST_TEST(scores.confusion().total() == 60u);
    BOOST_TEST(probs.shape() == (xgrad::shape_t{9, 3}));
    std::filesystem::current_path(cwd);
}
