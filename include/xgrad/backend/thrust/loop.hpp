#pragma once
// The Thrust executor: the kernel builder (loop_ctx), the roots (what one loop position does)
// and the driver that runs a root as ONE thrust::for_each over the loop, then merges partial
// copies in ONE more launch.
//
// Outputs many positions combine into (broadcast gradients, reductions, the value of a loss)
// go to private partial copies: on the host systems one copy per lane, each lane a contiguous
// range of positions, so plain adds; on the GPU a few copies per output taking warp-aggregated
// atomics, spread so that one address does not serialize the whole grid.
#include <algorithm>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include <thrust/fill.h>

#include "../../core/parameter.hpp"
#include "../../expr/leaf_gradients.hpp"
#include "../../expr/pass.hpp"
#include "kernels.hpp"
#include "tensor.hpp"

namespace xgrad::detail::thrust_backend {

template <class T>
T identity(combine c) {
    return c == combine::plus ? T(0) : -std::numeric_limits<T>::infinity();
}

/// After the loop: target[k] (=|+=|max=) scale * combination of the copies of element k, for
/// up to max_segments outputs in one launch.
template <class T>
struct merge_partials {
    static constexpr int max_segments = 8;
    struct segment {
        const T* copies = nullptr;
        T* target = nullptr;
        std::ptrdiff_t begin = 0;  // first position of this segment in the launch
        std::ptrdiff_t size = 0;    // elements per copy
        std::ptrdiff_t stride = 0;  // distance between copies (size, or a cache line on the GPU)
        std::ptrdiff_t count = 1;   // number of copies
        int is_max = 0;
        int assign = 1;
        T scale = T(1);
    };
    segment seg[max_segments];
    int n = 0;

    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        int s = 0;
        while (s + 1 < n && i >= seg[s + 1].begin) ++s;
        const segment& g = seg[s];
        const std::ptrdiff_t k = i - g.begin;
        T acc = g.copies[k];
        for (std::ptrdiff_t c = 1; c < g.count; ++c) {
            const T v = g.copies[c * g.stride + k];
            acc = g.is_max ? (v > acc ? v : acc) : acc + v;
        }
        if (g.is_max)
            g.target[k] = g.assign || acc > g.target[k] ? acc : g.target[k];
        else
            g.target[k] = g.assign ? acc * g.scale : g.target[k] + acc * g.scale;
    }
};

/// Host systems: lane p runs positions [p * chunk, (p + 1) * chunk), in order.
template <class Root>
struct lane_runner {
    Root root;
    std::ptrdiff_t n, chunk;
    void operator()(std::ptrdiff_t lane) const {
        Root r = root;  // step() is not const (the kernel protocol's bwd() is not)
        const std::ptrdiff_t b = lane * chunk;
        const std::ptrdiff_t e = std::min(n, b + chunk);
        for (std::ptrdiff_t j = b; j < e; ++j) r.step(j);
    }
};

/// GPU: one position per thread.
template <class Root>
struct element_runner {
    Root root;
    XGRAD_HD void operator()(std::ptrdiff_t j) const {
        Root r = root;
        r.step(j);
    }
};

/// Builds the kernels of one loop over `shape` on device D, and owns what the loop needs
/// beyond them: partial copies and their merge, and the backward steps of materialized nodes.
template <class T, class D>
class loop_ctx {
    using sys = system<D>;

public:
    loop_ctx(shape_t loop_shape, bool want_grad) : shape_(std::move(loop_shape)), want_grad_(want_grad) {
        if (shape_.size() > max_rank)
            throw shape_error("fused loop: rank " + std::to_string(shape_.size()) + " of shape " + to_string(shape_) +
                              " exceeds xgrad::max_rank (" + std::to_string(max_rank) + ")");
        n_ = static_cast<std::ptrdiff_t>(numel(shape_));
        if constexpr (sys::host_memory) {
            const std::size_t want = numel(shape_) >= host_parallel_grain() ? sys::lanes() : 1;
            lanes_ = static_cast<std::ptrdiff_t>(std::max<std::size_t>(1, std::min<std::size_t>(want, numel(shape_))));
            chunk_ = std::max<std::ptrdiff_t>(1, (n_ + lanes_ - 1) / lanes_);
        }
    }

    const shape_t& shape() const { return shape_; }
    bool want_grad() const { return want_grad_; }

    /// `t` read at every loop position (broadcast to the loop shape).
    input_operand<T> input(const tensor<T, D>& t) {
        return {t.data(), index_for(t.shape(), t.strides(), "operand")};
    }

    /// An output written once per position: `t` has the loop's shape.
    assign_operand<T> output(const tensor<T, D>& t) { return {t.data(), index_for(t.shape(), t.strides(), "output")}; }

    /// An output every loop position combines into: `target` (contiguous) broadcasts over the
    /// loop. After the loop target = scale * combination when `assign`, else it is combined
    /// with target's current contents.
    template <combine C>
    partial_operand<T, C> partial_output(const tensor<T, D>& target, bool assign, T scale = T(1)) {
        if (!target.is_contiguous()) throw value_error("fused loop: a combined output must be contiguous");
        const auto size = static_cast<std::ptrdiff_t>(target.size());
        partial_operand<T, C> op;
        op.at = index_for(target.shape(), contiguous_strides(target.shape()), "output");
        op.copy_size = size;
        std::ptrdiff_t copies = lanes_;
        if constexpr (!sys::host_memory) {
            // a few copies when many positions meet in few elements, one when they barely
            // collide; a small output's copies each start a cache line of their own, so the
            // copies' atomics go to different L2 slices instead of queueing on one line
            const std::ptrdiff_t per_element = size > 0 ? n_ / size : 0;
            copies = std::clamp<std::ptrdiff_t>(per_element / 4096, 1, 64);
            constexpr auto line = static_cast<std::ptrdiff_t>(128 / sizeof(T));
            if (copies > 1 && size < line) op.copy_size = line;
        }
        op.chunk = std::max<std::ptrdiff_t>(1, (n_ + copies - 1) / copies);
        copies = std::max<std::ptrdiff_t>(1, (n_ + op.chunk - 1) / op.chunk);
        op.scratch = scratch_size_;
        scratch_size_ += copies * op.copy_size;
        partials_.push_back({target, op.scratch, size, op.copy_size, copies, C, assign, scale});
        return op;
    }

    device_input_kernel<T> input_leaf(const tensor<T, D>& t) { return {input(t)}; }

    device_grad_leaf_kernel<T> grad_leaf(grad_state<T, D>& s) {
        using kind = typename grad_operand<T>::kind;
        return grads_.complete(
            device_grad_leaf_kernel<T>{input(s.value), {}, false}, s, want_grad_, shape_,
            [&] {  // a broadcast leaf sums into partial copies
                const bool assign = s.claim_write();
                if (!assign) s.grad_for_accumulate();
                const auto p = partial_output<combine::plus>(s.grad_storage, assign);
                return grad_operand<T>{nullptr, p.at, kind::partial, p.chunk, p.copy_size, p.scratch};
            },
            [&](bool assign) {  // later occurrences add, in order
                const auto at = index_for(s.value.shape(), contiguous_strides(s.value.shape()), "gradient");
                return grad_operand<T>{s.grad_storage.data(), at, assign ? kind::assign : kind::add};
            });
    }

    /// A node computed before the loop (a reduction) read as a leaf; its gradient is gathered
    /// by the loop and handed to node.backward_from() afterwards.
    template <class Node>
    device_grad_leaf_kernel<T> materialized(const Node& node) {
        tensor<T, D> v = node.forward_value();
        if (!(want_grad_ && Node::has_grad)) {
            keep_.push_back(std::make_shared<tensor<T, D>>(v));
            return {input(v), {}, false};
        }
        auto s = std::make_shared<grad_state<T, D>>(std::move(v));
        keep_.push_back(s);
        backward_steps_.push_back([&node, s] { node.backward_from(s->grad()); });
        return grad_leaf(*s);
    }

    /// Runs root.step(j) for every loop position, merges the partial copies, then runs the
    /// materialized nodes' backward steps.
    template <class Root>
    void run(Root& root) {
        collapse(root);
        std::shared_ptr<T> scratch;
        if (scratch_size_ > 0) {
            scratch = allocate<T, D>(static_cast<std::size_t>(scratch_size_));
            thrust::fill_n(sys::policy(), scratch.get(), scratch_size_, T(0));
            for (auto& p : partials_)
                if (p.c != combine::plus)
                    thrust::fill_n(sys::policy(), scratch.get() + p.scratch, p.count * p.stride, identity<T>(p.c));
            root.visit([&](auto& op) {
                if constexpr (requires { op.scratch; })
                    if (op.scratch >= 0) op.base = scratch.get() + op.scratch;
            });
        }
        if (n_ > 0) {
            if constexpr (sys::host_memory)
                for_each_index<D>(static_cast<std::size_t>(lanes_), lane_runner<Root>{root, n_, chunk_});
            else
                for_each_index<D>(static_cast<std::size_t>(n_), element_runner<Root>{root});
        }
        merge(scratch.get());
        grads_.report();  // enqueued, on a device
        for (auto& b : backward_steps_) b();
        backward_steps_.clear();
    }

private:
    struct partial {
        tensor<T, D> target;
        std::ptrdiff_t scratch, size, stride, count;
        combine c;
        bool assign;
        T scale;
    };

    strided_index index_for(const shape_t& s, const strides_t& st, const char* what) const {
        if (s.size() > shape_.size())
            throw shape_error(std::string("fused loop: ") + what + " of shape " + to_string(s) +
                              " has higher rank than the loop shape " + to_string(shape_));
        return make_index(shape_, broadcast_strides(s, st, shape_));
    }

    /// Drops size-1 dimensions and merges neighbours every operand steps through as one, so
    /// that same-shape contiguous operands index with one multiplication.
    template <class Root>
    void collapse(Root& root) {
        std::vector<strided_index*> ix;
        root.visit([&](auto& op) { ix.push_back(&op.at); });
        std::vector<std::ptrdiff_t> dims;
        std::vector<std::vector<std::ptrdiff_t>> st(ix.size());
        for (std::size_t d = 0; d < shape_.size(); ++d) {
            const auto ext = static_cast<std::ptrdiff_t>(shape_[d]);
            if (ext == 1) continue;
            bool merge = !dims.empty();
            for (std::size_t o = 0; merge && o < ix.size(); ++o) merge = st[o].back() == ix[o]->stride[d] * ext;
            if (merge) {
                dims.back() *= ext;
                for (std::size_t o = 0; o < ix.size(); ++o) st[o].back() = ix[o]->stride[d];
            } else {
                dims.push_back(ext);
                for (std::size_t o = 0; o < ix.size(); ++o) st[o].push_back(ix[o]->stride[d]);
            }
        }
        if (dims.empty()) {  // one element
            dims.push_back(1);
            for (auto& s : st) s.push_back(0);
        }
        for (std::size_t o = 0; o < ix.size(); ++o) {
            strided_index c;
            c.rank = static_cast<int>(dims.size());
            for (std::size_t d = 0; d < dims.size(); ++d) {
                c.extent[d] = dims[d];
                c.stride[d] = st[o][d];
            }
            *ix[o] = c;
        }
    }

    /// One launch (per max_segments outputs) combining every output's copies into its target.
    void merge(const T* scratch) {
        using M = merge_partials<T>;
        for (std::size_t first = 0; first < partials_.size(); first += M::max_segments) {
            M m;
            std::ptrdiff_t total = 0;
            for (std::size_t i = first; i < partials_.size() && m.n < M::max_segments; ++i) {
                const partial& p = partials_[i];
                auto& g = m.seg[m.n++];
                g.copies = scratch + p.scratch;
                g.target = p.target.data();
                g.begin = total;
                g.size = p.size;
                g.stride = p.stride;
                g.count = p.count;
                g.is_max = p.c == combine::max;
                g.assign = p.assign;
                g.scale = p.scale;
                total += p.size;
            }
            for_each_index<D>(static_cast<std::size_t>(total), m);
        }
        partials_.clear();
    }

    shape_t shape_;
    bool want_grad_;
    std::ptrdiff_t n_ = 0;
    std::ptrdiff_t lanes_ = 1, chunk_ = 1;
    std::ptrdiff_t scratch_size_ = 0;
    std::vector<partial> partials_;
    std::vector<std::shared_ptr<void>> keep_;
    std::vector<std::function<void()>> backward_steps_;
    leaf_gradients<grad_operand<T>> grads_;
};

// --- roots: what one loop position does with the expression kernel --------------------------

/// out = expr
template <class K, class T>
struct eval_root {
    K k;
    assign_operand<T> out;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) { out.store(j, k.template fwd<T>(j).v); }
    template <class F> void visit(F&& f) { k.visit(f); f(out); }
};

/// dst_0 = e_0, then dst_1 = e_1, ... at each position (assign(into(...), ...)): a chain of
/// links ending in assign_end, so that the functor stays a plain aggregate on every device.
struct assign_end {
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t) {}
    template <class F> void visit(F&&) {}
};
template <class K, class T, class Next>
struct assign_link {
    K k;
    assign_operand<T> out;
    Next next;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) {
        out.store(j, k.template fwd<T>(j).v);  // before the later links read it
        next.step(j);
    }
    template <class F> void visit(F&& f) { k.visit(f); f(out); next.visit(f); }
};

/// sink (+|max)= expr: reductions
template <class K, class T, combine C>
struct reduce_root {
    K k;
    partial_operand<T, C> sink;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) { sink.store(j, k.template fwd<T>(j).v); }
    template <class F> void visit(F&& f) { k.visit(f); f(sink); }
};

/// sum(expr) and its gradient at the same position: the upstream gradient g is a constant.
template <class K, class T>
struct sum_backward_root {
    K k;
    partial_operand<T, combine::plus> sink;
    T g;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<T>(j);
        sink.store(j, c.v);
        k.bwd(j, c, g);
    }
    template <class F> void visit(F&& f) { k.visit(f); f(sink); }
};

/// Backward with an upstream gradient tensor (broadcast to the loop), times a scale.
template <class K, class T>
struct upstream_root {
    K k;
    input_operand<T> up;
    T scale;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<T>(j);
        k.bwd(j, c, T(up.load(j) * scale));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(up); }
};

/// count += (expr == m): how many elements share the maximum (max's backward).
template <class K, class T>
struct count_equal_root {
    K k;
    input_operand<T> m;
    partial_operand<T, combine::plus> sink;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) {
        sink.store(j, k.template fwd<T>(j).v == m.load(j) ? T(1) : T(0));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(m); f(sink); }
};

/// Backward of max: the upstream gradient to the elements equal to the maximum, split evenly.
template <class K, class T>
struct max_backward_root {
    K k;
    input_operand<T> up, m, count;
    XGRAD_HD XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<T>(j);
        k.bwd(j, c, c.v == m.load(j) ? T(up.load(j) / count.load(j)) : T(0));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(up); f(m); f(count); }
};

}  // namespace xgrad::detail::thrust_backend
