#pragma once
// The CUDA path of xgrad::distributed: NCCL for parameters on xgrad::device::cuda. Included by
// <xgrad/distributed.hpp> in .cu files compiled by nvcc when the CMake target xgrad::nccl
// (which defines XGRAD_HAVE_NCCL) is linked.
//
// GPU selection: rank r uses GPU local_rank % device_count, where local_rank counts the ranks
// on r's own machine. environment sets it (cudaSetDevice) as soon as MPI is initialized, so
// the model built afterwards lands on that GPU; the communicator sets it again.
//
// The communicator: rank 0 draws an ncclUniqueId, MPI broadcasts it, every rank joins with
// ncclCommInitRank. One per process is shared by every reducer alive at the same time
// (nccl_communicator::world()); it is destroyed (ncclCommDestroy) with the last one.
//
// gradient_reducer<T, device::cuda> keeps the CPU reducer's interface and semantics (buckets
// of about bucket_bytes in reverse parameter order, gradients averaged, a parameter without
// a gradient on every rank stays without one) but reduces in place: each bucket is one NCCL
// group (ncclGroupStart/End) of one ncclAllReduce per gradient, on the communicator's stream,
// ordered after the work already queued on the default stream (backward). finish() waits for
// the stream against the module's timeout, so the optimizer step reads the averaged values.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../backend/thrust/system.hpp"
#include "../backend/thrust/tensor.hpp"
#include "../backend/thrust/engine.hpp"
#include "../core/transfer.hpp"
#include "environment.hpp"
#include "reducer.hpp"

namespace xgrad::distributed {

namespace detail {

/// Throws distributed_error "<call> failed on rank r: <NCCL's message>" unless r is ncclSuccess.
inline void check_nccl(ncclResult_t r, const char* call) {
    if (r == ncclSuccess) return;
    std::string msg = std::string("xgrad::distributed: ") + call + " failed on " + rank_label() + ": " +
                      ncclGetErrorString(r);
    if (r == ncclSystemError || r == ncclInternalError || r == ncclInvalidUsage || r == ncclRemoteError)
        if (const char* last = ncclGetLastError(nullptr); last && *last) msg += std::string(" (") + last + ")";
    throw distributed_error(msg);
}

/// Throws device_error "<call> failed on rank r: <name> (<CUDA's message>)" unless e is cudaSuccess.
inline void check_cuda(cudaError_t e, const char* call) {
    if (e == cudaSuccess) return;
    throw device_error(std::string("xgrad::distributed: ") + call + " failed on " + rank_label() + ": " +
                       cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

template <class T>
ncclDataType_t nccl_type() {
    if constexpr (std::is_same_v<T, float>)
        return ncclFloat32;
    else if constexpr (std::is_same_v<T, double>)
        return ncclFloat64;
    else
        static_assert(sizeof(T) == 0, "xgrad::distributed: only float and double tensors are reduced");
}

/// environment's hook: this rank's GPU as the current device, when there is one (without a
/// GPU nothing happens here; creating a communicator then fails with the reason).
inline void select_device_on_init() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        cudaGetLastError();  // clear the sticky "no device" error
        return;
    }
    cudaSetDevice(local_rank() % count);
}

inline const bool device_hook_registered = (init_hooks().push_back(&select_device_on_init), true);

}  // namespace detail

/// The GPU of this rank: local_rank() % the number of visible GPUs. Makes it the current
/// device and returns its index; device_error when there is no GPU.
inline int select_device() {
    int count = 0;
    detail::check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (count == 0) throw device_error("xgrad::distributed: no CUDA device on " + detail::rank_label());
    const int dev = local_rank() % count;
    detail::check_cuda(cudaSetDevice(dev), "cudaSetDevice");
    return dev;
}

/// An NCCL communicator over MPI_COMM_WORLD, its GPU and its stream.
class nccl_communicator {
public:
    /// Collective: every rank of MPI_COMM_WORLD must create it (an environment must exist).
    nccl_communicator() {
        rank_ = distributed::rank();
        size_ = distributed::size();
        device_ = select_device();
        ncclUniqueId id{};
        if (rank_ == 0) detail::check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
        MPI_Request r;
        detail::check(MPI_Ibcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD, &r), "MPI_Ibcast");
        detail::wait(r, "nccl_communicator (ncclUniqueId broadcast)");
        detail::check_nccl(ncclCommInitRank(&comm_, size_, id, rank_), "ncclCommInitRank");
        try {
            detail::check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
            detail::check_cuda(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
        } catch (...) {
            release();
            throw;
        }
    }
    nccl_communicator(const nccl_communicator&) = delete;
    nccl_communicator& operator=(const nccl_communicator&) = delete;
    ~nccl_communicator() { release(); }

    /// The communicator of this process, created on first use and shared until the last
    /// holder lets it go (collective when it creates one).
    static std::shared_ptr<nccl_communicator> world() {
        static std::mutex m;
        static std::weak_ptr<nccl_communicator> current;
        std::lock_guard<std::mutex> lock(m);
        if (auto c = current.lock()) return c;
        auto c = std::make_shared<nccl_communicator>();
        current = c;
        return c;
    }

    ncclComm_t get() const noexcept { return comm_; }
    cudaStream_t stream() const noexcept { return stream_; }
    int device() const noexcept { return device_; }
    int rank() const noexcept { return rank_; }
    int size() const noexcept { return size_; }

    /// Makes this communicator's stream wait for everything queued so far on the calling
    /// thread's default stream (where xgrad's kernels run: backward, fills, the optimizer).
    void after_default_stream() {
        // stream 0: the legacy default stream, or the per-thread one under
        // --default-stream per-thread, like thrust::cuda::par
        detail::check_cuda(cudaEventRecord(ready_, 0), "cudaEventRecord");
        detail::check_cuda(cudaStreamWaitEvent(stream_, ready_, 0), "cudaStreamWaitEvent");
    }

    /// Waits until the stream's work is done, against the module's timeout (like every MPI
    /// wait). A peer that never joins leaves NCCL's kernel waiting: then the communicator is
    /// aborted (ncclCommAbort: the kernel ends) and distributed_error says so.
    void synchronize(const char* what) {
        usable(what);
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        const auto limit = std::chrono::duration<double>(detail::timeout_setting());
        for (;;) {
            const cudaError_t e = cudaStreamQuery(stream_);
            if (e == cudaSuccess) return;
            if (e != cudaErrorNotReady) detail::check_cuda(e, "cudaStreamQuery");
            ncclResult_t async = ncclSuccess;
            detail::check_nccl(ncclCommGetAsyncError(comm_, &async), "ncclCommGetAsyncError");
            if (async != ncclSuccess) {
                abort();
                detail::check_nccl(async, what);
            }
            const auto waited = clock::now() - start;
            if (waited > limit) {
                abort();
                throw distributed_error("xgrad::distributed: " + std::string(what) + " timed out on " +
                                        detail::rank_label() + " after " + std::to_string(detail::timeout_setting()) +
                                        " s (another rank failed or stopped calling the same collectives)");
            }
            detail::pause_between_tests(waited);
        }
    }

    /// Ends the communicator's pending operations (after a failure); it cannot be used again.
    void abort() noexcept {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
    }

    /// Sum (or mean) of a contiguous device tensor over all ranks, in place; blocks until done.
    template <class T>
    void allreduce(const tensor<T, device::cuda>& t, bool average = true) {
        if (!t.is_contiguous())
            throw value_error("xgrad::distributed::nccl_communicator::allreduce: the tensor must be contiguous");
        usable("allreduce");
        after_default_stream();
        detail::check_nccl(ncclAllReduce(t.data(), t.data(), t.size(), detail::nccl_type<T>(),
                                         average ? ncclAvg : ncclSum, comm_, stream_),
                           "ncclAllReduce");
        synchronize("allreduce");
    }

    /// distributed_error naming `what` when the communicator was aborted.
    void usable(const char* what) const {
        if (!comm_)
            throw distributed_error("xgrad::distributed: " + std::string(what) + " on " + detail::rank_label() +
                                    ": the NCCL communicator was aborted after an earlier failure");
    }

private:
    void release() noexcept {
        if (comm_) {
            cudaStreamSynchronize(stream_);
            ncclCommDestroy(comm_);
            comm_ = nullptr;
        }
        if (ready_) cudaEventDestroy(ready_);
        if (stream_) cudaStreamDestroy(stream_);
        ready_ = nullptr;
        stream_ = nullptr;
    }

    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
    cudaEvent_t ready_ = nullptr;
    int rank_ = 0, size_ = 1, device_ = 0;
};

/// Averages the gradients of parameters on a GPU across MPI_COMM_WORLD with NCCL: the same
/// interface, buckets and semantics as the CPU reducer (reducer_options::non_blocking is
/// ignored: NCCL always runs on its stream while the host continues; so are overlap and
/// on_bucket_start: every bucket starts in start(), after backward).
template <class T>
class gradient_reducer<T, device::cuda> {
public:
    using parameter_type = parameter<T, device::cuda>;

    explicit gradient_reducer(std::vector<parameter_type> params, reducer_options o = {})
        : gradient_reducer(std::move(params), nccl_communicator::world(), o) {}

    /// With a communicator of the caller's (collective: every rank the same way).
    gradient_reducer(std::vector<parameter_type> params, std::shared_ptr<nccl_communicator> comm,
                     reducer_options o = {})
        : opt_(o), comm_(std::move(comm)) {
        if (o.bucket_bytes == 0) throw value_error("distributed::gradient_reducer: bucket_bytes must be positive");
        if (!comm_) throw value_error("distributed::gradient_reducer: the communicator is null");
        for (std::size_t i = 0; i < params.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (params[i].same(params[j]))
                    throw value_error("distributed::gradient_reducer: parameter '" + params[i].name() +
                                      "' is listed twice");
        std::vector<parameter_type> cur;
        std::size_t bytes = 0;
        for (auto it = params.rbegin(); it != params.rend(); ++it) {
            if (!it->requires_grad()) {
                frozen_.push_back(*it);
                continue;
            }
            if (!cur.empty() && bytes + it->size() * sizeof(T) > opt_.bucket_bytes) {
                buckets_.push_back(std::move(cur));
                cur = {};
                bytes = 0;
            }
            cur.push_back(*it);
            bytes += it->size() * sizeof(T);
            ++num_reduced_;
        }
        if (!cur.empty()) buckets_.push_back(std::move(cur));
        // one "has a gradient" flag per reduced parameter: pinned on the host, so that its copies
        // are asynchronous too
        if (num_reduced_ > 0) {
            detail::check_cuda(cudaSetDevice(comm_->device()), "cudaSetDevice");
            detail::check_cuda(cudaMallocHost(&flags_host_, num_reduced_ * sizeof(T)), "cudaMallocHost");
            flags_ = tensor<T, device::cuda>::uninitialized({num_reduced_});
        }
    }

    gradient_reducer(const gradient_reducer&) = delete;
    gradient_reducer& operator=(const gradient_reducer&) = delete;
    gradient_reducer(gradient_reducer&& o) noexcept
        : opt_(o.opt_),
          comm_(o.comm_),
          buckets_(std::move(o.buckets_)),
          frozen_(std::move(o.frozen_)),
          num_reduced_(std::exchange(o.num_reduced_, 0)),
          flags_(std::move(o.flags_)),
          flags_host_(std::exchange(o.flags_host_, nullptr)),
          started_(std::exchange(o.started_, false)) {}
    ~gradient_reducer() {
        // abandoned by an exception while NCCL still writes the gradients: end it (the run is
        // failing anyway) before the buffers can go away
        if (started_) comm_->abort();
        if (flags_host_) cudaFreeHost(flags_host_);
    }

    std::size_t num_buckets() const noexcept { return buckets_.size(); }
    const std::vector<parameter_type>& bucket_parameters(std::size_t b) const { return buckets_.at(b); }
    nccl_communicator& communicator() const noexcept { return *comm_; }

    /// Copies every parameter's value from `root` to the other ranks (one NCCL group per
    /// bucket of ncclBroadcast calls, then the frozen parameters), so that all ranks start
    /// from the same model.
    void broadcast_parameters(int root = 0) {
        comm_->usable("broadcast_parameters");
        // parameters that are strided views go through contiguous copies, made on the default
        // stream before the event that the broadcasts wait for
        std::vector<std::pair<tensor<T, device::cuda>, tensor<T, device::cuda>>> strided;  // (dst, copy)
        for (auto& b : buckets_)
            for (auto& p : b)
                if (!p.value().is_contiguous()) strided.emplace_back(p.value(), p.value().contiguous());
        for (auto& p : frozen_)
            if (!p.value().is_contiguous()) strided.emplace_back(p.value(), p.value().contiguous());
        std::size_t next_strided = 0;
        auto send_at = [&](const parameter_type& p) {
            const tensor<T, device::cuda>& v =
                p.value().is_contiguous() ? p.value() : strided[next_strided++].second;
            detail::check_nccl(ncclBroadcast(v.data(), v.data(), v.size(), detail::nccl_type<T>(), root,
                                             comm_->get(), comm_->stream()),
                               "ncclBroadcast");
        };
        comm_->after_default_stream();
        for (auto& b : buckets_) {
            detail::check_nccl(ncclGroupStart(), "ncclGroupStart");
            for (auto& p : b) send_at(p);
            detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd");
        }
        if (!frozen_.empty()) {
            detail::check_nccl(ncclGroupStart(), "ncclGroupStart");
            for (auto& p : frozen_) send_at(p);
            detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd");
        }
        comm_->synchronize("broadcast_parameters");
        for (auto& [dst, c] : strided) dst.assign(c);
    }

    /// start() then finish().
    void reduce() {
        start();
        finish();
    }

    /// Queues every bucket's allreduce on the communicator's stream (reverse parameter order)
    /// and returns: the host is free until finish().
    void start() {
        if (started_) throw value_error("distributed::gradient_reducer: start() called twice without finish()");
        comm_->usable("gradient allreduce");
        if (num_reduced_ == 0) {
            started_ = true;
            return;
        }
        // flags, and memory that holds the gradient (zeros where there is none yet)
        std::size_t f = 0;
        for (auto& b : buckets_)
            for (auto& p : b) {
                auto& s = p.state();
                flags_host_[f++] = s.grad_zero ? T(0) : T(1);
                if (!s.grad().is_contiguous())
                    throw value_error("distributed::gradient_reducer: the gradient of '" + p.name() +
                                      "' is not contiguous");
            }
        comm_->after_default_stream();
        cudaStream_t st = comm_->stream();
        detail::check_cuda(cudaMemcpyAsync(flags_.data(), flags_host_, num_reduced_ * sizeof(T),
                                           cudaMemcpyHostToDevice, st),
                           "cudaMemcpyAsync");
        started_ = true;
        const ncclRedOp_t op = opt_.average ? ncclAvg : ncclSum;
        for (std::size_t k = 0; k < buckets_.size(); ++k) {
            detail::check_nccl(ncclGroupStart(), "ncclGroupStart");
            if (k == 0)
                detail::check_nccl(ncclAllReduce(flags_.data(), flags_.data(), num_reduced_, detail::nccl_type<T>(),
                                                 ncclSum, comm_->get(), st),
                                   "ncclAllReduce");
            for (auto& p : buckets_[k]) {
                const tensor<T, device::cuda>& g = p.state().grad_storage;
                detail::check_nccl(
                    ncclAllReduce(g.data(), g.data(), g.size(), detail::nccl_type<T>(), op, comm_->get(), st),
                    "ncclAllReduce");
            }
            detail::check_nccl(ncclGroupEnd(), "ncclGroupEnd");
        }
        detail::check_cuda(cudaMemcpyAsync(flags_host_, flags_.data(), num_reduced_ * sizeof(T),
                                           cudaMemcpyDeviceToHost, st),
                           "cudaMemcpyAsync");
    }

    /// Waits for the stream (against the timeout) and marks which parameters have a gradient.
    void finish() {
        if (!started_) throw value_error("distributed::gradient_reducer: finish() without start()");
        if (num_reduced_ > 0) comm_->synchronize("gradient allreduce");
        started_ = false;
        std::size_t f = 0;
        for (auto& b : buckets_)
            for (auto& p : b) {
                auto& s = p.state();
                if (flags_host_[f++] == T(0))
                    s.zero_grad();  // no rank had a gradient: the optimizer skips it everywhere
                else
                    s.grad_for_accumulate();  // the memory holds the average (nothing is filled)
            }
    }

private:
    reducer_options opt_;
    std::shared_ptr<nccl_communicator> comm_;
    std::vector<std::vector<parameter_type>> buckets_;
    std::vector<parameter_type> frozen_;
    std::size_t num_reduced_ = 0;
    tensor<T, device::cuda> flags_;
    T* flags_host_ = nullptr;
    bool started_ = false;
};

}  // namespace xgrad::distributed
