#define BOOST_TEST_MODULE tensor
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <sstream>

#include <xgrad/xgrad.hpp>

using xgrad::shape_t;

BOOST_AUTO_TEST_CASE(factories_fill_values) {
    auto z = xgrad::zeros<float>({2, 3});
    BOOST_TEST(z.size() == 6u);
    BOOST_TEST((z.shape() == shape_t{2, 3}));
    for (float v : z.to_vector()) BOOST_TEST(v == 0.0f);
    for (double v : xgrad::ones<double>({4}).to_vector()) BOOST_TEST(v == 1.0);
    for (int v : xgrad::full<int>({3, 1}, 7).to_vector()) BOOST_TEST(v == 7);
    auto a = xgrad::arange<double>(1.0, 2.0, 0.25);
    BOOST_TEST((a.to_vector() == std::vector<double>{1.0, 1.25, 1.5, 1.75}));
    BOOST_TEST(xgrad::arange<int>(5).size() == 5u);
    BOOST_TEST(xgrad::arange<int>(5, 0, -2).to_vector() == (std::vector<int>{5, 3, 1}));
}

BOOST_AUTO_TEST_CASE(storage_is_64_byte_aligned) {
    for (std::size_t n : {1u, 3u, 17u, 1000u}) {
        auto t = xgrad::empty<float>({n});
        BOOST_TEST(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0u);
    }
}

BOOST_AUTO_TEST_CASE(rng_is_seeded_and_reproducible) {
    xgrad::rng a(7), b(7), c(8);
    auto x = xgrad::randn<double>({1000}, a);
    auto y = xgrad::randn<double>({1000}, b);
    auto z = xgrad::randn<double>({1000}, c);
    BOOST_TEST(x.to_vector() == y.to_vector());
    BOOST_TEST(x.to_vector() != z.to_vector());
    double m = 0, v = 0;
    for (double e : x.to_vector()) m += e;
    m /= 1000;
    for (double e : x.to_vector()) v += (e - m) * (e - m);
    v /= 999;
    BOOST_TEST(std::abs(m) < 0.1);
    BOOST_TEST(std::abs(v - 1.0) < 0.15);
    xgrad::rng g(3);
    auto u = xgrad::uniform<float>({5000}, g, -2.0f, 3.0f);
    for (float e : u.to_vector()) BOOST_TEST((e >= -2.0f && e < 3.0f));
    for (int i = 0; i < 1000; ++i) BOOST_TEST(g.below(7) < 7u);
}

BOOST_AUTO_TEST_CASE(views_share_storage) {
    auto t = xgrad::arange<float>(12).reshape({3, 4});
    BOOST_TEST(t(1, 2) == 6.0f);
    auto tt = t.transpose(0, 1);
    BOOST_TEST((tt.shape() == shape_t{4, 3}));
    BOOST_TEST(tt(2, 1) == 6.0f);
    BOOST_TEST(!tt.is_contiguous());
    tt(2, 1) = 100.0f;  // writes through to t
    BOOST_TEST(t(1, 2) == 100.0f);
    auto s = t.slice(1, 1, 4, 2);  // columns 1 and 3
    BOOST_TEST((s.shape() == shape_t{3, 2}));
    BOOST_TEST((s.to_vector() == std::vector<float>{1, 3, 5, 7, 9, 11}));
    auto row = t.select(0, -1);
    BOOST_TEST((row.to_vector() == std::vector<float>{8, 9, 10, 11}));
    auto c = tt.contiguous();
    BOOST_TEST(c.is_contiguous());
    BOOST_TEST(c(2, 1) == 100.0f);
    auto p = xgrad::arange<float>(24).reshape({2, 3, 4}).permute({2, 0, 1});
    BOOST_TEST((p.shape() == shape_t{4, 2, 3}));
    BOOST_TEST(p(3, 1, 2) == 23.0f);
    auto r = t.reshape({-1, 6});
    BOOST_TEST((r.shape() == shape_t{2, 6}));
    auto u = t.unsqueeze(0);
    BOOST_TEST((u.shape() == shape_t{1, 3, 4}));
}

BOOST_AUTO_TEST_CASE(bad_views_throw_with_the_offending_value) {
    auto t = xgrad::zeros<float>({3, 4});
    BOOST_CHECK_EXCEPTION(t.transpose(0, 2), xgrad::index_error,
                          [](const auto& e) { return std::string(e.what()).find("axis 2") != std::string::npos; });
    BOOST_CHECK_EXCEPTION(t.reshape({5, 3}), xgrad::shape_error,
                          [](const auto& e) { return std::string(e.what()).find("{5, 3}") != std::string::npos; });
    BOOST_CHECK_EXCEPTION(t.slice(0, 7, 9), xgrad::index_error,
                          [](const auto& e) { return std::string(e.what()).find("start 7") != std::string::npos; });
    BOOST_CHECK_THROW(t.select(1, 4), xgrad::index_error);
    BOOST_CHECK_THROW(t.at({0, 4}), xgrad::index_error);
    BOOST_CHECK_THROW(t.permute({0, 0}), xgrad::index_error);
    BOOST_CHECK_THROW(t.item(), xgrad::shape_error);
    BOOST_CHECK_THROW(xgrad::arange<int>(0, 3, 0), xgrad::value_error);
    BOOST_CHECK_THROW((xgrad::tensor<float>({2, 2}, {1.0f, 2.0f})), xgrad::shape_error);
}

BOOST_AUTO_TEST_CASE(printing_is_readable) {
    std::ostringstream os;
    os << xgrad::tensor<int>({2, 2}, {1, 2, 3, 4});
    BOOST_TEST(os.str() == "tensor([[1, 2],\n        [3, 4]], shape={2, 2})");
    std::ostringstream long_os;
    long_os << xgrad::arange<int>(10);
    BOOST_TEST(long_os.str() == "tensor([0, 1, 2, ..., 7, 8, 9], shape={10})");
}

BOOST_AUTO_TEST_CASE(xtensor_interop_is_zero_copy_both_ways) {
    auto t = xgrad::arange<double>(6).reshape({2, 3});
    auto xv = xgrad::as_xtensor(t);
    BOOST_TEST(xv(1, 2) == 5.0);
    xv(0, 1) = 42.0;  // same memory
    BOOST_TEST(t(0, 1) == 42.0);
    auto xtt = xgrad::as_xtensor(t.transpose(0, 1));
    BOOST_TEST(xtt(2, 1) == 5.0);

    xt::xtensor<float, 2> owned = {{1, 2, 3}, {4, 5, 6}};
    const float* before = owned.data();
    auto g = xgrad::from_xtensor(std::move(owned));
    BOOST_TEST(g.data() == before);  // moved, not copied
    BOOST_TEST(g(1, 0) == 4.0f);

    xt::xarray<float> arr = {{1, 2}, {3, 4}};
    auto view = xgrad::view_of(arr);
    view(0, 0) = 9.0f;
    BOOST_TEST(arr(0, 0) == 9.0f);
    // an xgrad expression reads the adapted memory directly
    auto doubled = xgrad::eval(view * 2.0f);
    BOOST_TEST((doubled.to_vector() == std::vector<float>{18, 4, 6, 8}));
}

BOOST_AUTO_TEST_CASE(assign_broadcasts_and_astype_converts) {
    auto t = xgrad::zeros<float>({2, 3});
    t.assign(xgrad::tensor<float>({3}, {1, 2, 3}));
    BOOST_TEST((t.to_vector() == std::vector<float>{1, 2, 3, 1, 2, 3}));
    BOOST_CHECK_THROW(t.assign(xgrad::zeros<float>({2})), xgrad::shape_error);
    auto d = t.astype<double>();
    BOOST_TEST(d(1, 2) == 3.0);
    auto cl = t.clone();
    cl(0, 0) = -1;
    BOOST_TEST(t(0, 0) == 1.0f);
}

BOOST_AUTO_TEST_CASE(absurd_shapes_are_rejected_not_overflowed) {
    BOOST_CHECK_THROW(xgrad::empty<float>({1u << 31, 1u << 31, 1u << 31}), xgrad::value_error);
    auto z = xgrad::empty<float>({0, std::size_t{1} << 40, std::size_t{1} << 40});  // zero elements: fine
    BOOST_TEST(z.size() == 0u);
}

BOOST_AUTO_TEST_CASE(large_blocks_are_reused_up_to_the_cache_limit) {
    using cache = xgrad::detail::storage_cache;
    auto& c = cache::instance();
    const std::size_t old_limit = xgrad::storage_cache_bytes();
    // size classes: whole alignment units below min_bytes, eighths of a power of two above
    BOOST_TEST(cache::size_class(1) == xgrad::alignment);
    BOOST_TEST(cache::size_class(cache::min_bytes) == cache::min_bytes);
    BOOST_TEST(cache::size_class(cache::min_bytes + 1) == cache::min_bytes + cache::min_bytes / 8);
    BOOST_TEST(cache::size_class(1000000) == 1048576u);  // 2^19 * 2 = 1 MiB: 1,000,000 > 7/8 MiB

    xgrad::set_storage_cache_bytes(std::size_t(64) << 20);
    const std::size_t n = 300000;  // 1.2 MB of floats
    const float* first = nullptr;
    {
        auto a = xgrad::empty<float>({n});
        first = a.data();
        BOOST_TEST(reinterpret_cast<std::uintptr_t>(first) % xgrad::alignment == 0u);
    }
    BOOST_TEST(c.held() >= n * sizeof(float));
    const std::size_t hits = c.hits();
    {
        auto b = xgrad::zeros<float>({n - 1000});  // same size class: the same block, zeroed
        BOOST_TEST(b.data() == first);
        BOOST_TEST(c.hits() == hits + 1);
        const auto v = b.to_vector();
        BOOST_TEST(std::all_of(v.begin(), v.end(), [](float x) { return x == 0.f; }));
    }
    // a smaller limit frees what is over it; 0 disables the cache
    xgrad::set_storage_cache_bytes(0);
    BOOST_TEST(c.held() == 0u);
    { auto d = xgrad::empty<float>({n}); }
    BOOST_TEST(c.held() == 0u);
    xgrad::set_storage_cache_bytes(old_limit);
}
