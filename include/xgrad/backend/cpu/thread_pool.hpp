#pragma once
// A small persistent thread pool for xgrad's own CPU loops.
// The pool never oversubscribes: one worker per core at most (xgrad::set_num_threads), a nested
// or concurrent call runs on the calling thread alone, and BLAS threading is set separately.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

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


/// Reads the CPU the calling thread runs on (-1 where unknown).
inline int current_cpu() {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/// One persistent worker per extra thread. A parallel region publishes its job by bumping a
/// generation counter; the caller runs task 0 itself and waits for the others.
///
/// Waiting: a thread that has nothing to do spins (with `pause`) for at most `spin_time` and
/// then blocks on a condition variable, so an idle pool sleeps. The spin matters on small
/// machines: a worker that sleeps between the back-to-back regions of a training step is woken
/// through the kernel every time, and the scheduler may then place it on the caller's own
/// core, where it preempts the caller and the two halves of the region run one after the
/// other (measured on a 2-vCPU VM: every region of the MLP step, the second thread gained
/// nothing). A worker kept spinning stays on its own core and starts a region within a
/// microsecond, without a system call. A spinner that finds itself on the same core as the
/// thread it waits for stops spinning at once and blocks: spinning there only delays that thread.
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
            run_serial(n, f);
            return;
        }
        std::unique_lock busy(run_mutex_, std::try_to_lock);
        if (!busy.owns_lock()) {  // another thread is using the pool: don't wait, run here
            run_serial(n, f);
            return;
        }
        ensure_workers(n - 1);
        bool wake = false;
        {
            std::lock_guard lk(m_);
            job_ = &f;
            tasks_ = n - 1;
            error_ = nullptr;
            caller_cpu_.store(current_cpu(), std::memory_order_relaxed);
            pending_.store(n - 1, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
            wake = sleepers_ > 0;
        }
        if (wake) cv_.notify_all();  // spinning workers see the new generation without a system call
        run_task(f, 0);
        // The workers usually finish within microseconds of us: spin a while before sleeping,
        // unless a worker we wait for shares our core.
        const int me = current_cpu();
        const bool done = spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; },
                                     [&] { return shares_core_with_worker(me, n - 1); });
        if (!done) {
            std::unique_lock lk(m_);
            done_cv_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
        }
        std::lock_guard lk(m_);
        job_ = nullptr;
        if (error_) std::rethrow_exception(error_);
    }

    /// True inside a task of a job whose tasks run at once, one per thread; false when the
    /// pool runs a job's tasks one after another on the calling thread (a job from inside a
    /// task, or while another thread uses the pool). Tasks that wait for each other need it.
    static bool tasks_run_concurrently() { return concurrent(); }

private:
    /// How long a waiting thread spins before it blocks: longer than the serial stretches
    /// between the parallel regions of a training step (up to ~0.2 ms in the MLP step), short
    /// enough that an idle pool is asleep almost at once.
    static constexpr std::chrono::microseconds spin_time{500};
    static constexpr unsigned spins_per_check = 64;  // pauses between two clock / CPU readings

    static void pause() {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
    }
    /// Spins until ready() (true), or until spin_time has passed or give_up() (false).
    template <class Ready, class GiveUp>
    static bool spin_until(const Ready& ready, const GiveUp& give_up) {
        const auto deadline = std::chrono::steady_clock::now() + spin_time;
        for (;;) {
            for (unsigned i = 0; i < spins_per_check; ++i) {
                if (ready()) return true;
                pause();
            }
            if (ready()) return true;
            if (give_up() || std::chrono::steady_clock::now() >= deadline) return false;
        }
    }
    bool shares_core_with_worker(int cpu, std::size_t k) const {
        if (cpu < 0) return false;
        for (std::size_t i = 0; i < k && i < worker_cpu_.size(); ++i)
            if (worker_cpu_[i]->load(std::memory_order_relaxed) == cpu) return true;
        return false;
    }
    static bool& in_task() {
        thread_local bool flag = false;
        return flag;
    }
    static bool& concurrent() {
        thread_local bool flag = false;
        return flag;
    }
    static void run_serial(std::size_t n, task_ref f) {
        struct restore {
            bool saved = concurrent();
            ~restore() { concurrent() = saved; }
        } r;
        concurrent() = false;
        for (std::size_t i = 0; i < n; ++i) f(i);
    }
    void run_task(task_ref f, std::size_t i) {
        concurrent() = true;
        in_task() = true;
        try {
            f(i);
        } catch (...) {
            std::lock_guard lk(m_);
            if (!error_) error_ = std::current_exception();
        }
        in_task() = false;
        concurrent() = false;
    }
    void ensure_workers(std::size_t k) {
        if (workers_.size() >= k) return;
        const std::vector<int> cores = worker_cores(k);
        while (workers_.size() < k) {
            const std::size_t id = workers_.size() + 1;
            worker_cpu_.push_back(std::make_unique<padded_cpu>());
            std::atomic<int>* cpu = worker_cpu_.back().get();
            workers_.emplace_back([this, id, cpu] { worker_loop(id, *cpu); });
            if (id <= cores.size()) pin(workers_.back(), cores[id - 1]);
        }
    }
    /// The cores for workers 1..k: the CPUs this process may run on, the caller's current one
    /// left out, while there are enough of them for one each (else none: the workers float).
    static std::vector<int> worker_cores(std::size_t k) {
        std::vector<int> cores;
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) != 0) return cores;
        const int caller = current_cpu();
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set) && c != caller) cores.push_back(c);
        if (cores.size() < k || static_cast<std::size_t>(CPU_COUNT(&set)) < k + 1) cores.clear();
#else
        (void)k;
#endif
        return cores;
    }
    /// Binds a worker to one core (best effort): a floating worker woken while every core is
    /// busy is placed on the waking thread's core, where it only takes turns with it.
    static void pin([[maybe_unused]] std::thread& t, [[maybe_unused]] int core) {
#if defined(__linux__)
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(core, &set);
        pthread_setaffinity_np(t.native_handle(), sizeof set, &set);
#endif
    }
    void worker_loop(std::size_t id, std::atomic<int>& my_cpu) {
        std::uint64_t seen = 0;
        for (;;) {
            // regions usually come back to back within a step: spin for the next one, unless
            // we run on the caller's core (where spinning only holds the caller up), then sleep
            const bool ready = spin_until(
                [&] {
                    return generation_.load(std::memory_order_acquire) != seen || stop_.load(std::memory_order_acquire);
                },
                [&] {
                    const int c = current_cpu();
                    my_cpu.store(c, std::memory_order_relaxed);
                    return c >= 0 && c == caller_cpu_.load(std::memory_order_relaxed);
                });
            const task_ref* job = nullptr;
            {
                std::unique_lock lk(m_);
                if (!ready) {
                    ++sleepers_;
                    cv_.wait(lk, [&] {
                        return stop_.load(std::memory_order_acquire) ||
                               generation_.load(std::memory_order_acquire) != seen;
                    });
                    --sleepers_;
                }
                if (stop_.load(std::memory_order_acquire)) return;
                seen = generation_.load(std::memory_order_acquire);
                if (id > tasks_) continue;  // this job needs fewer workers
                job = job_;
            }
            my_cpu.store(current_cpu(), std::memory_order_relaxed);
            run_task(*job, id);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                std::lock_guard lk(m_);
                done_cv_.notify_one();
            }
        }
    }

    struct alignas(64) padded_cpu : std::atomic<int> {  // own cache line: written by one worker
        padded_cpu() : std::atomic<int>(-1) {}
    };

    std::mutex run_mutex_;
    std::mutex m_;
    std::condition_variable cv_, done_cv_;
    std::vector<std::thread> workers_;
    std::vector<std::unique_ptr<padded_cpu>> worker_cpu_;  // the core each worker last ran on
    const task_ref* job_ = nullptr;
    std::size_t tasks_ = 0;
    std::size_t sleepers_ = 0;  // workers blocked on cv_ (guarded by m_)
    alignas(64) std::atomic<std::uint64_t> generation_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> caller_cpu_{-1};
    alignas(64) std::atomic<std::size_t> pending_{0};
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
