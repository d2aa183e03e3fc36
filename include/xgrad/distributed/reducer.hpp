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
// Overlap with backward (options.overlap, on by default with non_blocking): the reducer
// registers a gradient-ready hook (autodiff/hooks.hpp) on its parameters. During backward(),
// when every parameter of bucket k has received its last gradient contribution of the pass
// and buckets 0..k-1 have started, it packs bucket k and starts its MPI_Iallreduce, while
// backward goes on with the layers below. Buckets start in index order on every rank (MPI
// matches collectives by order), so a bucket whose gradient a rank does not reach waits, with
// the buckets after it, for finish(). At each later start, and each gradient that becomes
// final, it tests the started requests (MPI_Testsome): Open MPI moves a non-blocking
// collective on only inside MPI calls.
// finish() starts the buckets still waiting, then waits for all, in completion order, and
// unpacks (scales by 1/size) each. Started buckets hold a copy of what they sent: a gradient
// changed after its bucket started (a second backward before the step, clipping) is found by
// comparing, all ranks agree on those buckets (one small allreduce), and they are reduced
// again, so the result never depends on the overlap. Without overlap, reduce() packs bucket k
// and starts it at once, then packs k+1 while k travels.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../autodiff/hooks.hpp"
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
    /// Start each bucket's allreduce during backward(), as soon as its gradients are final
    /// (with non_blocking only; see the top of this file).
    bool overlap = true;
    /// Called with the bucket index when a bucket's allreduce starts, and whether backward()
    /// started it (true) or start()/finish() (false): for tests and tracing.
    std::function<void(std::size_t bucket, bool in_backward)> on_bucket_start = nullptr;
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
        done_.assign(buckets_.size(), 0);
        hook();
    }

    gradient_reducer(const gradient_reducer&) = delete;
    gradient_reducer& operator=(const gradient_reducer&) = delete;
    gradient_reducer(gradient_reducer&& o)
        : opt_(std::move(o.opt_)), size_(o.size_), buckets_(std::move(o.buckets_)), frozen_(std::move(o.frozen_)),
          reqs_(std::move(o.reqs_)), done_(std::move(o.done_)), next_(o.next_), started_(o.started_) {
        o.hook_.reset();  // it calls o
        o.reqs_.clear();
        hook();
    }
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
    /// How many buckets had started in backward() when start() was last called, and how many
    /// of those had already completed (their communication hidden behind backward).
    std::pair<std::size_t, std::size_t> overlapped_last_round() const noexcept { return last_round_; }
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

    /// Packs every bucket that backward() has not started and starts its allreduce (reverse
    /// parameter order).
    void start() {
        if (started_) throw value_error("distributed::gradient_reducer: start() called twice without finish()");
        started_ = true;
        if (size_ > 1 && !opt_.non_blocking) {
            for (auto& b : buckets_) {
                pack(b, b.buffer.data());
                detail::check(MPI_Allreduce(MPI_IN_PLACE, b.buffer.data(), static_cast<int>(b.buffer.size()),
                                            detail::mpi_type<T>(), MPI_SUM, MPI_COMM_WORLD),
                              "MPI_Allreduce");
            }
            return;
        }
        if (size_ == 1) {
            for (auto& b : buckets_) pack(b, b.buffer.data());
            return;
        }
        last_round_ = {0, 0};
        for (std::size_t k = 0; k < buckets_.size(); ++k) {
            last_round_.first += buckets_[k].in_backward;
            last_round_.second += buckets_[k].in_backward && done_[k];
        }
        while (next_ < buckets_.size()) launch(next_++, false);
    }

    /// Waits for the buckets (in completion order) and writes the averaged gradients back.
    void finish() {
        if (!started_) throw value_error("distributed::gradient_reducer: finish() without start()");
        started_ = false;
        if (size_ == 1 || !opt_.non_blocking) {
            for (auto& b : buckets_) unpack(b);
            return;
        }
        // buckets started in backward() whose gradients changed since, on any rank: reduce again
        std::vector<std::uint8_t> stale;
        if (hook_.active()) {
            stale.assign(buckets_.size(), 0);
            for (std::size_t k = 0; k < buckets_.size(); ++k)
                if (buckets_[k].in_backward && changed(buckets_[k])) stale[k] = 1;
            MPI_Request r;
            detail::check(MPI_Iallreduce(MPI_IN_PLACE, stale.data(), static_cast<int>(stale.size()), MPI_UINT8_T,
                                         MPI_MAX, MPI_COMM_WORLD, &r),
                          "MPI_Iallreduce");
            detail::wait(r, "gradient allreduce");
        }
        for (std::size_t k = 0; k < buckets_.size(); ++k)
            if (done_[k] && !(stale.size() && stale[k])) unpack(buckets_[k]);
        for (;;) {
            const int k = detail::wait_any(reqs_, "gradient allreduce");
            if (k == MPI_UNDEFINED) break;
            if (!(stale.size() && stale[static_cast<std::size_t>(k)])) unpack(buckets_[static_cast<std::size_t>(k)]);
        }
        for (std::size_t k = 0; k < stale.size(); ++k)
            if (stale[k]) {
                launch(k, false);
                detail::wait(reqs_[k], "gradient allreduce");
                unpack(buckets_[k]);
            }
        for (auto& b : buckets_) {
            b.ready = 0;
            b.in_backward = false;
            std::fill(b.slot_ready.begin(), b.slot_ready.end(), 0);
        }
        std::fill(done_.begin(), done_.end(), 0);
        next_ = 0;
    }

private:
    struct bucket {
        std::vector<parameter_type> params;
        std::size_t elements = 0;  // gradient elements; the "has a gradient" flags follow
        std::vector<T> buffer;     // reduced in place (blocking, one rank), or received into
        std::vector<T> sent;       // what a non-blocking allreduce sent
        std::vector<std::uint8_t> slot_ready;  // per parameter: its gradient is final (hook)
        std::size_t ready = 0;
        bool in_backward = false;  // started by the hook, during backward()
    };

    void close(bucket& b) {
        b.elements = 0;
        for (auto& p : b.params) b.elements += p.size();
        b.buffer.assign(b.elements + b.params.size(), T(0));
        b.slot_ready.assign(b.params.size(), 0);
        buckets_.push_back(std::move(b));
    }

    /// Registers the gradient-ready hook (overlap on, several ranks, non-blocking).
    void hook() {
        if (!opt_.overlap || !opt_.non_blocking || size_ == 1 || buckets_.empty()) return;
        std::vector<parameter_type> all;
        std::vector<std::pair<std::size_t, std::size_t>> where;  // bucket, slot
        for (std::size_t k = 0; k < buckets_.size(); ++k)
            for (std::size_t i = 0; i < buckets_[k].params.size(); ++i) {
                all.push_back(buckets_[k].params[i]);
                where.emplace_back(k, i);
            }
        hook_ = on_gradient_ready(all, [this, where = std::move(where)](std::size_t j) { ready(where[j].first, where[j].second); });
    }

    /// A parameter's gradient is final for this backward pass: start the buckets that are
    /// complete, in order.
    void ready(std::size_t k, std::size_t i) {
        bucket& b = buckets_[k];
        if (k < next_ || b.slot_ready[i]) return;  // started already (finish() compares)
        b.slot_ready[i] = 1;
        ++b.ready;
        const std::size_t before = next_;
        while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) {
            buckets_[next_].in_backward = true;
            launch(next_++, true);
        }
        if (next_ == before && next_ > 0) progress();  // a chance for the started ones to move on
    }

    /// Writes bucket b's gradients and "has a gradient" flags to dst.
    static void pack(bucket& b, T* dst) {
        std::size_t at = 0;
        for (std::size_t i = 0; i < b.params.size(); ++i) {
            auto& s = b.params[i].state();
            const bool has = !s.grad_zero;
            if (has) {
                const tensor<T> g = s.grad().contiguous();
                std::memcpy(dst + at, g.data(), g.size() * sizeof(T));
            } else {
                std::fill_n(dst + at, b.params[i].size(), T(0));
            }
            at += b.params[i].size();
            dst[b.elements + i] = has ? T(1) : T(0);
        }
    }

    /// True when bucket b's gradients differ from what it sent.
    static bool changed(bucket& b) {
        std::size_t at = 0;
        for (std::size_t i = 0; i < b.params.size(); ++i) {
            auto& s = b.params[i].state();
            const bool has = !s.grad_zero;
            if (b.sent[b.elements + i] != (has ? T(1) : T(0))) return true;
            if (has) {
                const tensor<T> g = s.grad().contiguous();
                if (std::memcmp(b.sent.data() + at, g.data(), g.size() * sizeof(T))) return true;
            }
            at += b.params[i].size();
        }
        return false;
    }

    /// Packs bucket k and starts its MPI_Iallreduce, then tests the started ones (progress).
    void launch(std::size_t k, bool in_backward) {
        bucket& b = buckets_[k];
        b.sent.resize(b.buffer.size());
        pack(b, b.sent.data());
        detail::check(MPI_Iallreduce(b.sent.data(), b.buffer.data(), static_cast<int>(b.buffer.size()),
                                     detail::mpi_type<T>(), MPI_SUM, MPI_COMM_WORLD, &reqs_[k]),
                      "MPI_Iallreduce");
        done_[k] = 0;
        if (opt_.on_bucket_start) opt_.on_bucket_start(k, in_backward);
        progress();
    }

    /// Lets MPI move the started allreduces on (it progresses inside its calls); remembers the
    /// ones that completed.
    void progress() {
        int count = 0;
        indices_.resize(reqs_.size());
        detail::check(MPI_Testsome(static_cast<int>(reqs_.size()), reqs_.data(), &count, indices_.data(),
                                   MPI_STATUSES_IGNORE),
                      "MPI_Testsome");
        for (int j = 0; j < count && count != MPI_UNDEFINED; ++j) done_[static_cast<std::size_t>(indices_[j])] = 1;
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
    std::vector<std::uint8_t> done_;  // completed during backward() (MPI_Testsome), not unpacked
    std::vector<int> indices_;
    std::size_t next_ = 0;            // buckets 0..next_-1 have started this round
    std::pair<std::size_t, std::size_t> last_round_{0, 0};
    bool started_ = false;
    gradient_hook_handle hook_;       // last: removed before the buckets go
};

}  // namespace xgrad::distributed
