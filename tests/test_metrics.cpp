#define BOOST_TEST_MODULE metrics
#include <boost/test/unit_test.hpp>

#include <xgrad/train/metrics.hpp>

#include <string>
#include <vector>
#include "test_support.hpp"

using xgrad_test::contains;
using xgrad_test::error_of;

namespace m = xgrad::metrics;
using xgrad::tensor;

namespace {

/// Scores {N, C} whose argmax in row i is pred[i] (score 1 there, 0 elsewhere).
tensor<float> scores_for(const std::vector<std::size_t>& pred, std::size_t c) {
    auto t = xgrad::zeros<float>({pred.size(), c});
    for (std::size_t i = 0; i < pred.size(); ++i) t(i, pred[i]) = 1.f;
    return t;
}
tensor<std::int64_t> labels(const std::vector<std::int64_t>& y) { return xgrad::from_vector<std::int64_t>(y, {y.size()}); }

// 7 rows, 3 classes. truth 0 0 1 1 1 2 2, predicted 0 1 1 1 1 0 2:
//   [[1 1 0]      precision 1/2 3/4 1/1   recall 1/2 3/3 1/2   f1 2/4 6/7 2/3   support 2 3 2
//    [0 3 0]
//    [1 0 1]]
const std::vector<std::int64_t> truth{0, 0, 1, 1, 1, 2, 2};
const std::vector<std::size_t> predicted{0, 1, 1, 1, 1, 0, 2};

}  // namespace

BOOST_AUTO_TEST_CASE(accuracy_accumulates_over_batches) {
    m::accuracy acc;
    BOOST_TEST(acc.value() == 0.0);
    const auto s = scores_for(predicted, 3);
    acc.update(s.slice(0, 0, 4), labels({0, 0, 1, 1}));  // 3 of 4
    BOOST_TEST(acc.value() == 0.75);
    acc.update(s.slice(0, 4, 7), labels({1, 2, 2}));  // 2 of 3
    BOOST_TEST(acc.value() == 5.0 / 7.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(acc.values().at(0).first == "accuracy");
    acc.reset();
    BOOST_TEST(acc.value() == 0.0);
    // one-hot targets and double scores; ties go to the first maximum
    auto oh = xgrad::from_vector<float>({0, 1, 0, 1, 0, 0}, {2, 3});
    acc.update(xgrad::from_vector<double>({0.2, 0.7, 0.1, 0.5, 0.5, 0.0}, {2, 3}), oh);
    BOOST_TEST(acc.value() == 1.0);
}

BOOST_AUTO_TEST_CASE(top_k_counts_ties_for_the_target) {
    // row 0: target 2 ranks 3rd; row 1: target 0 ranks 1st; row 2: target 1 ties for 2nd
    const auto s = xgrad::from_vector<float>({0.5f, 0.3f, 0.1f, 0.05f,  //
                                              0.9f, 0.0f, 0.05f, 0.05f,  //
                                              0.4f, 0.2f, 0.2f, 0.2f},
                                             {3, 4});
    const auto y = labels({2, 0, 1});
    m::top_k_accuracy top1(1), top2(2), top3(3);
    top1.update(s, y);
    top2.update(s, y);
    top3.update(s, y);
    BOOST_TEST(top1.value() == 1.0 / 3.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(top2.value() == 2.0 / 3.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(top3.value() == 1.0);
    BOOST_TEST(top2.name() == "top2_accuracy");
    BOOST_CHECK_THROW(m::top_k_accuracy(0), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(confusion_matrix_and_derived_scores) {
    m::confusion_matrix cm(3);
    cm.update(scores_for(predicted, 3), labels(truth));
    const std::vector<std::int64_t> expect{1, 1, 0, 0, 3, 0, 1, 0, 1};
    BOOST_TEST(cm.matrix().to_vector() == expect, boost::test_tools::per_element());
    BOOST_TEST(cm(2, 0) == 1u);
    BOOST_TEST(cm.total() == 7u);
    BOOST_TEST(cm.support(1) == 3u);
    BOOST_TEST(cm.accuracy() == 5.0 / 7.0, boost::test_tools::tolerance(1e-12));
    const auto tol = boost::test_tools::tolerance(1e-12);
    BOOST_TEST(cm.precision(0) == 0.5, tol);
    BOOST_TEST(cm.precision(1) == 0.75, tol);
    BOOST_TEST(cm.precision(2) == 1.0, tol);
    BOOST_TEST(cm.recall(0) == 0.5, tol);
    BOOST_TEST(cm.recall(1) == 1.0, tol);
    BOOST_TEST(cm.recall(2) == 0.5, tol);
    BOOST_TEST(cm.f1(0) == 0.5, tol);
    BOOST_TEST(cm.f1(1) == 6.0 / 7.0, tol);
    BOOST_TEST(cm.f1(2) == 2.0 / 3.0, tol);
    BOOST_TEST(cm.precision(m::average::macro) == 0.75, tol);
    BOOST_TEST(cm.recall(m::average::macro) == 2.0 / 3.0, tol);
    BOOST_TEST(cm.f1(m::average::macro) == (0.5 + 6.0 / 7.0 + 2.0 / 3.0) / 3.0, tol);
    BOOST_TEST(cm.precision(m::average::micro) == 5.0 / 7.0, tol);
    BOOST_TEST(cm.recall(m::average::micro) == 5.0 / 7.0, tol);
    BOOST_TEST(cm.f1(m::average::micro) == 5.0 / 7.0, tol);
    BOOST_TEST(cm.precision(m::average::weighted) == (0.5 * 2 + 0.75 * 3 + 1.0 * 2) / 7.0, tol);
    BOOST_TEST(cm.recall(m::average::weighted) == 5.0 / 7.0, tol);
    BOOST_TEST(cm.f1(m::average::weighted) == (0.5 * 2 + 6.0 / 7.0 * 3 + 2.0 / 3.0 * 2) / 7.0, tol);
    BOOST_CHECK_THROW(cm.f1(m::average::per_class), xgrad::value_error);

    // a class never predicted and never present scores 0, not NaN
    m::confusion_matrix four(4);
    four.update(scores_for(predicted, 4), labels(truth));
    BOOST_TEST(four.precision(3) == 0.0);
    BOOST_TEST(four.f1(3) == 0.0);
    BOOST_TEST(four.precision(m::average::macro) == 0.75 * 3 / 4, tol);
}

BOOST_AUTO_TEST_CASE(confusion_matrix_prints_a_table) {
    m::confusion_matrix cm(3, {"cat", "dog", "bird"});
    cm.update(scores_for(predicted, 3), labels(truth));
    for (int i = 0; i < 10; ++i) cm.add(1, 1);  // a two-digit count widens the columns
    const std::string expect =
        "confusion matrix (rows: true class, columns: predicted class)\n"
        "true  0  1  2\n"
        "cat   1  1  0\n"
        "dog   0 13  0\n"
        "bird  1  0  1\n"
        "columns: 0=cat 1=dog 2=bird\n";
    BOOST_TEST(cm.report() == expect);
    const std::string rep = cm.classification_report(2);
    BOOST_TEST(contains(rep, " precision    recall  f1-score   support\n\n"));
    BOOST_TEST(contains(rep, "         dog      0.93      1.00      0.96        13\n"));
    BOOST_TEST(contains(rep, "    accuracy                          0.88        17\n"));
    BOOST_CHECK_THROW(m::confusion_matrix(3, {"a"}), xgrad::value_error);
    BOOST_CHECK_THROW(cm.add(3, 0), xgrad::value_error);
}

BOOST_AUTO_TEST_CASE(precision_recall_f1_metrics) {
    const auto s = scores_for(predicted, 3);
    const auto y = labels(truth);
    m::precision p;
    m::recall r({.average = m::average::weighted});
    m::f1_score f({.average = m::average::per_class});
    m::f1_score fm({.average = m::average::micro});
    for (auto* x : {&p}) x->update(s, y);
    r.update(s, y);
    f.update(s, y);
    fm.update(s, y);
    const auto tol = boost::test_tools::tolerance(1e-12);
    BOOST_TEST(p.values().at(0).first == "precision");
    BOOST_TEST(p.values().at(0).second == 0.75, tol);
    BOOST_TEST(r.values().at(0).first == "recall_weighted");
    BOOST_TEST(r.values().at(0).second == 5.0 / 7.0, tol);
    BOOST_TEST(fm.values().at(0).first == "f1_micro");
    const auto per = f.values();
    BOOST_TEST(per.size() == 3u);
    BOOST_TEST(per[1].first == "f1_1");
    BOOST_TEST(per[1].second == 6.0 / 7.0, tol);
    f.reset();
    BOOST_TEST(f.values()[1].second == 0.0);
}

BOOST_AUTO_TEST_CASE(metric_holds_any_metric) {
    std::vector<m::metric> list{m::accuracy(), m::confusion_matrix(3), m::top_k_accuracy(2)};
    for (auto& x : list) x.update(scores_for(predicted, 3), labels(truth));
    BOOST_TEST(list[0].name() == "accuracy");
    BOOST_TEST(list[0].values().at(0).second == 5.0 / 7.0, boost::test_tools::tolerance(1e-12));
    BOOST_TEST(list[0].report().empty());
    BOOST_TEST(list[1].values().empty());
    BOOST_TEST(contains(list[1].report(), "true 0 1 2\n0    1 1 0\n"));
    BOOST_TEST(list[1].get<m::confusion_matrix>()->total() == 7u);
    BOOST_TEST(list[1].get<m::accuracy>() == nullptr);
    // copies are independent
    auto copy = list[0];
    copy.reset();
    BOOST_TEST(copy.values().at(0).second == 0.0);
    BOOST_TEST(list[0].values().at(0).second > 0.7);
    // int32 labels convert
    list[0].reset();
    list[0].update(scores_for({2}, 3), xgrad::from_vector<std::int32_t>({2}, {1}));
    BOOST_TEST(list[0].values().at(0).second == 1.0);
}

BOOST_AUTO_TEST_CASE(bad_inputs_name_the_metric) {
    m::accuracy acc;
    BOOST_TEST(contains(error_of<xgrad::shape_error>([&] { acc.update(xgrad::zeros<float>({4}), labels({0, 1, 2, 3})); }),
                        "accuracy: expects class scores of shape {N, C}, got {4}"));
    BOOST_TEST(contains(error_of<xgrad::shape_error>([&] { acc.update(xgrad::zeros<float>({2, 3}), labels({0})); }),
                        "accuracy: 1 targets for 2 score rows"));
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { acc.update(xgrad::zeros<float>({2, 3}), labels({0, 3})); }),
                        "accuracy: target 3 at row 1 is not a class index in [0, 3)"));
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { acc.update(xgrad::zeros<float>({1, 3}), labels({-100})); }),
                        "target -100"));
    m::confusion_matrix cm(3);
    BOOST_TEST(contains(error_of<xgrad::shape_error>([&] { cm.update(xgrad::zeros<float>({1, 4}), labels({0})); }),
                        "scores of shape {1, 4} for 3 classes"));
}
