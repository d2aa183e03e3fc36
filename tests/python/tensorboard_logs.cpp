// TensorBoard event files, plots and PNG images: C++ checks, and the logs that
// check_tensorboard_logs.py reads back with TensorBoard's own EventAccumulator.
//   tensorboard_logs DIR   runs the checks below (exit status 1 on a failure) and writes into DIR
//     manual/     an event_writer's scalars, a histogram and an image of known values
//     fit/        a 3-epoch fit of a small classifier with callbacks::tensorboard (batch and
//                 epoch scalars, lr, weight and gradient histograms, a confusion-matrix image)
//     truncated/  a copy of fit/'s event file cut in the middle of its last record
//     curves.svg  plot() of the fit's history
// and prints what the files must hold, one line each (values as C99 hex floats):
//   scalar TAG STEP VALUE | histo TAG STEP MIN MAX NUM SUM SUM_SQUARES [COUNTS...] |
//   image TAG STEP WIDTH HEIGHT CHANNELS HEX_PIXELS | run NAME | truncated RECORDS_KEPT
#include <xgrad/data/loader.hpp>
#include <xgrad/data/tensor_dataset.hpp>
#include <xgrad/io/tensorboard.hpp>
#include <xgrad/nn.hpp>
#include <xgrad/optim/sgd.hpp>
#include <xgrad/train.hpp>
#include <xgrad/train/plot.hpp>
#include <xgrad/train/tensorboard.hpp>
#include <xgrad/autodiff/backward.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace io = xgrad::io;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        ++failures;
        std::cerr << "FAIL: " << what << '\n';
    }
}

template <class E, class F>
void check_throws(F&& f, const std::string& must_name, const std::string& what) {
    try {
        f();
        check(false, what + ": no exception");
    } catch (const E& e) {
        check(std::string(e.what()).find(must_name) != std::string::npos,
              what + ": message '" + e.what() + "' does not name '" + must_name + "'");
    } catch (const std::exception& e) {
        check(false, what + ": wrong exception type: " + e.what());
    }
}

std::string hex(double v) {
    char b[40];
    std::snprintf(b, sizeof b, "%a", v);
    return b;
}

std::string bytes_of(const std::string& s) {
    std::string out;
    char b[4];
    for (unsigned char c : s) {
        std::snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    return out;
}

struct histo_stats {
    double lo = INFINITY, hi = -INFINITY, num = 0, sum = 0, sum_sq = 0;
};
template <class T>
histo_stats stats_of(const xgrad::tensor<T>& t) {
    histo_stats s;
    for (std::size_t i = 0; i < t.size(); ++i) {
        const double x = t.data()[i];
        s.lo = std::min(s.lo, x), s.hi = std::max(s.hi, x), s.num += 1, s.sum += x, s.sum_sq += x * x;
    }
    return s;
}
void print_histo(const std::string& tag, std::int64_t step, const histo_stats& s) {
    std::cout << "histo\t" << tag << '\t' << step << '\t' << hex(s.lo) << '\t' << hex(s.hi) << '\t' << hex(s.num) << '\t'
              << hex(s.sum) << '\t' << hex(s.sum_sq) << '\n';
}

void format_checks(const fs::path& dir) {
    // CRC-32C check value (RFC 3720 B.4) and the masked form of TFRecord framing
    check(io::detail::crc32c("123456789") == 0xe3069283u, "crc32c check value");
    check(io::detail::crc32c(std::string(32, '\0')) == 0x8a9136aau, "crc32c of 32 zero bytes (RFC 3720)");
    // varints and a scalar Event, byte for byte: wall_time 1.5, step 300, tag "a", value 0.25f
    io::detail::pb_writer w;
    w.uint_field(1, 300);
    w.int_field(2, -1);
    check(bytes_of(w.bytes()) == "08ac02" "10ffffffffffffffffff01", "varint encoding: " + bytes_of(w.bytes()));
    const std::string ev = io::detail::scalar_event(1.5, 300, "a", 0.25f);
    check(bytes_of(ev) == "09000000000000f83f" "10ac02" "2a0a" "0a08" "0a0161" "150000803e",
          "scalar Event encoding: " + bytes_of(ev));
    const std::string rec = io::detail::event_record(ev);
    check(rec.size() == ev.size() + 16 && rec.compare(12, ev.size(), ev) == 0, "record framing");

    // PNG: signature, IHDR of a 3x2 RGB image, IEND's fixed CRC
    io::image img(3, 2, 3);
    const std::string png = io::encode_png(img);
    check(png.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0, "PNG signature");
    check(bytes_of(png.substr(8, 25)) == "0000000d49484452000000030000000208020000" "00" + bytes_of(png.substr(29, 4)),
          "PNG IHDR: " + bytes_of(png.substr(8, 25)));
    check(bytes_of(png.substr(png.size() - 12)) == "0000000049454e44ae426082", "PNG IEND");
    check_throws<xgrad::value_error>([] { io::encode_png(io::image(0, 2, 3)); }, "0x2", "empty image");
    check_throws<xgrad::value_error>([] { io::encode_png(io::image(2, 2, 5)); }, "5 channels", "bad channel count");

    // bad input: a log directory below a regular file cannot be created
    const fs::path file = dir / "not_a_dir";
    std::ofstream(file) << "x";
    check_throws<xgrad::io_error>([&] { io::event_writer bad(file / "logs"); }, (file / "logs").string(),
                                  "unwritable log dir");
    check_throws<xgrad::io_error>([&] { xgrad::callbacks::tensorboard(file); }, file.string(),
                                  "log dir that is a file");

    // a corrupted byte inside a whole record is a format_error naming the file and offset
    const fs::path bad = dir / "corrupt.tfevents";
    {
        std::ofstream f(bad, std::ios::binary);
        std::string r = io::detail::event_record(io::detail::event_file_version(1.0));
        r[14] ^= 1;
        f << r;
    }
    check_throws<xgrad::format_error>([&] { io::read_event_records(bad); }, "record at byte 0", "corrupt record");

    check_throws<xgrad::value_error>([] { xgrad::plot_svg(xgrad::history{}); }, "no epochs", "plot of nothing");
}

void manual_logs(const fs::path& dir) {
    io::event_writer w(dir / "manual");
    std::cout << "run\tmanual\n";
    for (int i = 0; i < 5; ++i) {
        w.add_scalar("manual/x", 0.5 * i - 1, i);
        std::cout << "scalar\tmanual/x\t" << i << '\t' << hex(static_cast<float>(0.5 * i - 1)) << '\n';
    }
    std::vector<double> v(100);
    for (int i = 0; i < 100; ++i) v[static_cast<std::size_t>(i)] = i;
    w.add_histogram("manual/h", v, 3, 10);
    std::cout << "histo\tmanual/h\t3\t" << hex(0) << '\t' << hex(99) << '\t' << hex(100) << '\t' << hex(4950) << '\t'
              << hex(328350);
    for (int b = 0; b < 10; ++b) std::cout << '\t' << hex(10);
    std::cout << '\n';
    io::image img(4, 3, 3);
    for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i * 7);
    w.add_image("manual/img", img, 2);
    std::cout << "image\tmanual/img\t2\t4\t3\t3\t"
              << bytes_of(std::string(img.pixels.begin(), img.pixels.end())) << '\n';
    check(w.records() == 8, "manual: 1 + 5 + 1 + 1 records");
    const auto r = io::read_event_records(w.path());
    check(r.records.size() == 8 && !r.truncated && r.valid_bytes == fs::file_size(w.path()), "manual: records read back");
}

void fit_logs(const fs::path& dir) {
    namespace nn = xgrad::nn;
    xgrad::rng g(7);
    const std::size_t n = 96;
    auto x = xgrad::tensor<float>::uninitialized({n, 4});
    auto y = xgrad::tensor<std::int64_t>::uninitialized({n});
    for (std::size_t i = 0; i < n; ++i) {
        y(i) = static_cast<std::int64_t>(i % 3);
        for (std::size_t j = 0; j < 4; ++j) x(i, j) = static_cast<float>(g.normal(j == i % 3 ? 1.5 : 0, 1));
    }
    auto train = xgrad::data::loader(xgrad::data::tensor_dataset<float>(x, y), {.batch_size = 24});
    nn::manual_seed(3);
    auto model = nn::sequential(nn::linear(4, 8), nn::relu(), nn::linear(8, 3));
    xgrad::optim::sgd<float> opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
    auto ce = [](auto&& out, const xgrad::tensor<std::int64_t>& t) { return xgrad::cross_entropy(out, t); };

    std::cout << "run\tfit\n";
    // what the tensorboard callback must write, seen from a callback that runs before it
    auto expect = xgrad::callbacks::lambda({
        .on_batch_end =
            [](xgrad::train_context& ctx, std::size_t, const xgrad::logs& l) {
                for (auto& [k, v] : l)
                    std::cout << "scalar\tbatch/" << k << '\t' << ctx.global_step << '\t' << hex(static_cast<float>(v)) << '\n';
                std::cout << "scalar\tbatch/lr\t" << ctx.global_step << '\t' << hex(static_cast<float>(ctx.optimizer->lr(0))) << '\n';
            },
        .on_epoch_end =
            [](xgrad::train_context& ctx, xgrad::logs& l) {
                const auto e = static_cast<std::int64_t>(ctx.epoch);
                for (auto& [k, v] : l) std::cout << "scalar\tepoch/" << k << '\t' << e << '\t' << hex(static_cast<float>(v)) << '\n';
                std::cout << "scalar\tepoch/lr\t" << e << '\t' << hex(static_cast<float>(ctx.optimizer->lr(0))) << '\n';
                check(ctx.capture_gradients && ctx.gradients.size() == 4, "fit: gradients captured for the histograms");
                for (auto& t : ctx.model_state()) print_histo("weights/" + t.name, e, stats_of(std::get<xgrad::tensor<float>>(t.value)));
                double total = 0;
                for (auto& t : ctx.gradients) {
                    const auto s = stats_of(std::get<xgrad::tensor<float>>(t.value));
                    total += s.sum_sq;
                    print_histo("gradients/" + t.name, e, s);
                }
                check(total > 0, "fit: the captured gradients are not all zero");
            },
    });
    xgrad::metrics::confusion_matrix cm(3);
    auto tb = xgrad::callbacks::tensorboard(
        dir / "fit", {.on_epoch_end = [&](io::event_writer& w, xgrad::train_context& ctx, const xgrad::logs&) {
            cm.reset();
            nn::eval(model);
            cm.update(xgrad::eval(model(x)), y);
            nn::train(model);
            const io::image img = xgrad::confusion_matrix_image(cm, 8);
            w.add_image("confusion_matrix", img, static_cast<std::int64_t>(ctx.epoch));
            std::cout << "image\tconfusion_matrix\t" << ctx.epoch << '\t' << img.width << '\t' << img.height << "\t3\t"
                      << bytes_of(std::string(img.pixels.begin(), img.pixels.end())) << '\n';
        }});
    const auto h = xgrad::fit(model, opt, ce, train,
                              {.epochs = 3, .metrics = {xgrad::metrics::accuracy()}, .callbacks = {expect, tb},
                               .progress = false});
    check(h["loss"].back() < h["loss"].front(), "fit: the loss decreases");
    check(cm.total() == n && cm.matrix().size() == 9, "fit: the confusion matrix counts every sample");

    // the plot
    xgrad::plot(h, dir / "curves.svg", {.title = "small classifier"});
    std::ifstream svg(dir / "curves.svg");
    const std::string s((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
    check(s.rfind("<svg", 0) == 0 && s.find("</svg>") != std::string::npos, "plot: an SVG document");
    std::size_t lines = 0;
    for (std::size_t at = s.find("<polyline"); at != std::string::npos; at = s.find("<polyline", at + 1)) ++lines;
    check(lines == 2, "plot: one line per series (loss, accuracy), got " + std::to_string(lines));
    check_throws<xgrad::value_error>([&] { xgrad::plot_svg(h, {.series = {"val_loss"}}); }, "val_loss", "plot of a missing series");
    check_throws<xgrad::value_error>([&] { xgrad::plot(h, dir / "curves.png"); }, "curves.png", "plot to a PNG name");
    check_throws<xgrad::io_error>([&] { xgrad::plot(h, dir / "missing" / "c.svg"); }, "c.svg", "plot to an unwritable path");

    // a write cut short: every earlier record still reads back
    const auto full = io::read_event_records(tb->writer().path());
    check(!full.truncated && full.records.size() == tb->writer().records(), "fit: every record reads back");
    const auto last = full.records.back().size() + 16;
    fs::create_directories(dir / "truncated");
    const fs::path cut = dir / "truncated" / tb->writer().path().filename();
    fs::copy_file(tb->writer().path(), cut, fs::copy_options::overwrite_existing);
    fs::resize_file(cut, fs::file_size(cut) - last / 2);
    const auto part = io::read_event_records(cut);
    check(part.truncated && part.records.size() == full.records.size() - 1, "truncated: all but the cut record");
    check(part.records.front() == full.records.front() && part.records.back() == full.records[full.records.size() - 2],
          "truncated: the kept records are intact");
    std::cout << "truncated\t" << part.records.size() << '\n';
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: tensorboard_logs DIR\n";
        return 2;
    }
    const fs::path dir = argv[1];
    fs::remove_all(dir);
    fs::create_directories(dir);
    format_checks(dir);
    manual_logs(dir);
    fit_logs(dir);
    if (failures) std::cerr << failures << " check(s) failed\n";
    return failures ? 1 : 0;
}
