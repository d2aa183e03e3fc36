#pragma once
// The MPI environment of a data-parallel run: init/finalize (RAII), rank and size, and the
// failure policy. One rank that fails must not leave the others waiting forever in a
// collective, so
//   - distributed::run(argc, argv, body) reports an exception escaping body with the rank and
//     message and calls MPI_Abort, which ends every rank of the job;
//   - an exception that escapes main altogether does the same (std::terminate handler);
//   - every wait of this module polls its request against a deadline (options::timeout_s,
//     XGRAD_DIST_TIMEOUT in the environment) and throws distributed_error when it passes, so a
//     rank that hangs (not throws) is reported too.
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../core/error.hpp"

namespace xgrad::distributed {

/// A failed or timed-out MPI operation; names the operation and the rank.
struct distributed_error : error {
    using error::error;
};

namespace detail {

inline double& timeout_setting() {
    static double t = [] {
        if (const char* s = std::getenv("XGRAD_DIST_TIMEOUT")) {
            const double v = std::atof(s);
            if (v > 0) return v;
        }
        return 300.0;
    }();
    return t;
}

inline int world_rank() noexcept {
    int init = 0, fin = 0, r = -1;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

inline std::string rank_label() { return "rank " + std::to_string(world_rank()); }

/// Throws distributed_error "<what> failed on rank r: <MPI's message>" unless rc is MPI_SUCCESS.
inline void check(int rc, const std::string& what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw distributed_error("xgrad::distributed: " + what + " failed on " + rank_label() + ": " + std::string(msg, len));
}

/// Prints why this rank fails and ends every rank of MPI_COMM_WORLD.
[[noreturn]] inline void abort_all(const std::string& why, int code = 1) noexcept {
    int size = 0;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Comm_size(MPI_COMM_WORLD, &size);
    std::fprintf(stderr, "xgrad::distributed: %s of %d failed: %s; aborting all ranks\n", rank_label().c_str(), size,
                 why.c_str());
    std::fflush(stderr);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

inline void terminate_handler() noexcept {
    std::string why = "std::terminate called";
    if (auto e = std::current_exception()) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            why = std::string("uncaught exception: ") + x.what();
        } catch (...) {
            why = "uncaught exception of unknown type";
        }
    }
    abort_all(why);
}

/// Between two tests of a request: spin for the first 100 ms (MPI's non-blocking collectives
/// progress only inside MPI calls, one round per call: sleeping between rounds multiplies a
/// ring's latency), yield up to 1 s, then sleep briefly (a peer that is late or gone).
inline void pause_between_tests(std::chrono::steady_clock::duration waited) {
    if (waited < std::chrono::milliseconds(100)) return;
    if (waited < std::chrono::seconds(1))
        std::this_thread::yield();
    else
        std::this_thread::sleep_for(std::chrono::microseconds(200));
}

/// Waits for `req` against the deadline (timeout_setting()).
inline void wait(MPI_Request& req, const char* what) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto limit = std::chrono::duration<double>(timeout_setting());
    for (;;) {
        int done = 0;
        check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what);
        if (done) return;
        const auto waited = clock::now() - start;
        if (waited > limit)
            throw distributed_error("xgrad::distributed: " + std::string(what) + " timed out on " + rank_label() +
                                    " after " + std::to_string(timeout_setting()) +
                                    " s (another rank failed or stopped calling the same collectives)");
        pause_between_tests(waited);
    }
}

/// Waits for any of `reqs` (MPI_REQUEST_NULL entries are done ones); returns its index, or
/// MPI_UNDEFINED when none is left.
inline int wait_any(std::vector<MPI_Request>& reqs, const char* what) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto limit = std::chrono::duration<double>(timeout_setting());
    for (;;) {
        int index = MPI_UNDEFINED, done = 0;
        check(MPI_Testany(static_cast<int>(reqs.size()), reqs.data(), &index, &done, MPI_STATUS_IGNORE), what);
        if (done) return index;  // MPI_UNDEFINED when every request is null
        const auto waited = clock::now() - start;
        if (waited > limit)
            throw distributed_error("xgrad::distributed: " + std::string(what) + " timed out on " + rank_label() +
                                    " after " + std::to_string(timeout_setting()) +
                                    " s (another rank failed or stopped calling the same collectives)");
        pause_between_tests(waited);
    }
}

/// Functions environment runs once MPI is initialized (the NCCL path registers the choice of
/// this rank's GPU there, so that device tensors are made on that GPU from the start).
inline std::vector<void (*)()>& init_hooks() {
    static std::vector<void (*)()> hooks;
    return hooks;
}

template <class T>
MPI_Datatype mpi_type() {
    if constexpr (std::is_same_v<T, float>)
        return MPI_FLOAT;
    else if constexpr (std::is_same_v<T, double>)
        return MPI_DOUBLE;
    else
        static_assert(sizeof(T) == 0, "xgrad::distributed: only float and double tensors are reduced");
}

}  // namespace detail

struct environment_options {
    /// Seconds a rank waits in one collective before it gives up with distributed_error
    /// (0: keep the current setting, 300 s unless XGRAD_DIST_TIMEOUT says otherwise).
    double timeout_s = 0;
};

/// Initializes MPI (unless already initialized: then only observes it) and finalizes what it
/// initialized. It installs a std::terminate handler that reports and aborts every rank.
/// Leaving its scope by an exception also aborts every rank: the others may already wait in a
/// collective this rank will never join (run() reports the exception's message first).
class environment {
public:
    environment(int& argc, char**& argv, environment_options o = {}) { init(&argc, &argv, o); }
    explicit environment(environment_options o = {}) { init(nullptr, nullptr, o); }
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    ~environment() {
        if (std::uncaught_exceptions() > uncaught_) detail::abort_all("an exception left the distributed environment");
        std::set_terminate(previous_);
        if (owns_) MPI_Finalize();
    }

    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }
    /// True on rank 0, the rank that writes checkpoints and logs.
    bool is_root() const noexcept { return rank_ == 0; }
    /// The processor name MPI reports (the host).
    std::string processor_name() const {
        char name[MPI_MAX_PROCESSOR_NAME];
        int len = 0;
        detail::check(MPI_Get_processor_name(name, &len), "MPI_Get_processor_name");
        return std::string(name, len);
    }
    /// Blocks until every rank arrives (against the timeout).
    void barrier() const {
        MPI_Request r;
        detail::check(MPI_Ibarrier(MPI_COMM_WORLD, &r), "MPI_Ibarrier");
        detail::wait(r, "barrier");
    }
    /// Ends every rank now with `why` on stderr.
    [[noreturn]] void abort(const std::string& why, int code = 1) const { detail::abort_all(why, code); }

private:
    void init(int* argc, char*** argv, environment_options o) {
        if (o.timeout_s < 0) throw value_error("distributed::environment: timeout_s must be >= 0");
        if (o.timeout_s > 0) detail::timeout_setting() = o.timeout_s;
        int init = 0;
        MPI_Initialized(&init);
        if (!init) {
            int provided = 0;
            // the loader's worker threads never call MPI: FUNNELED is enough
            detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            owns_ = true;
        }
        // errors come back as codes (thrown as distributed_error) instead of aborting silently
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        previous_ = std::set_terminate(detail::terminate_handler);
        uncaught_ = std::uncaught_exceptions();
        for (auto hook : detail::init_hooks()) hook();
    }

    bool owns_ = false;
    int rank_ = 0, size_ = 1;
    int uncaught_ = 0;
    std::terminate_handler previous_ = nullptr;
};

/// This process's rank and the number of ranks in MPI_COMM_WORLD (an environment must exist).
inline int rank() {
    const int r = detail::world_rank();
    if (r < 0) throw distributed_error("xgrad::distributed::rank: MPI is not initialized (create an environment)");
    return r;
}
inline int size() {
    int s = 0;
    rank();
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}
inline bool is_root() { return rank() == 0; }

/// This process's rank among the ranks on its own machine (node), and their number: the ranks
/// of MPI_COMM_WORLD that share memory with it (MPI_COMM_TYPE_SHARED).
inline std::pair<int, int> local_rank_and_size() {
    rank();
    MPI_Comm node;
    detail::check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
                  "MPI_Comm_split_type");
    int r = 0, s = 1;
    MPI_Comm_rank(node, &r);
    MPI_Comm_size(node, &s);
    MPI_Comm_free(&node);
    return {r, s};
}
inline int local_rank() { return local_rank_and_size().first; }

/// Runs body(env) on every rank inside an environment and returns its exit code. An exception
/// from body is printed with the rank and ends every rank (MPI_Abort), so no rank is left
/// waiting in a collective.
template <class F>
int run(int& argc, char**& argv, F&& body, environment_options o = {}) {
    environment env(argc, argv, o);
    int code = 0;
    try {
        code = body(env);
    } catch (const std::exception& e) {
        detail::abort_all(e.what());
    } catch (...) {
        detail::abort_all("an exception of unknown type");
    }
    return code;
}

// --- small collectives for metrics -----------------------------------------------------------

/// Element-wise sum of `values` over all ranks (in place; every rank gets the result).
inline void allreduce_sum(std::vector<double>& values) {
    MPI_Request r;
    detail::check(MPI_Iallreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM,
                                 MPI_COMM_WORLD, &r),
                  "MPI_Iallreduce");
    detail::wait(r, "allreduce_sum");
}
/// The mean of one value over all ranks.
inline double allreduce_mean(double v) {
    std::vector<double> x{v};
    allreduce_sum(x);
    return x[0] / static_cast<double>(size());
}

}  // namespace xgrad::distributed
