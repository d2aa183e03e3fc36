#pragma once
// What every backend's fused loop decides in the same way about a leaf that may receive a
// gradient (a parameter, or a materialized node's output): whether this occurrence gets one,
// the gradient_observer bookkeeping, and which of the two kinds of gradient output it needs.
// Each backend then builds that output its own way.
#include <utility>
#include <vector>

#include "../core/parameter.hpp"
#include "../core/shape.hpp"
#include "pass.hpp"

namespace xgrad::detail {

/// The leaves one fused loop writes gradients to. G is the backend's gradient output operand.
template <class G>
class leaf_gradients {
public:
    /// Completes the leaf kernel `k` (its input already set) for one occurrence of the grad_state
    /// `s` in a loop over `loop_shape`. Inactive when the loop wants no gradient or `s` requires
    /// none. A broadcast leaf (several loop elements feed one gradient element) gets
    /// `broadcast()`, built at its first occurrence and shared by the later ones; otherwise the
    /// leaf gets `elementwise(assign)`, where assign (claim_gradient) says that this occurrence
    /// may write instead of reading and adding.
    template <class K, class State, class Broadcast, class Elementwise>
    K complete(K k, State& s, bool want_grad, const shape_t& loop_shape, Broadcast&& broadcast,
               Elementwise&& elementwise) {
        if (!want_grad || !s.requires_grad) return k;
        k.active = true;
        if (active_gradient_observer()) accumulated_.push_back(&s);
        if (numel(s.value.shape()) != numel(loop_shape)) {
            for (auto& [state, g] : shared_)
                if (state == &s) {
                    k.g = g;
                    return k;
                }
            k.g = broadcast();
            shared_.emplace_back(&s, k.g);
            return k;
        }
        k.g = elementwise(claim_gradient(claimed_, s));
        return k;
    }

    /// After the loop has written: tells a listening gradient_observer which leaves it wrote.
    void report() {
        if (!accumulated_.empty()) report_accumulated(accumulated_);
    }

private:
    std::vector<const void*> claimed_;
    std::vector<std::pair<const void*, G>> shared_;  // broadcast leaves' outputs
    std::vector<const void*> accumulated_;            // occurrences written, while an observer listens
};

}  // namespace xgrad::detail
