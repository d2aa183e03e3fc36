#pragma once
// The data loader: shuffles each epoch, assembles batches on worker threads into a
// bounded window, and hands them out in order.
//
// Determinism: epoch e's order is a Fisher-Yates shuffle drawn from
// rng(sample_seed(seed, e, ~0)), and sample i is loaded with rng(sample_seed(seed, e, i)).
// Nothing depends on which thread builds a batch, so the batch sequence is the same
// for any number of workers.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../core/rng.hpp"
#include "sample.hpp"

namespace xgrad::data {

struct loader_options {
    std::size_t batch_size = 32;
    bool shuffle = false;     ///< reshuffle at the start of every epoch
    bool drop_last = false;   ///< skip a final batch smaller than batch_size
    std::size_t workers = 0;  ///< threads assembling batches; 0 loads in the iterating thread
    std::size_t prefetch = 2; ///< batches ready or in preparation ahead of the consumer (at least `workers`)
    std::uint64_t seed = 0;   ///< drives the shuffle and every random transform
    /// Bucketing by length (datasets with `length(i)`, e.g. text::text_dataset): the epoch's
    /// order is cut into pools of bucket_pool * batch_size samples, each pool is sorted by
    /// length and cut into batches, then the full batches are shuffled (when `shuffle`).
    /// Batches hold texts of similar lengths, so trimming their padding saves work. 0: off.
    std::size_t bucket_pool = 0;
};

namespace detail {

/// The sample order of one epoch.
inline std::vector<std::size_t> epoch_order(std::size_t n, bool shuffle, std::uint64_t seed, std::uint64_t epoch) {
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    if (shuffle && n > 1) {
        rng gen(sample_seed(seed, epoch, ~std::uint64_t{0}));
        for (std::size_t i = n - 1; i > 0; --i) std::swap(order[i], order[gen.below(i + 1)]);
    }
    return order;
}

template <class D>
concept has_length = requires(const D& d, std::size_t i) {
    { d.length(i) } -> std::convertible_to<std::size_t>;
};

/// Reorders an epoch's order into length buckets (see loader_options::bucket_pool).
template <class D>
void bucket_order(const D& ds, std::vector<std::size_t>& order, const loader_options& opt, std::uint64_t epoch) {
    const std::size_t pool = opt.bucket_pool * opt.batch_size;
    std::vector<std::pair<std::size_t, std::size_t>> keyed;  // (length, index)
    for (std::size_t start = 0; start < order.size(); start += pool) {
        const std::size_t stop = std::min(order.size(), start + pool);
        keyed.clear();
        for (std::size_t k = start; k < stop; ++k) keyed.emplace_back(static_cast<std::size_t>(ds.length(order[k])), order[k]);
        std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t k = start; k < stop; ++k) order[k] = keyed[k - start].second;
    }
    const std::size_t full = order.size() / opt.batch_size;
    if (!opt.shuffle || full < 2) return;
    std::vector<std::size_t> perm(full);
    for (std::size_t b = 0; b < full; ++b) perm[b] = b;
    rng gen(sample_seed(opt.seed, epoch, ~std::uint64_t{1}));
    for (std::size_t b = full - 1; b > 0; --b) std::swap(perm[b], perm[gen.below(b + 1)]);
    std::vector<std::size_t> out(order.size());
    for (std::size_t b = 0; b < full; ++b)
        std::copy_n(order.begin() + static_cast<std::ptrdiff_t>(perm[b] * opt.batch_size), opt.batch_size,
                    out.begin() + static_cast<std::ptrdiff_t>(b * opt.batch_size));
    std::copy(order.begin() + static_cast<std::ptrdiff_t>(full * opt.batch_size), order.end(),
              out.begin() + static_cast<std::ptrdiff_t>(full * opt.batch_size));
    order.swap(out);
}

/// One epoch in progress: owns the worker threads and the window of batches.
template <class D>
class epoch_run {
public:
    using sample_type = typename D::sample_type;
    using batch_type = batch_of<sample_type>;

    epoch_run(std::shared_ptr<const D> ds, const loader_options& opt, std::uint64_t epoch)
        : ds_(std::move(ds)), opt_(opt), epoch_(epoch) {
        const std::size_t n = static_cast<std::size_t>(ds_->size());
        order_ = epoch_order(n, opt_.shuffle, opt_.seed, epoch_);
        if constexpr (has_length<D>)
            if (opt_.bucket_pool != 0) bucket_order(*ds_, order_, opt_, epoch_);
        batches_ = opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
        const std::size_t threads = std::min(opt_.workers, batches_);
        if (threads == 0) return;
        window_ = std::max({opt_.prefetch, opt_.workers, std::size_t{1}});
        slots_.resize(window_);
        workers_.reserve(threads);
        try {
            for (std::size_t t = 0; t < threads; ++t) workers_.emplace_back([this] { work(); });
        } catch (...) {
            shutdown();
            throw;
        }
    }

    epoch_run(const epoch_run&) = delete;
    epoch_run& operator=(const epoch_run&) = delete;
    ~epoch_run() { shutdown(); }

    /// Batch number `delivered_` into `current`; false when the epoch is over.
    bool next() {
        if (delivered_ == batches_) return false;
        if (workers_.empty()) {
            current = build(delivered_++);
            return true;
        }
        std::unique_lock lk(mu_);
        slot& s = slots_[delivered_ % window_];
        ready_cv_.wait(lk, [&] { return s.ready; });
        s.ready = false;
        ++delivered_;
        auto err = std::move(s.error);
        if (!err) current = std::move(*s.value);
        s.value.reset();
        lk.unlock();
        work_cv_.notify_all();
        if (err) std::rethrow_exception(err);
        return true;
    }

    /// Stops the workers after their current batch and joins them (idempotent).
    void shutdown() noexcept {
        {
            std::lock_guard lk(mu_);
            stop_.store(true, std::memory_order_relaxed);
        }
        work_cv_.notify_all();
        for (auto& t : workers_)
            if (t.joinable()) t.join();
    }

    batch_type current;

private:
    struct slot {
        std::optional<batch_type> value;
        std::exception_ptr error;
        bool ready = false;
    };

    batch_type build(std::size_t b) const {
        const std::size_t first = b * opt_.batch_size;
        const std::size_t count = std::min(opt_.batch_size, order_.size() - first);
        collator<typename sample_type::input_type, typename sample_type::label_type> col(count);
        for (std::size_t k = 0; k < count; ++k) {
            if (stop_.load(std::memory_order_relaxed)) return {};  // abandoned; nobody will read it
            const std::size_t i = order_[first + k];
            rng gen(sample_seed(opt_.seed, epoch_, i));
            col.add(k, ds_->get(i, gen), i);
        }
        return col.take();
    }

    void work() {
        for (;;) {
            std::size_t b;
            {
                std::unique_lock lk(mu_);
                work_cv_.wait(lk, [&] {
                    return stop_.load(std::memory_order_relaxed) || claimed_ >= batches_ ||
                           claimed_ < delivered_ + window_;
                });
                if (stop_.load(std::memory_order_relaxed) || claimed_ >= batches_) return;
                b = claimed_++;
            }
            std::optional<batch_type> value;
            std::exception_ptr error;
            try {
                value = build(b);
            } catch (...) {
                error = std::current_exception();
            }
            {
                std::lock_guard lk(mu_);
                slot& s = slots_[b % window_];
                s.value = std::move(value);
                s.error = std::move(error);
                s.ready = true;
            }
            ready_cv_.notify_one();
        }
    }

    std::shared_ptr<const D> ds_;
    loader_options opt_;
    std::uint64_t epoch_;
    std::vector<std::size_t> order_;
    std::size_t batches_ = 0;
    std::size_t window_ = 0;

    std::mutex mu_;
    std::condition_variable work_cv_, ready_cv_;
    std::atomic<bool> stop_{false};
    std::size_t claimed_ = 0;    // next batch a worker may take (guarded by mu_)
    std::size_t delivered_ = 0;  // next batch the consumer takes (guarded by mu_ when workers run)
    std::vector<slot> slots_;    // batch b lives in slot b % window_
    std::vector<std::thread> workers_;
};

}  // namespace detail

/// Iterates a dataset in batches. Each `begin()` starts a new epoch (reshuffled when
/// `shuffle`); `set_epoch` restarts the count, e.g. when resuming.
///
///     for (auto& [images, labels] : loader) ...
///
/// The iterator owns the epoch's threads: leaving the loop early (break, exception)
/// stops and joins them. It also keeps the dataset alive, so it stays valid if the
/// loader is destroyed first.
template <dataset D>
class loader {
public:
    using sample_type = typename D::sample_type;
    using batch_type = batch_of<sample_type>;

    class iterator {
    public:
        using value_type = batch_type;
        using difference_type = std::ptrdiff_t;
        using iterator_concept = std::input_iterator_tag;

        iterator() = default;
        iterator(iterator&&) noexcept = default;
        iterator& operator=(iterator&&) noexcept = default;

        batch_type& operator*() const { return run_->current; }
        batch_type* operator->() const { return &run_->current; }
        iterator& operator++() {
            advance();
            return *this;
        }
        void operator++(int) { advance(); }
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept { return !it.run_; }

    private:
        friend class loader;
        explicit iterator(std::unique_ptr<detail::epoch_run<D>> run) : run_(std::move(run)) { advance(); }

        void advance() {
            try {
                if (!run_->next()) run_.reset();
            } catch (...) {
                run_.reset();  // joins the workers before the exception leaves
                throw;
            }
        }

        std::unique_ptr<detail::epoch_run<D>> run_;
    };

    /// value_error for a zero batch size.
    loader(D ds, loader_options opt = {}) : ds_(std::make_shared<const D>(std::move(ds))), opt_(opt) {
        if (opt_.batch_size == 0) throw value_error("loader: batch_size must be positive");
        if (opt_.bucket_pool != 0 && !detail::has_length<D>)
            throw value_error("loader: bucket_pool needs a dataset with length(i)");
    }

    /// Starts the next epoch.
    iterator begin() { return iterator(std::make_unique<detail::epoch_run<D>>(ds_, opt_, epoch_++)); }
    std::default_sentinel_t end() const noexcept { return {}; }

    /// Batches per epoch.
    std::size_t size() const noexcept {
        const auto n = static_cast<std::size_t>(ds_->size());
        return opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
    }

    /// The epoch the next begin() runs.
    std::uint64_t epoch() const noexcept { return epoch_; }
    void set_epoch(std::uint64_t e) noexcept { epoch_ = e; }

    const D& dataset() const noexcept { return *ds_; }
    const loader_options& options() const noexcept { return opt_; }

private:
    std::shared_ptr<const D> ds_;
    loader_options opt_;
    std::uint64_t epoch_ = 0;
};

}  // namespace xgrad::data
