#define BOOST_TEST_MODULE text
#include <boost/test/unit_test.hpp>

#include <bzlib.h>

#include <xgrad/data/loader.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/text.hpp>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "data_test_support.hpp"
#include "test_support.hpp"

using namespace xgrad_test;
namespace io = xgrad::io;
namespace text = xgrad::text;
using strings = std::vector<std::string>;
using ids_t = std::vector<std::int64_t>;

namespace {

bytes bzip2(const std::string& s) {
    std::vector<char> out(s.size() + s.size() / 50 + 700);
    unsigned n = static_cast<unsigned>(out.size());
    if (BZ2_bzBuffToBuffCompress(out.data(), &n, const_cast<char*>(s.data()), static_cast<unsigned>(s.size()), 9, 0,
                                 0) != BZ_OK)
        throw std::runtime_error("bzip2 compression failed");
    bytes b(n);
    std::memcpy(b.data(), out.data(), n);
    return b;
}

std::string as_string(const bytes& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

}  // namespace

// ---------------------------------------------------------------- tokenizer, vocabulary

BOOST_AUTO_TEST_CASE(tokenizer_lowercases_and_splits_punctuation) {
    const text::tokenizer tok;
    BOOST_TEST(tok.tokenize("Don't PANIC!  It's 42.5%\n(ok)") ==
               (strings{"don", "'", "t", "panic", "!", "it", "'", "s", "42", ".", "5", "%", "(", "ok", ")"}));
    BOOST_TEST(tok.tokenize("").empty());
    BOOST_TEST(tok.tokenize(" \t\n").empty());
    BOOST_TEST(tok.tokenize("Caf\xc3\xa9 na\xc3\xafve") == (strings{"caf\xc3\xa9", "na\xc3\xafve"}));  // UTF-8 kept

    const text::tokenizer plain({.lowercase = false, .punctuation = false});
    BOOST_TEST(plain.tokenize("Hello, World!") == (strings{"Hello", "World"}));
}

BOOST_AUTO_TEST_CASE(vocabulary_orders_by_count_and_applies_limits) {
    const std::vector<strings> docs{{"b", "a", "c", "a"}, {"b", "a", "d"}, {"c", "e"}};
    const auto v = text::vocabulary::build(docs);
    // a:3, b:2, c:2 (tie in byte order), d:1, e:1
    BOOST_TEST(v.tokens() == (strings{"<pad>", "<unk>", "a", "b", "c", "d", "e"}));
    BOOST_TEST(v.size() == 7u);
    BOOST_TEST(v.id("a") == 2);
    BOOST_TEST(v.id("zzz") == text::vocabulary::unk_id);
    BOOST_TEST(v.encode(strings{"c", "x", "a"}) == (ids_t{4, 1, 2}));
    BOOST_TEST(v.decode(ids_t{4, 1, 2, 0, 0}) == "c <unk> a");

    const auto m = text::vocabulary::build(docs, {.min_count = 2});
    BOOST_TEST(m.tokens() == (strings{"<pad>", "<unk>", "a", "b", "c"}));
    const auto s = text::vocabulary::build(docs, {.min_count = 1, .max_size = 4});
    BOOST_TEST(s.tokens() == (strings{"<pad>", "<unk>", "a", "b"}));

    BOOST_TEST(contains(error_of<xgrad::index_error>([&] { (void)v.decode(ids_t{2, 7}); }), "token id 7"));
    BOOST_TEST(contains(error_of<xgrad::index_error>([&] { (void)v.token(-1); }), "token id -1"));
    error_of<xgrad::value_error>([&] { (void)text::vocabulary::build(docs, {.min_count = 1, .max_size = 1}); });
    error_of<xgrad::value_error>([] { text::vocabulary(strings{"<unk>", "<pad>"}); });
    BOOST_TEST(contains(error_of<xgrad::value_error>([] { text::vocabulary(strings{"<pad>", "<unk>", "x", "x"}); }),
                        "appears twice"));
}

BOOST_AUTO_TEST_CASE(vocabulary_save_load_round_trip_and_bad_files) {
    temp_dir dir;
    const auto v = text::vocabulary::build(std::vector<strings>{{"x", "y", "y", "\xc3\xa9"}});
    v.save(dir / "v.txt");
    const auto w = text::vocabulary::load(dir / "v.txt");
    BOOST_TEST(w.tokens() == v.tokens());
    BOOST_TEST(w.id("y") == v.id("y"));

    auto write = [&](const std::string& s) {
        write_file(dir / "bad.txt", std::as_bytes(std::span(s.data(), s.size())));
        return dir / "bad.txt";
    };
    BOOST_TEST(contains(error_of([&] { (void)text::vocabulary::load(write("<unk>\n<pad>\n")); }), "bad.txt: line 1"));
    BOOST_TEST(contains(error_of([&] { (void)text::vocabulary::load(write("<pad>\n<unk>\na\n\nb\n")); }),
                        "line 4: empty token"));
    BOOST_TEST(contains(error_of([&] { (void)text::vocabulary::load(write("<pad>\n<unk>\na\na\n")); }),
                        "line 4: token \"a\" appears twice"));
    BOOST_TEST(contains(error_of([&] { (void)text::vocabulary::load(write("<pad>\n")); }), "ends before"));
    error_of<xgrad::io_error>([&] { (void)text::vocabulary::load(dir / "missing.txt"); });
}

// ---------------------------------------------------------------- text_dataset, loader

BOOST_AUTO_TEST_CASE(text_dataset_pads_truncates_and_counts_lengths) {
    const strings texts{"the cat sat", "", "a dog, a cat and a bird"};
    const ids_t labels{1, 0, 2};
    const auto vocab = text::vocabulary(strings{"<pad>", "<unk>", "a", "cat", "the", "dog", "sat"});
    const text::text_dataset ds(texts, labels, vocab, 4);
    BOOST_TEST(ds.size() == 3u);
    BOOST_TEST(ds.ids().shape() == (xgrad::shape_t{3, 4}));
    BOOST_TEST(ds.ids().to_vector() == (ids_t{4, 3, 6, 0, /**/ 1, 0, 0, 0, /**/ 2, 5, 1, 2}));
    BOOST_TEST(ds.length(0) == 3u);
    BOOST_TEST(ds.length(1) == 1u);  // empty text -> one <unk>
    BOOST_TEST(ds.length(2) == 4u);
    BOOST_TEST(ds.truncated() == 1u);
    const auto s = ds.get(2);
    BOOST_TEST(s.input.to_vector() == (ids_t{2, 5, 1, 2}));
    BOOST_TEST(s.label == 2);

    const text::text_dataset tail(texts, labels, vocab, 4, {}, text::truncation::keep_tail);
    BOOST_TEST(tail.get(2).input.to_vector() == (ids_t{3, 1, 2, 1}));  // "cat and a bird"; "and", "bird" are <unk>

    BOOST_TEST(text::lengths(ds.ids()).to_vector() == (ids_t{3, 1, 4}));
    auto short_rows = xgrad::from_vector<std::int64_t>({5, 0, 0, 0, 3, 2, 0, 0}, {2, 4});
    const auto trimmed = text::trim_padding(short_rows);
    BOOST_TEST(trimmed.shape() == (xgrad::shape_t{2, 2}));
    BOOST_TEST(trimmed.to_vector() == (ids_t{5, 0, 3, 2}));

    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { text::text_dataset(texts, ids_t{1}, vocab, 4); }),
                        "3 texts but 1 labels"));
    error_of<xgrad::value_error>([&] { text::text_dataset(texts, labels, vocab, 0); });
    error_of<xgrad::value_error>([&] { text::text_dataset(texts, ids_t{1, -1, 0}, vocab, 4); });
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] {
                            (void)text::text_dataset::from_ids(std::vector<ids_t>{{3, 0, 2}}, ids_t{0}, 4);
                        }),
                        "id 0 (<pad>)"));
    error_of<xgrad::index_error>([&] { (void)ds.get(3); });
    error_of<xgrad::shape_error>([] { (void)text::lengths(xgrad::tensor<std::int64_t>(xgrad::shape_t{4})); });
}

BOOST_AUTO_TEST_CASE(loader_buckets_by_length) {
    // 64 sequences of lengths 1..16 in a scrambled order
    std::vector<ids_t> seqs;
    ids_t labels;
    for (std::size_t i = 0; i < 64; ++i) {
        const std::size_t len = 1 + (i * 7) % 16;
        seqs.emplace_back(len, 2);
        labels.push_back(static_cast<std::int64_t>(i));
    }
    const auto ds = text::text_dataset::from_ids(seqs, labels, 16);
    auto spread = [](const xgrad::tensor<std::int64_t>& ids) {
        const auto len = text::lengths(ids).to_vector();
        return *std::max_element(len.begin(), len.end()) - *std::min_element(len.begin(), len.end());
    };

    xgrad::data::loader plain(ds, {.batch_size = 8, .shuffle = true, .seed = 3});
    xgrad::data::loader bucketed(ds, {.batch_size = 8, .shuffle = true, .seed = 3, .bucket_pool = 8});
    std::int64_t plain_spread = 0, bucket_spread = 0;
    for (auto& b : plain) plain_spread += spread(b.inputs);
    std::set<std::int64_t> seen;
    std::vector<std::int64_t> first_epoch;
    for (auto& b : bucketed) {
        bucket_spread += spread(b.inputs);
        BOOST_TEST(b.inputs.shape()[0] == 8u);
        for (auto l : b.labels.to_vector()) {
            seen.insert(l);
            first_epoch.push_back(l);
        }
    }
    BOOST_TEST(seen.size() == 64u);  // every sample exactly once
    // one pool of 64 sorted by length: each batch of 8 spans at most 2 distinct lengths
    BOOST_TEST(bucket_spread <= 8);
    BOOST_TEST(plain_spread > 40);
    // the batches are shuffled: the first batch is not always the shortest
    std::vector<std::int64_t> second_epoch;
    for (auto& b : bucketed)
        for (auto l : b.labels.to_vector()) second_epoch.push_back(l);
    BOOST_TEST(first_epoch != second_epoch);

    // the same batches with worker threads
    xgrad::data::loader threaded(ds, {.batch_size = 8, .shuffle = true, .workers = 2, .seed = 3, .bucket_pool = 8});
    std::vector<std::int64_t> threaded_epoch;
    for (auto& b : threaded)
        for (auto l : b.labels.to_vector()) threaded_epoch.push_back(l);
    BOOST_TEST(threaded_epoch == first_epoch);

    error_of<xgrad::value_error>([] {
        xgrad::data::tensor_dataset<float> t(xgrad::tensor<float>(xgrad::shape_t{2, 1}),
                                             xgrad::tensor<std::int64_t>(xgrad::shape_t{2}));
        xgrad::data::loader l(t, {.bucket_pool = 2});
    });
}

BOOST_AUTO_TEST_CASE(text_csv_columns_labels_and_errors) {
    const std::string csv = "category,text,movie\nfresh,\"Great, fun\",a\nplot,\"long\nplot\",b\nrotten,Dull.,c\n";
    text::text_csv_options opt;
    opt.text_column = std::string("text");
    opt.label_column = std::string("category");
    opt.classes = {"rotten", "fresh"};
    opt.skip_other_labels = true;
    const auto t = text::parse_text_csv(csv, "rt.csv", opt);
    BOOST_TEST(t.texts == (strings{"Great, fun", "Dull."}));
    BOOST_TEST(t.labels == (ids_t{1, 0}));
    BOOST_TEST(t.skipped == 1u);

    opt.skip_other_labels = false;
    BOOST_TEST(contains(error_of([&] { (void)text::parse_text_csv(csv, "rt.csv", opt); }),
                        "rt.csv: line 3: label \"plot\" is not one of the classes"));

    const auto tsv = text::parse_text_csv("3\thello there\n0\tbye\n", "i.tsv",
                                          {.delimiter = '\t', .header = false, .text_column = 1, .label_column = 0});
    BOOST_TEST(tsv.texts == (strings{"hello there", "bye"}));
    BOOST_TEST(tsv.labels == (ids_t{3, 0}));
    BOOST_TEST(contains(error_of([] {
                            (void)text::parse_text_csv("1\ta\nx\tb\n", "i.tsv",
                                                       {.delimiter = '\t', .header = false, .text_column = 1,
                                                        .label_column = 0});
                        }),
                        "i.tsv: line 2: label \"x\" is not a non-negative integer"));
    BOOST_TEST(contains(error_of([] { (void)text::parse_text_csv("t,l\na,1\nb\n", "x.csv"); }), "line 3: 1 fields"));
    error_of<xgrad::value_error>(
        [] { (void)text::parse_text_csv("t,l\na,1\n", "x.csv", {.label_column = std::string("nope")}); });
    error_of<xgrad::value_error>([] { (void)text::parse_text_csv("t,l\na,1\n", "x.csv", {.label_column = 5}); });
    error_of([] { (void)text::parse_text_csv("t,l\n", "x.csv"); });

    // the same table bzip2-compressed on disk
    temp_dir dir;
    write_file(dir / "rt.csv.bz2", bzip2(csv));
    opt.skip_other_labels = true;
    BOOST_TEST(text::read_text_csv(dir / "rt.csv.bz2", opt).texts == t.texts);
}

BOOST_AUTO_TEST_CASE(synthetic_intents_are_reproducible_and_split_by_phrasing) {
    const auto a = text::synthetic_intents(20, text::intent_part::train, 7);
    const auto b = text::synthetic_intents(20, text::intent_part::train, 7);
    const auto t = text::synthetic_intents(20, text::intent_part::test, 7);
    BOOST_TEST(a.texts == b.texts);
    BOOST_TEST(a.classes.size() == 10u);
    BOOST_TEST(a.texts.size() == 200u);
    BOOST_TEST(a.labels[13] == 3);
    std::set<std::string> train_set(a.texts.begin(), a.texts.end());
    std::size_t overlap = 0;
    for (const auto& s : t.texts) overlap += train_set.count(s);
    BOOST_TEST(overlap == 0u);  // held-out phrasings never produce a training sentence
    error_of<xgrad::value_error>([] { (void)text::synthetic_intents(0, text::intent_part::train); });
}

// ---------------------------------------------------------------- bzip2

BOOST_AUTO_TEST_CASE(bunzip2_round_trip_and_bad_streams) {
    std::string big;
    for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
    const auto z = bzip2(big);
    BOOST_TEST(io::is_bzip2(z));
    BOOST_TEST(as_string(io::bunzip2(z, "b.bz2", 1 << 30)) == big);

    auto two = bzip2("first ");  // concatenated streams, as `cat a.bz2 b.bz2`
    append(two, bzip2("second"));
    BOOST_TEST(as_string(io::bunzip2(two, "c.bz2", 1 << 20)) == "first second");

    BOOST_TEST(contains(error_of([&] { (void)io::bunzip2(z, "b.bz2", 1000); }), "exceeds the limit of 1000 bytes"));
    BOOST_TEST(io::bunzip2(z, "b.bz2", big.size()).size() == big.size());  // exactly at the bound
    const bytes cut(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(z.size() / 2));
    BOOST_TEST(contains(error_of([&] { (void)io::bunzip2(cut, "cut.bz2", 1 << 30); }), "cut.bz2: byte"));
    bytes bad = z;
    bad[bad.size() / 2] ^= std::byte{0x55};
    BOOST_TEST(contains(error_of([&] { (void)io::bunzip2(bad, "bad.bz2", 1 << 30); }), "bad.bz2: byte"));
    BOOST_TEST(contains(error_of([] { (void)io::bunzip2(make_bytes({'n', 'o', 'p', 'e'}), "n.bz2", 100); }),
                        "not a bzip2 stream"));
    bytes trailing = bzip2("x");
    append(trailing, make_bytes({1, 2, 3}));
    BOOST_TEST(contains(error_of([&] { (void)io::bunzip2(trailing, "t.bz2", 100); }), "trailing garbage"));

    temp_dir dir;
    write_file(dir / "plain.txt", std::as_bytes(std::span(big.data(), 10)));
    BOOST_TEST(io::read_text(dir / "plain.txt") == big.substr(0, 10));
    error_of<xgrad::io_error>([&] { (void)io::read_text(dir / "none.bz2"); });
}

// ---------------------------------------------------------------- ARFF

BOOST_AUTO_TEST_CASE(arff_reads_weka_text_tables) {
    const std::string arff =
        "% Reuters-like\n"
        "@relation 'Reuters Grain'\n\n"
        "@attribute Text string\n"
        "@attribute 'num ber' NUMERIC\n"
        "@attribute when date \"yyyy-MM-dd\"\n"
        "@attribute class-att {0,1}\n"
        "@data\n"
        "'WHEAT rises\\nin \\'87\\\\', 1.5, 1987-04-01, 1\n"
        "\"plain, text\",?,?,0\n"
        "% a comment between rows\n"
        "unquoted,-2e3,'2001-01-01',?\n";
    const auto t = io::parse_arff(arff, "r.arff");
    BOOST_TEST(t.relation == "Reuters Grain");
    BOOST_TEST(t.rows == 3u);
    BOOST_TEST(t.attributes.size() == 4u);
    BOOST_TEST(t.attributes[1].name == "num ber");
    BOOST_TEST((t.attributes[3].type == io::arff_type::nominal));
    BOOST_TEST(t.attributes[3].values == (strings{"0", "1"}));
    BOOST_TEST(t.strings("Text") == (strings{"WHEAT rises\nin '87\\", "plain, text", "unquoted"}));
    BOOST_TEST(t.strings("when") == (strings{"1987-04-01", "", "2001-01-01"}));
    BOOST_TEST(t.numbers[1][0] == 1.5);
    BOOST_TEST(std::isnan(t.numbers[1][1]));
    BOOST_TEST(t.numbers[1][2] == -2000.0);
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { (void)t.labels("class-att"); }), "missing in data row 3"));
    BOOST_TEST(contains(error_of<xgrad::value_error>([&] { (void)t.labels("Text"); }), "not nominal"));
    error_of<xgrad::value_error>([&] { (void)t.column("nope"); });

    const auto u = io::parse_arff("@RELATION w\n@ATTRIBUTE outlook {sunny, 'over cast'}\n@DATA\n'over cast'\nsunny\n",
                                  "w.arff");
    BOOST_TEST(u.labels("outlook") == (ids_t{1, 0}));

    temp_dir dir;
    write_file(dir / "r.arff.bz2", bzip2(arff));
    BOOST_TEST(io::read_arff(dir / "r.arff.bz2").strings("Text") == t.strings("Text"));
}

BOOST_AUTO_TEST_CASE(arff_malformed_files_name_the_line) {
    const std::string head = "@relation r\n@attribute t string\n@attribute c {a,b}\n@data\n";
    auto err = [&](const std::string& body) { return error_of([&] { (void)io::parse_arff(head + body, "m.arff"); }); };
    BOOST_TEST(contains(err("'x',c\n"), "m.arff: line 5: attribute \"c\": \"c\" is not one of its values"));
    BOOST_TEST(contains(err("'x',a\n'unclosed,b\n"), "line 6: quoted value is never closed"));
    BOOST_TEST(contains(err("'x'\n"), "line 5: 1 values where 2 attributes are declared"));
    BOOST_TEST(contains(err("'x',a,b\n"), "line 5: more values"));
    BOOST_TEST(contains(err("{0 x, 1 a}\n"), "sparse rows are not supported"));
    BOOST_TEST(contains(err("'x',\n"), "line 5: a value is missing"));
    auto herr = [](const std::string& s) { return error_of([&] { (void)io::parse_arff(s, "h.arff"); }); };
    BOOST_TEST(contains(herr("@relation r\n@attribute x numeric\n"), "no @data section"));
    BOOST_TEST(contains(herr("@attribute x numeric\n"), "line 1: @attribute before @relation"));
    BOOST_TEST(contains(herr("@relation r\n@attribute x relational\n@data\n"), "line 2: attribute \"x\": unsupported type"));
    BOOST_TEST(contains(herr("@relation r\n@attribute x {a,b\n@data\n"), "line 2: expected ',' or '}'"));
    BOOST_TEST(contains(herr("@relation r\n@attribute x numeric\n@attribute x string\n@data\n"), "declared twice"));
    BOOST_TEST(contains(herr("hello\n"), "line 1: expected @relation"));
    BOOST_TEST(contains(herr("@relation r\n@attribute n numeric\n@data\n12abc\n"), "line 4: attribute \"n\": \"12abc\" is not a number"));
}

BOOST_AUTO_TEST_CASE(weka_reuters_files_when_installed) {
    const std::filesystem::path p = "/usr/share/doc/weka/examples/ReutersGrain-test.arff";
    if (!std::filesystem::exists(p)) {
        BOOST_TEST_MESSAGE("weka's Reuters files are not installed; nothing to check");
        return;
    }
    const auto t = io::read_arff(p);
    BOOST_TEST(t.rows == 604u);
    const auto y = t.labels("class-att");
    BOOST_TEST(std::count(y.begin(), y.end(), 1) == 57);
    BOOST_TEST(t.strings("Text")[0].substr(0, 29) == "ASIAN EXPORTERS FEAR DAMAGE F");
}
