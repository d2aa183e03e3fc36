// Loader throughput on Fashion-MNIST with the usual augmentation:
// random flip + random crop(28, padding 4) + to_float + normalize, batch 64.
// One benchmark iteration is one full epoch (60000 samples); reported as samples/s
// of wall time, since the work happens on the loader's threads.
#include <benchmark/benchmark.h>

#include <xgrad/data.hpp>

#include <cstddef>
#include <optional>

namespace data = xgrad::data;

namespace {

const data::tensor_dataset<std::uint8_t>& fashion_train() {
    static const auto ds = data::fashion_mnist(data::split::train);
    return ds;
}

void bm_loader_fashion_mnist(benchmark::State& state) {
    const auto pipeline = fashion_train() | data::random_horizontal_flip() | data::random_crop(28, 4) |
                          data::to_float() | data::normalize({0.2860f}, {0.3530f});
    data::loader loader(pipeline, {.batch_size = 64, .shuffle = true, .drop_last = false,
                                   .workers = static_cast<std::size_t>(state.range(0)), .prefetch = 4, .seed = 1});
    std::size_t samples = 0;
    for (auto _ : state) {
        for (auto& [images, labels] : loader) {
            benchmark::DoNotOptimize(images.data());
            samples += labels.size();
        }
    }
    state.counters["samples/s"] = benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(bm_loader_fashion_mnist)->ArgName("workers")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
