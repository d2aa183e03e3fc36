#define BOOST_TEST_MODULE thread_pool
#include <boost/test/unit_test.hpp>

#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <xgrad/xgrad.hpp>

BOOST_AUTO_TEST_CASE(every_task_runs_once_per_call) {
    std::atomic<long> sum{0};
    for (int it = 0; it < 5000; ++it) xgrad::detail::parallel_run(2, [&](std::size_t t) { sum += static_cast<long>(t) + 1; });
    BOOST_TEST(sum.load() == 5000L * 3);
}

BOOST_AUTO_TEST_CASE(exceptions_reach_the_caller) {
    BOOST_CHECK_THROW(xgrad::detail::parallel_run(2,
                                                   [](std::size_t t) {
                                                       if (t == 1) throw xgrad::value_error("task 1");
                                                   }),
                      xgrad::value_error);
    // the pool still works afterwards
    std::atomic<int> n{0};
    xgrad::detail::parallel_run(2, [&](std::size_t) { ++n; });
    BOOST_TEST(n.load() == 2);
}

BOOST_AUTO_TEST_CASE(nested_and_concurrent_calls_do_not_deadlock) {
    std::atomic<long> sum{0};
    std::thread other([&] {
        for (int it = 0; it < 500; ++it) xgrad::detail::parallel_run(2, [&](std::size_t t) { sum += static_cast<long>(t) + 1; });
    });
    for (int it = 0; it < 500; ++it)
        xgrad::detail::parallel_run(2, [&](std::size_t) {
            xgrad::detail::parallel_run(2, [&](std::size_t u) { sum += static_cast<long>(u) + 1; });
        });
    other.join();
    BOOST_TEST(sum.load() == 500L * 3 + 500L * 2 * 3);
}

BOOST_AUTO_TEST_CASE(expressions_evaluated_from_several_threads_agree) {
    xgrad::rng g(1);
    auto x = xgrad::randn<float>({1 << 16}, g);
    const float ref = xgrad::eval(xgrad::sum(xgrad::tanh(x) * x)).item();
    std::vector<float> got(3);
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back([&, i] { got[i] = xgrad::eval(xgrad::sum(xgrad::tanh(x) * x)).item(); });
    for (auto& t : ts) t.join();
    for (float v : got) BOOST_TEST(v == ref, boost::test_tools::tolerance(1e-4f));
}
