#define BOOST_TEST_MODULE io_csv
#include <boost/test/unit_test.hpp>

#include <xgrad/data/datasets.hpp>
#include <xgrad/io/csv.hpp>

#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;

namespace {

std::vector<float> floats(const xgrad::tensor<float>& t) { return t.to_vector(); }
std::vector<std::int64_t> ints(const xgrad::tensor<std::int64_t>& t) { return t.to_vector(); }

}  // namespace

BOOST_AUTO_TEST_CASE(header_detected_label_last) {
    const auto t = io::parse_csv("a,b,class\n1,2.5,0\n-3,4e2,2\n", "t.csv");
    BOOST_TEST(t.features.shape() == (xgrad::shape_t{2, 2}));
    BOOST_TEST(floats(t.features) == (std::vector<float>{1, 2.5f, -3, 400}));
    BOOST_TEST(ints(t.labels) == (std::vector<std::int64_t>{0, 2}));
    BOOST_TEST(t.feature_names == (std::vector<std::string>{"a", "b"}));
    BOOST_TEST(t.label_name == "class");
}

BOOST_AUTO_TEST_CASE(no_header_label_by_index) {
    io::csv_options opt;
    opt.label = std::ptrdiff_t{0};
    const auto t = io::parse_csv("3,1,2\n1,+4,5.0\n", "t.csv", opt);
    BOOST_TEST(t.feature_names.empty());
    BOOST_TEST(ints(t.labels) == (std::vector<std::int64_t>{3, 1}));
    BOOST_TEST(floats(t.features) == (std::vector<float>{1, 2, 4, 5}));

    opt.label = std::ptrdiff_t{-2};  // the middle column
    const auto u = io::parse_csv("3,1,2\n1,4,5.0\n", "t.csv", opt);
    BOOST_TEST(ints(u.labels) == (std::vector<std::int64_t>{1, 4}));
    BOOST_TEST(floats(u.features) == (std::vector<float>{3, 2, 1, 5}));
}

BOOST_AUTO_TEST_CASE(label_by_name_and_forced_header) {
    const io::csv_options opt{.header = io::csv_header::present, .label = "y"};
    const auto t = io::parse_csv("1,y,3\n7,1,8\n", "t.csv", opt);  // numeric header names
    BOOST_TEST(t.feature_names == (std::vector<std::string>{"1", "3"}));
    BOOST_TEST(ints(t.labels) == (std::vector<std::int64_t>{1}));
    BOOST_TEST(floats(t.features) == (std::vector<float>{7, 8}));
}

BOOST_AUTO_TEST_CASE(quoted_fields_crlf_blank_lines_bom) {
    const std::string text =
        "\xEF\xBB\xBF\"width, cm\",\"say \"\"hi\"\"\",\"multi\nline\",label\r\n"
        "\r\n"
        " \"1.5\" , 2 ,3,\"1\"\r\n"
        "4,5,6,0\r\n"
        "\n";
    const auto t = io::parse_csv(text, "q.csv");
    BOOST_TEST(t.feature_names == (std::vector<std::string>{"width, cm", "say \"hi\"", "multi\nline"}));
    BOOST_TEST(floats(t.features) == (std::vector<float>{1.5f, 2, 3, 4, 5, 6}));
    BOOST_TEST(ints(t.labels) == (std::vector<std::int64_t>{1, 0}));
}

BOOST_AUTO_TEST_CASE(other_delimiters) {
    io::csv_options opt;
    opt.delimiter = ';';
    const auto ok = io::parse_csv("1.5;2;3\n", "s.csv", opt);
    BOOST_TEST(floats(ok.features) == (std::vector<float>{1.5f, 2}));
    BOOST_TEST(ints(ok.labels) == (std::vector<std::int64_t>{3}));
    // no decimal commas: "1,5" is a single field that is not a number
    opt.header = io::csv_header::absent;
    auto msg = error_of([&] { io::parse_csv("1,5;2;3\n", "s.csv", opt); });
    BOOST_TEST(contains(msg, "s.csv: line 1: column 1: \"1,5\" is not a number"));
    opt.delimiter = '\t';
    opt.header = io::csv_header::detect;
    const auto t = io::parse_csv("x\ty\tl\n 1 \t2\t0\n", "t.tsv", opt);
    BOOST_TEST(floats(t.features) == (std::vector<float>{1, 2}));
}

BOOST_AUTO_TEST_CASE(ragged_rows_name_the_line) {
    auto msg = error_of([&] { io::parse_csv("a,b,c\n1,2,0\n\n3,4\n", "r.csv"); });
    BOOST_TEST(contains(msg, "r.csv: line 4: 2 fields where line 1 has 3"));
    // a quoted newline moves later rows down a line
    msg = error_of([&] { io::parse_csv("\"a\nb\",b,c\n1,2,0\n1,2,3,4\n", "r.csv"); });
    BOOST_TEST(contains(msg, "r.csv: line 4: 4 fields"));
}

BOOST_AUTO_TEST_CASE(bad_values_name_line_and_column) {
    auto msg = error_of([&] { io::parse_csv("a,b,c\n1,2,0\n1,x,0\n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 3: column 2: \"x\" is not a number"));
    msg = error_of([&] { io::parse_csv("1,2,0\n1,,0\n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 2: column 2: \"\" is not a number"));
    msg = error_of([&] { io::parse_csv("1,2,0.5\n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 1: column 3: label \"0.5\" is not a non-negative integer"));
    msg = error_of([&] { io::parse_csv("1,2,-1\n", "v.csv"); });
    BOOST_TEST(contains(msg, "label \"-1\" is not a non-negative integer"));
    io::csv_options opt;
    opt.num_classes = 3;
    msg = error_of([&] { io::parse_csv("1,2,0\n1,2,3\n", "v.csv", opt); });
    BOOST_TEST(contains(msg, "v.csv: line 2: column 3: label 3 is outside 0..2"));
    msg = error_of([&] { io::parse_csv("a,b\n1,\"2\n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 2: quoted field is never closed"));
    msg = error_of([&] { io::parse_csv("a,b\n\"1\"x,2\n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 2: unexpected character 'x' after a closing quote"));
    msg = error_of([&] { io::parse_csv("a,b\n", "v.csv"); });
    BOOST_TEST(contains(msg, "no data rows"));
    msg = error_of([&] { io::parse_csv("\n \n", "v.csv"); });
    BOOST_TEST(contains(msg, "v.csv: line 1: no rows"));
    msg = error_of([&] { io::parse_csv("1\n2\n", "v.csv"); });
    BOOST_TEST(contains(msg, "at least one feature column"));
}

BOOST_AUTO_TEST_CASE(bad_label_options) {
    io::csv_options opt;
    opt.label = "missing";
    auto msg = error_of<xgrad::value_error>([&] { io::parse_csv("a,b\n1,0\n", "o.csv", opt); });
    BOOST_TEST(contains(msg, "no column is named \"missing\""));
    msg = error_of<xgrad::value_error>([&] { io::parse_csv("1,0\n", "o.csv", opt); });
    BOOST_TEST(contains(msg, "there is no header"));
    opt.label = std::ptrdiff_t{5};
    msg = error_of<xgrad::value_error>([&] { io::parse_csv("1,0\n", "o.csv", opt); });
    BOOST_TEST(contains(msg, "label column 5 is out of range for 2 columns"));
}

BOOST_AUTO_TEST_CASE(file_and_dataset) {
    temp_dir dir;
    write_text(dir / "iris.csv", "sepal,petal,species\n5.1,1.4,0\n7.0,4.7,1\n6.3,6.0,2\n");
    const auto ds = xgrad::data::csv_dataset(dir / "iris.csv", {.num_classes = 3});
    BOOST_TEST(ds.size() == 3u);
    const auto s = ds.get(1);
    BOOST_TEST(s.input.shape() == (xgrad::shape_t{2}));
    BOOST_TEST(s.input(0) == 7.0f);
    BOOST_TEST(s.input(1) == 4.7f);
    BOOST_TEST(s.label == 1);
    const auto msg = error_of<xgrad::io_error>([&] { io::read_csv(dir / "absent.csv"); });
    BOOST_TEST(contains(msg, "absent.csv"));
}
