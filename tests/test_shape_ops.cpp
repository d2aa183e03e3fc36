#define BOOST_TEST_MODULE shape_ops
#include <boost/test/unit_test.hpp>

#include "functional_test_support.hpp"

using namespace xgrad;
using xgrad_test::check_close;
using xgrad_test::reference;

BOOST_AUTO_TEST_CASE(forward_matches_pytorch) {
    const auto& ref = reference::get();
    const auto x = ref("shape.x");
    const auto z = ref("shape.z");
    check_close(eval(permute(x, {2, 0, 1})), ref("shape.permute_201"), 0, 0, "permute");
    check_close(eval(transpose(x, 0, 2)), ref("shape.transpose_02"), 0, 0, "transpose");
    check_close(eval(flatten(x)), ref("shape.flatten_1"), 0, 0, "flatten");
    check_close(eval(concat(1, x, z, x)), ref("shape.concat_1"), 0, 0, "concat variadic");
    check_close(eval(concat({x, z, x}, 1)), ref("shape.concat_1"), 0, 0, "concat list");
    check_close(eval(split(x, {1, 2}, 1)[1]), ref("shape.split_1_part1"), 0, 0, "split");
}

BOOST_AUTO_TEST_CASE(reshape_and_flatten) {
    rng gen(51);
    auto x = param(randn<double>({3, 4, 5}, gen));
    BOOST_TEST(reshape(x, {5, -1}).shape() == (shape_t{5, 12}));
    BOOST_TEST(reshape(x, shape_t{60}).shape() == (shape_t{60}));
    BOOST_TEST(flatten(x).shape() == (shape_t{3, 20}));
    BOOST_TEST(flatten(x, 0).shape() == (shape_t{60}));
    BOOST_TEST(flatten(x, 0, 1).shape() == (shape_t{12, 5}));
    BOOST_TEST(eval(reshape(x, {-1})).to_vector() == x.value().to_vector());
    xgrad_test::expect_gradcheck([&] { return reshape(x * 2.0, {5, -1}) * reshape(x, {5, 12}); }, {x}, gen, "reshape");
    xgrad_test::expect_gradcheck([&] { return sigmoid(flatten(x, 1)); }, {x}, gen, "flatten");
}

BOOST_AUTO_TEST_CASE(transpose_and_permute_gradcheck) {
    rng gen(52);
    for (const shape_t& s : {shape_t{1, 1}, shape_t{1, 7}, shape_t{3, 5}, shape_t{2, 3, 5}}) {
        auto x = param(randn<double>(s, gen));
        const std::string n = to_string(s);
        xgrad_test::expect_gradcheck([&] { return transpose(x, 0, -1) * 1.5; }, {x}, gen, "transpose " + n);
        std::vector<std::ptrdiff_t> rev(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) rev[i] = static_cast<std::ptrdiff_t>(s.size() - 1 - i);
        xgrad_test::expect_gradcheck([&] { return permute(tanh(x), rev); }, {x}, gen, "permute " + n);
    }
    auto y = param(randn<double>({2, 3, 4, 5}, gen));
    xgrad_test::expect_gradcheck([&] { return permute(y, {1, 3, 0, 2}); }, {y}, gen, "permute 4-D");
}

BOOST_AUTO_TEST_CASE(concat_forms_and_gradcheck) {
    rng gen(53);
    auto a = param(randn<double>({3, 2, 5}, gen));
    auto b = param(randn<double>({3, 1, 5}, gen));
    const auto c = randn<double>({3, 4, 5}, gen);
    // variadic: any operand types (parameter, tensor, expression) with one element type
    auto v = concat(1, a, c, b * 2.0);
    BOOST_TEST(v.shape() == (shape_t{3, 7, 5}));
    xgrad_test::expect_gradcheck([&] { return concat(1, a, c, b * 2.0); }, {a, b}, gen, "concat variadic");
    // a run-time number of one type: vector or braced list
    std::vector<parameter<double>> ps{a, b, a};
    BOOST_TEST(concat(ps, -2).shape() == (shape_t{3, 5, 5}));
    xgrad_test::expect_gradcheck([&] { return concat(ps, 1); }, {a, b}, gen, "concat vector (a used twice)");
    xgrad_test::expect_gradcheck([&] { return concat({a, a}, 0) * 0.5; }, {a}, gen, "concat list axis 0");
    xgrad_test::expect_gradcheck([&] { return sum(concat({a, b}, 1)); }, {a, b}, gen, "concat under a reduction");
}

BOOST_AUTO_TEST_CASE(split_and_narrow) {
    rng gen(54);
    auto x = param(randn<double>({3, 7, 2}, gen));
    auto parts = split(x, {2, 4, 1}, 1);
    BOOST_TEST(parts.size() == 3u);
    BOOST_TEST(parts[1].shape() == (shape_t{3, 4, 2}));
    BOOST_TEST(eval(parts[2])(1, 0, 1) == x.value()(1, 6, 1));
    auto chunks = split(x, 3, 1);  // 3 + 3 + 1, as PyTorch
    BOOST_TEST(chunks.size() == 3u);
    BOOST_TEST(chunks[2].shape() == (shape_t{3, 1, 2}));
    BOOST_TEST(eval(narrow(x, -2, 2, 3))(2, 0, 1) == x.value()(2, 2, 1));
    xgrad_test::expect_gradcheck([&] { return split(x, {2, 4, 1}, 1)[1]; }, {x}, gen, "split part");
    // parts reassembled in another order, and a split of an elementwise expression
    xgrad_test::expect_gradcheck([&] { auto p = split(x, {2, 5}, 1); return concat({p[1], p[0]}, 1) * x; }, {x}, gen,
                                 "split + concat");
    xgrad_test::expect_gradcheck([&] { return split(x * x, 1, 0)[2]; }, {x}, gen, "split of an expression");
    xgrad_test::expect_gradcheck([&] { return narrow(x, 2, 1, 1); }, {x}, gen, "narrow");
    BOOST_TEST(eval(concat(split(x, 2, 1), 1)).to_vector() == x.value().to_vector());
}

BOOST_AUTO_TEST_CASE(bad_shapes) {
    using xgrad_test::check_throws;
    tensor<float> x({2, 3, 4});
    check_throws<shape_error>([&] { reshape(x, {5, 5}); }, {"reshape", "{2, 3, 4}", "{5, 5}"});
    check_throws<shape_error>([&] { reshape(x, {-1, -1}); }, {"reshape", "more than one -1"});
    check_throws<shape_error>([&] { reshape(x, {5, -1}); }, {"reshape", "infer", "{2, 3, 4}"});
    check_throws<index_error>([&] { permute(x, {0, 0, 1}); }, {"permute", "repeated"});
    check_throws<shape_error>([&] { permute(x, {0, 1}); }, {"permute", "{2, 3, 4}"});
    check_throws<index_error>([&] { transpose(x, 0, 3); }, {"transpose", "axis 3"});
    check_throws<index_error>([&] { flatten(x, 2, 1); }, {"flatten", "start_dim"});
    check_throws<shape_error>([&] { concat(1, x, tensor<float>({2, 3, 5})); }, {"concat", "part 1", "{2, 3, 5}", "{2, 3, 4}"});
    check_throws<shape_error>([&] { concat({x, tensor<float>({2, 3})}, 0); }, {"concat", "part 1", "{2, 3}"});
    check_throws<value_error>([&] { concat(std::vector<tensor<float>>{}, 0); }, {"concat", "at least one"});
    check_throws<shape_error>([&] { split(x, {1, 1}, 1); }, {"split", "{1, 1}", "add up to 2", "extent 3"});
    check_throws<index_error>([&] { narrow(x, 2, 3, 2); }, {"narrow", "[3, 5)", "{2, 3, 4}"});
}
