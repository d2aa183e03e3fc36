#pragma once
// A small persistent thread pool for xgrad's own CPU loops.
// The pool never oversubscribes: one worker per core at most (xgrad::set_num_threads), a nested
// or concurrent call runs on the calling thread alone, and BLAS threading is set separately.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

namespace xgrad {

namespace detail {
inline std::size_t default_num_threads() {
    if (const char* env = std::getenv("XGRAD_NUM_THREADS")) {
        const long n = std::strtol(env, nullptr, 10);
        if (n > 0) return static_cast<std::size_t>(n);
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc ? hc : 1;
}
inline std::size_t& num_threads_setting() {
    static std::size_t n = default_num_threads();
    return n;
}
}  // namespace detail

/// Threads xgrad's CPU loops use (default: hardware threads, or $XGRAD_NUM_THREADS).
inline std::size_t num_threads() { return detail::num_threads_setting(); }
/// Sets the thread count for xgrad's CPU loops (>= 1).
inline void set_num_threads(std::size_t n) { detail::num_threads_setting() = n ? n : 1; }

namespace detail {

/// A non-owning reference to a callable taking a task index: the pool's job type. Unlike
/// std::function it neither allocates nor makes the compiler generate a manager per lambda
/// type (every parallel loop of every expression would otherwise instantiate one).
class task_ref {
public:
    template <class F>
        requires(!std::is_same_v<std::remove_cvref_t<F>, task_ref> && std::is_invocable_v<const F&, std::size_t>)
    task_ref(const F& f) noexcept  // NOLINT(google-explicit-constructor): lambdas convert implicitly
        : obj_(&f), call_([](const void* o, std::size_t i) { (*static_cast<const F*>(o))(i); }) {}

    void operator()(std::size_t i) const { call_(obj_, i); }

private:
    const void* obj_;
    void (*call_)(const void*, std::size_t);
};

class thread_pool {
public:
    thread_pool() = default;
    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;
    ~thread_pool() {
        {
            std::lock_guard lk(m_);
            stop_.store(true, std::memory_order_release);
        }
        cv_.notify_all();
        for (auto& t : workers_) t.join();
    }

    /// Runs f(0) ... f(n-1) concurrently, f(0) on the calling thread; returns when all are done.
    /// Rethrows the first exception a task threw.
    void run(std::size_t n, task_ref f) {
        if (n <= 1 || in_task()) {
            for (std::size_t i = 0; i < n; ++i) f(i);
            return;
        }
        std::unique_lock busy(run_mutex_, std::try_to_lock);
        if (!busy.owns_lock()) {  // another thread is using the pool: don't wait, run here
            for (std::size_t i = 0; i < n; ++i) f(i);
            return;
        }
        ensure_workers(n - 1);
        {
            std::lock_guard lk(m_);
            job_ = &f;
            tasks_ = n - 1;
            error_ = nullptr;
            pending_.store(n - 1, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
        }
        cv_.notify_all();
        run_task(f, 0);
        // The workers usually finish within microseconds of us: spin briefly before sleeping.
        for (int spin = 0; spin < spin_iterations && pending_.load(std::memory_order_acquire) != 0; ++spin) pause();
        if (pending_.load(std::memory_order_acquire) != 0) {
            std::unique_lock lk(m_);
            done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
        }
        std::lock_guard lk(m_);
        job_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

private:
    static constexpr int spin_iterations = 256;  // ~10-40 us: pause takes 40-140 cycles

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    static bool& in_task() {
        thread_local bool flag = false;
        return flag;
    }
    void run_task(task_ref f, std::size_t i) {
        in_task() = true;
        try {
            f(i);
        } catch (...) {
            std::lock_guard lk(m_);
            if (!error_) error_ = std::current_exception();
        }
        in_task() = false;
    }
    void ensure_workers(std::size_t k) {
        while (workers_.size() < k) {
            const std::size_t id = workers_.size() + 1;
            workers_.emplace_back([this, id] { worker_loop(id); });
        }
    }
    void worker_loop(std::size_t id) {
        std::uint64_t seen = 0;
        for (;;) {
            // spin a little for the next job (loops often come back to back), then sleep
            for (int spin = 0; spin < spin_iterations && generation_.load(std::memory_order_acquire) == seen &&
                               !stop_.load(std::memory_order_acquire);
                 ++spin)
                pause();
            const task_ref* job = nullptr;
            {
                std::unique_lock lk(m_);
                cv_.wait(lk, [&] {
                    return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
                });
                if (stop_.load(std::memory_order_acquire)) return;
                seen = generation_.load(std::memory_order_acquire);
                if (id > tasks_) continue;  // this job needs fewer workers
                job = job_;
            }
            run_task(*job, id);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard lk(m_);
                done_cv_.notify_one();
            }
        }
    }

    std::mutex run_mutex_;
    std::mutex m_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    const task_ref* job_ = nullptr;
    std::size_t tasks_ = 0;
    std::atomic<std::size_t> pending_{0};
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;
};

inline thread_pool& pool() {
    static thread_pool p;
    return p;
}

/// Runs f(tid) for tid in [0, n) on the pool.
inline void parallel_run(std::size_t n, task_ref f) { pool().run(n, f); }

}  // namespace detail
}  // namespace xgrad
