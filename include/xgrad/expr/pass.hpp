#pragma once
// A "pass" is one top-level eval() or backward() call. Materialized nodes (reductions,
// barrier ops such as matmul) cache their forward value for the duration of a pass, so the
// backward steps that revisit a subtree reuse it instead of recomputing; the next pass (after
// an optimizer step changed the parameters) computes afresh.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace xgrad::detail {

inline std::uint64_t& pass_counter() {
    thread_local std::uint64_t n = 0;
    return n;
}
inline int& pass_depth() {
    thread_local int d = 0;
    return d;
}
/// Opens a pass unless one is already open on this thread.
struct pass_scope {
    pass_scope() {
        if (pass_depth()++ == 0) ++pass_counter();
    }
    ~pass_scope() { --pass_depth(); }
    pass_scope(const pass_scope&) = delete;
    pass_scope& operator=(const pass_scope&) = delete;
};
inline std::uint64_t current_pass() { return pass_counter(); }

/// Per-node storage valid for one pass. Copies of a node share it.
template <class V>
struct pass_cache {
    struct slot {
        std::uint64_t pass = 0;
        bool valid = false;
        V value{};
    };
    std::shared_ptr<slot> s = std::make_shared<slot>();

    /// The cached value for the current pass, computing it with f() when stale.
    template <class F>
    const V& get(F&& f) const {
        if (!s->valid || s->pass != current_pass() || pass_depth() == 0) {
            s->value = f();
            s->pass = current_pass();
            s->valid = true;
        }
        return s->value;
    }
};

/// Listens to the gradient accumulations of a backward pass (autodiff/hooks.hpp counts them to
/// tell when a parameter's gradient is final). A backend's fused loop reports, once the loop
/// has finished writing, each parameter state it accumulated into, once per occurrence of the
/// parameter in the loop. Null (the default) when nobody listens: the loops then skip the
/// bookkeeping.
struct gradient_observer {
    virtual void accumulated(const void* state, std::size_t occurrences) = 0;

protected:
    ~gradient_observer() = default;
};
inline gradient_observer*& active_gradient_observer() {
    thread_local gradient_observer* o = nullptr;
    return o;
}
/// Reports the leaf occurrences a finished loop wrote (one entry each) and clears the list.
inline void report_accumulated(std::vector<const void*>& occurrences) {
    gradient_observer* o = active_gradient_observer();
    std::vector<const void*> done;
    done.swap(occurrences);
    if (!o) return;
    for (std::size_t i = 0; i < done.size(); ++i) {
        if (!done[i]) continue;
        std::size_t n = 0;
        for (std::size_t j = i + 1; j < done.size(); ++j)
            if (done[j] == done[i]) {
                ++n;
                done[j] = nullptr;
            }
        o->accumulated(done[i], n + 1);
    }
}

}  // namespace xgrad::detail
