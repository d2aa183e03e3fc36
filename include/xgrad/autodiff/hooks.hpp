#pragma once
// Gradient-ready hooks: on_gradient_ready(params, f) calls f(i) during every backward pass,
// as soon as the pass has made its last contribution to params[i]'s gradient, like PyTorch's
// post-accumulate-grad hooks (what DDP starts its bucket allreduce from).
//
// How the pass knows: before it runs, backward() walks the expression and counts the
// occurrences of each watched parameter (each node lists its leaves: detail::grad_leaf_walk).
// Every fused backward loop reports, once finished, the parameter occurrences it wrote
// (detail::gradient_observer); the count reaching zero fires the hook. A parameter used twice
// (tied weights) fires once, after its second accumulation. Barrier ops push their parameter
// operands' gradients before descending into their other operands, so a layer's weights are
// ready before the layers below run their backward.
//
// Each parameter the pass reaches fires exactly once per pass: those whose count did not reach
// zero (a node that could not list its leaves, a fork handle left out of the expression) fire
// when the pass ends. Parameters the pass does not reach do not fire. With no hook registered
// backward() only reads one counter, and the loops one thread-local pointer.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "../core/parameter.hpp"
#include "../expr/node.hpp"
#include "../expr/pass.hpp"

namespace xgrad {

namespace detail {

struct gradient_hook_entry {
    std::vector<const void*> states;          // the watched parameters' grad_states
    std::vector<std::shared_ptr<void>> keep;  // ... kept alive while registered
    std::function<void(std::size_t)> ready;
};

struct gradient_hook_registry {
    std::mutex m;
    std::vector<std::shared_ptr<gradient_hook_entry>> entries;
    std::atomic<std::size_t> count{0};
};

inline gradient_hook_registry& gradient_hooks() {
    static gradient_hook_registry r;
    return r;
}

/// The hook bookkeeping of one backward pass; inactive (and free) when no hook is registered or
/// when a hooked pass is already running on this thread.
class hooked_backward final : public gradient_observer {
public:
    template <class E>
    explicit hooked_backward(const E& e) {
        auto& reg = gradient_hooks();
        if (reg.count.load(std::memory_order_acquire) == 0 || active_gradient_observer()) return;
        {
            std::lock_guard<std::mutex> lock(reg.m);
            entries_ = reg.entries;
        }
        if (entries_.empty()) return;
        grad_leaf_walk w;
        walk_grad_leaves(e, w);
        complete_ = w.complete;
        if (complete_) {
            std::sort(w.leaves.begin(), w.leaves.end());
            for (const auto& en : entries_)
                for (std::size_t i = 0; i < en->states.size(); ++i) {
                    const void* s = en->states[i];
                    const auto [lo, hi] = std::equal_range(w.leaves.begin(), w.leaves.end(), s);
                    if (lo == hi) continue;  // not reached by this pass
                    auto it = std::lower_bound(pending_.begin(), pending_.end(), s,
                                               [](const pending& p, const void* x) { return p.state < x; });
                    if (it == pending_.end() || it->state != s)
                        it = pending_.insert(it, pending{s, static_cast<std::size_t>(hi - lo), {}});
                    it->targets.emplace_back(en.get(), i);
                }
        }
        active_gradient_observer() = this;
        active_ = true;
    }
    hooked_backward(const hooked_backward&) = delete;
    hooked_backward& operator=(const hooked_backward&) = delete;
    ~hooked_backward() {
        if (active_) active_gradient_observer() = nullptr;
    }

    void accumulated(const void* state, std::size_t occurrences) override {
        auto it = std::lower_bound(pending_.begin(), pending_.end(), state,
                                   [](const pending& p, const void* x) { return p.state < x; });
        if (it == pending_.end() || it->state != state || it->remaining == 0) return;
        it->remaining -= std::min(occurrences, it->remaining);
        if (it->remaining == 0) fire(*it);
    }

    /// The pass ran to its end: fire what is still pending (every watched parameter when the
    /// walk was incomplete).
    void finish() {
        if (!active_) return;
        active_gradient_observer() = nullptr;
        active_ = false;
        if (!complete_) {
            for (const auto& en : entries_)
                for (std::size_t i = 0; i < en->states.size(); ++i) en->ready(i);
            return;
        }
        for (auto& p : pending_)
            if (p.remaining > 0) {
                p.remaining = 0;
                fire(p);
            }
    }

private:
    struct pending {
        const void* state;
        std::size_t remaining;
        std::vector<std::pair<gradient_hook_entry*, std::size_t>> targets;
    };

    static void fire(const pending& p) {
        for (const auto& [en, i] : p.targets) en->ready(i);
    }

    std::vector<std::shared_ptr<gradient_hook_entry>> entries_;  // held for the pass
    std::vector<pending> pending_;                                // sorted by state
    bool complete_ = true;
    bool active_ = false;
};

}  // namespace detail

/// A registered gradient-ready hook; the calls stop when the handle is destroyed or reset().
class gradient_hook_handle {
public:
    gradient_hook_handle() = default;
    explicit gradient_hook_handle(std::shared_ptr<detail::gradient_hook_entry> e) : e_(std::move(e)) {}
    gradient_hook_handle(gradient_hook_handle&& o) noexcept : e_(std::move(o.e_)) {}
    gradient_hook_handle& operator=(gradient_hook_handle&& o) noexcept {
        if (this != &o) {
            reset();
            e_ = std::move(o.e_);
        }
        return *this;
    }
    gradient_hook_handle(const gradient_hook_handle&) = delete;
    gradient_hook_handle& operator=(const gradient_hook_handle&) = delete;
    ~gradient_hook_handle() { reset(); }

    bool active() const noexcept { return e_ != nullptr; }
    void reset() noexcept {
        if (!e_) return;
        auto& reg = detail::gradient_hooks();
        std::lock_guard<std::mutex> lock(reg.m);
        std::erase(reg.entries, e_);
        reg.count.store(reg.entries.size(), std::memory_order_release);
        e_.reset();
    }

private:
    std::shared_ptr<detail::gradient_hook_entry> e_;
};

/// Calls ready(i) during each backward pass that reaches params[i], once, right after the
/// pass's last contribution to params[i]'s gradient (a parameter used several times: after the
/// last). ready runs on the thread that runs backward(), between two backward loops; it may
/// read the gradient (on a device: the kernels writing it are enqueued, not finished). Hooks
/// registered on the same parameter run in registration order. Register and remove hooks
/// while no backward pass runs.
template <class T, class D>
[[nodiscard]] gradient_hook_handle on_gradient_ready(const std::vector<parameter<T, D>>& params,
                                                     std::function<void(std::size_t)> ready) {
    if (!ready) throw value_error("xgrad::on_gradient_ready: the hook is empty");
    auto e = std::make_shared<detail::gradient_hook_entry>();
    for (const auto& p : params) {
        if (!p.state_ptr()) throw value_error("xgrad::on_gradient_ready: a parameter is empty (default-constructed)");
        e->states.push_back(&p.state());
        e->keep.push_back(p.state_ptr());
    }
    e->ready = std::move(ready);
    auto& reg = detail::gradient_hooks();
    {
        std::lock_guard<std::mutex> lock(reg.m);
        reg.entries.push_back(e);
        reg.count.store(reg.entries.size(), std::memory_order_release);
    }
    return gradient_hook_handle(std::move(e));
}

}  // namespace xgrad
