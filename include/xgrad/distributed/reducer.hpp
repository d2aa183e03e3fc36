#pragma once
// Gradient averaging across ranks in buckets, and the broadcast of initial parameters.
//
// Buckets: the parameters, in reverse order (the last layer's gradients first, as backward
// produces them), are packed into contiguous buffers of about bucket_bytes (default 25 MiB,
// PyTorch DDP's figure); a parameter larger than that gets a bucket of its own. Each bucket
// carries one extra element per parameter, 1 when this rank has a gradient for it, so a
// parameter that no rank's backward reached stays "no gradient" (the optimizer skips it) on
// every rank, and one reached on some ranks only is averaged with zeros elsewhere.
//
// Overlap: reduce() packs bucket k and starts its MPI_Iallreduce at once, then packs bucket
// k+1 while k travels; it unpacks (and scales by 1/size) each bucket as soon as it completes,
// in completion order. xgrad's backward() is one call that finishes every gradient of the
// graph together (fused elementwise loops, then the barrier ops), so there is no earlier
// point at which a bucket is known to be final: the communication overlaps the packing and
// unpacking of other buckets and, with start()/finish(), any work the caller places between
// them (metrics, logging), not backward itself.
#include <mpi.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../core/parameter.hpp"
#include "environment.hpp"

namespace xgrad::distributed {

struct reducer_options {
    /// Bytes of gradient per bucket (about; a larger parameter gets its own bucket).
    std::size_t bucket_bytes = std::size_t{25} << 20;
    /// Divide the summed gradients by the number of ranks (the mean over the global batch when
    /// every rank's loss is the mean over its equal share of it).
    bool average = true;
    /// true: MPI_Iallreduce per bucket, each unpacked as it completes; false: a blocking
    /// MPI_Allreduce per bucket (Open MPI's blocking collectives use tuned algorithms that its
    /// non-blocking ones lack: see docs/distributed.md for both measured).
    bool non_blocking = true;
};

/// Averages the gradients of a fixed list of parameters across MPI_COMM_WORLD. Every rank
/// must build it from the same parameters in the same order, and call the same methods.
template <class T, class Device = device::cpu>
class gradient_reducer {
    static_assert(std::is_same_v<Device, device::cpu>,
                  "xgrad::distributed::gradient_reducer: MPI reduces host (CPU) parameters; parameters on "
                  "device::cuda are reduced with NCCL (a .cu file linking xgrad::nccl), other devices are not");

public:
    using parameter_type = parameter<T, Device>;

    explicit gradient_reducer(std::vector<parameter_type> params, reducer_options o = {}) : opt_(o) {
        if (o.bucket_bytes == 0) throw value_error("distributed::gradient_reducer: bucket_bytes must be positive");
        size_ = distributed::size();
        for (std::size_t i = 0; i < params.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (params[i].same(params[j]))
                    throw value_error("distributed::gradient_reducer: parameter '" + params[i].name() +
                                      "' is listed twice");
        // reverse order; parameters that do not require a gradient are never reduced
        bucket cur;
        std::size_t bytes = 0;
        for (auto it = params.rbegin(); it != params.rend(); ++it) {
            if (!it->requires_grad()) {
                frozen_.push_back(*it);
                continue;
            }
            if (!cur.params.empty() && bytes + it->size() * sizeof(T) > opt_.bucket_bytes) {
                close(cur);
                cur = {};
                bytes = 0;
            }
            cur.params.push_back(*it);
            bytes += it->size() * sizeof(T);
        }
        if (!cur.params.empty()) close(cur);
        reqs_.assign(buckets_.size(), MPI_REQUEST_NULL);
    }

    gradient_reducer(const gradient_reducer&) = delete;
    gradient_reducer& operator=(const gradient_reducer&) = delete;
    gradient_reducer(gradient_reducer&&) = default;
    ~gradient_reducer() {
        // A reduction abandoned by an exception (a timeout: a peer is gone) never completes and
        // a collective cannot be cancelled, so waiting would hang. MPI may still write the
        // buffers: hand them over (leaked on purpose; the run is ending, see run()).
        for (auto& r : reqs_)
            if (r != MPI_REQUEST_NULL) {
                new std::vector<bucket>(std::move(buckets_));  // NOLINT: intentionally never freed
                return;
            }
    }

    std::size_t num_buckets() const noexcept { return buckets_.size(); }
    /// Parameters of bucket b, in the order they were packed.
    const std::vector<parameter_type>& bucket_parameters(std::size_t b) const { return buckets_.at(b).params; }

    /// Copies every parameter's value from `root` to the other ranks (in buckets), so that all
    /// ranks start from the same model.
    void broadcast_parameters(int root = 0) {
        if (size_ == 1) return;
        for (auto& b : buckets_) {
            std::size_t at = 0;
            for (auto& p : b.params) {
                const tensor<T>& v = p.value();
                const tensor<T> c = v.contiguous();
                std::memcpy(b.buffer.data() + at, c.data(), p.size() * sizeof(T));
                at += p.size();
            }
            MPI_Request r;
            detail::check(MPI_Ibcast(b.buffer.data(), static_cast<int>(at), detail::mpi_type<T>(), root,
                                     MPI_COMM_WORLD, &r),
                          "MPI_Ibcast");
            detail::wait(r, "broadcast_parameters");
            at = 0;
            for (auto& p : b.params) {
                tensor<T> v = p.value();
                write(v, b.buffer.data() + at, T(1));
                at += p.size();
            }
        }
        // also the parameters that do not require a gradient (frozen layers)
        for (auto& p : frozen_) {
            tensor<T> v = p.value().contiguous();
            MPI_Request r;
            detail::check(
                MPI_Ibcast(v.data(), static_cast<int>(v.size()), detail::mpi_type<T>(), root, MPI_COMM_WORLD, &r),
                "MPI_Ibcast");
            detail::wait(r, "broadcast_parameters");
            tensor<T> dst = p.value();
            if (dst.data() != v.data()) write(dst, v.data(), T(1));
        }
    }

    /// start() then finish().
    void reduce() {
        start();
        finish();
    }

    /// Packs every bucket and starts its non-blocking allreduce (reverse parameter order).
    void start() {
        if (started_) throw value_error("distributed::gradient_reducer: start() called twice without finish()");
        started_ = true;
        for (std::size_t k = 0; k < buckets_.size(); ++k) {
            bucket& b = buckets_[k];
            std::size_t at = 0;
            for (std::size_t i = 0; i < b.params.size(); ++i) {
                auto& s = b.params[i].state();
                const bool has = !s.grad_zero;
                if (has) {
                    const tensor<T> g = s.grad().contiguous();
                    std::memcpy(b.buffer.data() + at, g.data(), g.size() * sizeof(T));
                } else {
                    std::fill_n(b.buffer.data() + at, b.params[i].size(), T(0));
                }
                at += b.params[i].size();
                b.buffer[b.elements + i] = has ? T(1) : T(0);
            }
            if (size_ > 1 && !opt_.non_blocking) {
                detail::check(MPI_Allreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()),
                                            detail::mpi_type<T>(), MPI_SUM, MPI_COMM_WORLD),
                              "MPI_Allreduce");
            } else if (size_ > 1) {
                detail::check(MPI_Iallreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()),
                                             detail::mpi_type<T>(), MPI_SUM, MPI_COMM_WORLD, &reqs_[k]),
                              "MPI_Iallreduce");
                // drive the earlier buckets (MPI progresses inside its calls)
                int flag = 0;
                MPI_Testall(static_cast<int>(k + 1), reqs_.data(), &flag, MPI_STATUSES_IGNORE);
            }
        }
    }

    /// Waits for the buckets (in completion order) and writes the averaged gradients back.
    void finish() {
        if (!started_) throw value_error("distributed::gradient_reducer: finish() without start()");
        started_ = false;
        if (size_ == 1 || !opt_.non_blocking) {
            for (auto& b : buckets_) unpack(b);
            return;
        }
        for (;;) {
            const int k = detail::wait_any(reqs_, "gradient allreduce");
            if (k == MPI_UNDEFINED) break;
            unpack(buckets_[static_cast<std::size_t>(k)]);
        }
    }

private:
    struct bucket {
        std::vector<parameter_type> params;
        std::size_t elements = 0;  // gradient elements; the "has a gradient" flags follow
        std::vector<T> buffer;
    };

    void close(bucket& b) {
        b.elements = 0;
        for (auto& p : b.params) b.elements += p.size();
        b.buffer.assign(b.elements + b.params.size(), T(0));
        buckets_.push_back(std::move(b));
    }

    static void write(tensor<T>& dst, const T* src, T scale) {
        if (dst.is_contiguous()) {
            T* d = dst.data();
            if (scale == T(1))
                std::memcpy(d, src, dst.size() * sizeof(T));
            else
                for (std::size_t i = 0; i < dst.size(); ++i) d[i] = src[i] * scale;
        } else {
            auto c = tensor<T>::uninitialized(dst.shape());
            for (std::size_t i = 0; i < c.size(); ++i) c.data()[i] = src[i] * scale;
            dst.assign(c);
        }
    }

    void unpack(bucket& b) {
        const T scale = opt_.average ? T(1) / static_cast<T>(size_) : T(1);
        std::size_t at = 0;
        for (std::size_t i = 0; i < b.params.size(); ++i) {
            auto& s = b.params[i].state();
            if (b.buffer[b.elements + i] == T(0)) {
                s.zero_grad();  // no rank had a gradient: the optimizer skips it everywhere
            } else {
                tensor<T>& g = s.grad_for_accumulate();
                write(g, b.buffer.data() + at, scale);
            }
            at += b.params[i].size();
        }
    }

    reducer_options opt_;
    int size_ = 1;
    std::vector<bucket> buckets_;
    std::vector<parameter_type> frozen_;
    std::vector<MPI_Request> reqs_;
    bool started_ = false;
};

}  // namespace xgrad::distributed
