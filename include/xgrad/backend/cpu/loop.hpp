#pragma once
// The CPU executor: strided operands, leaf kernels, the kernel builder (loop_ctx) and the
// loop driver that runs any root kernel as one SIMD loop split across the thread pool.
#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "../../core/parameter.hpp"
#include "../../core/shape.hpp"
#include "../../core/tensor.hpp"
#include "../../detail/vmath.hpp"
#include "../../expr/pass.hpp"
#include "../../expr/kernels.hpp"
#include "../../expr/leaf_gradients.hpp"
#include "thread_pool.hpp"

namespace xgrad::detail {

/// Loops smaller than this run on one thread (waking workers costs more than it saves).
inline constexpr std::size_t parallel_grain = std::size_t{1} << 15;

/// One strided array inside a loop: per-dimension strides against the loop shape (0 where it
/// broadcasts) and the pointer to the start of the current row.
template <class P>
struct strided_operand {
    P* base = nullptr;
    std::array<std::ptrdiff_t, max_rank> stride{};
    P* row = nullptr;
    std::ptrdiff_t inner = 0;

    void set_row(const std::size_t* idx, std::size_t rank) {
        std::ptrdiff_t off = 0;
        for (std::size_t d = 0; d + 1 < rank; ++d) off += static_cast<std::ptrdiff_t>(idx[d]) * stride[d];
        row = base + off;
        inner = stride[rank - 1];
    }
    void bind_thread(std::size_t) {}
    void begin_row() {}
    void end_row() {}
};

template <class T>
struct input_operand : strided_operand<const T> {
    template <class V>
    XGRAD_INLINE V load(std::ptrdiff_t j) const {
        if constexpr (is_batch_v<V>)
            return this->inner ? V::load_unaligned(this->row + j) : V(this->row[0]);
        else
            return this->row[j * this->inner];
    }
};

/// How an output combines values: sum (gradients, sum/mean) or max.
struct plus_combine {
    template <class T> static constexpr T identity() { return T(0); }
    template <class V> static XGRAD_INLINE V combine(V a, V b) { return a + b; }
    template <class T, class A> static XGRAD_INLINE T horizontal(const xsimd::batch<T, A>& b) { return vm::hsum(b); }
};
struct max_combine {
    template <class T> static constexpr T identity() { return -std::numeric_limits<T>::infinity(); }
    template <class V> static XGRAD_INLINE V combine(V a, V b) { return vm::max(a, b); }
    template <class T, class A> static XGRAD_INLINE T horizontal(const xsimd::batch<T, A>& b) { return vm::hmax(b); }
};

enum class write_mode { assign, combine };

/// An output: either written once per element (assign) or combined into (gradients,
/// reductions). Where it broadcasts along the row it accumulates in registers and flushes at
/// the row's end; where threads would collide it writes to per-thread private buffers.
template <class T, class C = plus_combine>
struct output_operand : strided_operand<T> {
    write_mode mode = write_mode::combine;
    T* const* thread_bases = nullptr;
    simd_t<T> vacc{};
    T sacc{};

    void bind_thread(std::size_t tid) {
        if (thread_bases) this->base = thread_bases[tid];
    }
    void begin_row() {
        vacc = simd_t<T>(C::template identity<T>());
        sacc = C::template identity<T>();
    }
    template <class V>
    XGRAD_INLINE void store(std::ptrdiff_t j, V g) {
        if constexpr (is_batch_v<V>) {
            if (this->inner == 0) {
                vacc = C::combine(vacc, g);
            } else if (mode == write_mode::assign) {
                g.store_unaligned(this->row + j);
            } else {
                C::combine(V::load_unaligned(this->row + j), g).store_unaligned(this->row + j);
            }
        } else {
            if (this->inner == 0) {
                sacc = C::combine(sacc, g);
            } else {
                T& dst = this->row[j * this->inner];
                dst = mode == write_mode::assign ? g : C::combine(dst, g);
            }
        }
    }
    void end_row() {
        if (this->inner != 0 || this->base == nullptr) return;  // null: an inactive gradient
        const T total = C::combine(C::horizontal(vacc), sacc);
        this->row[0] = mode == write_mode::assign ? total : C::combine(this->row[0], total);
    }
};

/// The leaf kernels of a CPU loop (expr/kernels.hpp).
template <class T>
using cpu_input_kernel = input_kernel<input_operand<T>>;
template <class T>
using cpu_grad_leaf_kernel = grad_leaf_kernel<input_operand<T>, output_operand<T>>;

/// Builds kernels for one loop over `shape`, and owns what the loop needs beyond them:
/// private per-thread buffers, their reductions, and the backward steps of materialized nodes
/// that run once the loop is done.
template <class T>
class loop_ctx {
public:
    loop_ctx(shape_t loop_shape, bool want_grad)
        : shape_(std::move(loop_shape)), want_grad_(want_grad) {
        if (shape_.size() > max_rank)
            throw shape_error("fused loop: rank " + std::to_string(shape_.size()) + " of shape " + to_string(shape_) +
                              " exceeds xgrad::max_rank (" + std::to_string(max_rank) + ")");
        nthreads_ = numel(shape_) >= parallel_grain ? std::max<std::size_t>(1, num_threads()) : 1;
    }

    const shape_t& shape() const { return shape_; }
    std::size_t threads() const { return nthreads_; }
    bool want_grad() const { return want_grad_; }

    input_operand<T> input(const tensor<T>& t) {
        if (t.dim() > shape_.size()) throw shape_error("fused loop: operand of shape " + to_string(t.shape()) +
                                                        " has higher rank than the loop shape " + to_string(shape_));
        input_operand<T> op;
        op.base = t.data();
        fill_strides(op.stride, broadcast_strides(t.shape(), t.strides(), shape_));
        return op;
    }

    /// An output written exactly once per element: `t` must have the loop's element count.
    output_operand<T> assign_output(const tensor<T>& t) {
        output_operand<T> op;
        op.base = t.data();
        op.mode = write_mode::assign;
        fill_strides(op.stride, broadcast_strides(t.shape(), t.strides(), shape_));
        return op;
    }

    /// An output every loop element combines into (`target` broadcasts over the loop); it holds
    /// meaningful values already unless `fresh`, in which case it is first set to C's identity.
    template <class C = plus_combine>
    output_operand<T, C> combine_output(const tensor<T>& target, bool fresh) {
        output_operand<T, C> op;
        op.mode = write_mode::combine;
        fill_strides(op.stride, broadcast_strides(target.shape(), contiguous_strides(target.shape()), shape_));
        if (fresh) target.fill(C::template identity<T>());
        if (nthreads_ == 1) {
            op.base = target.data();
            return op;
        }
        auto bufs = std::make_shared<std::vector<tensor<T>>>();
        auto bases = std::make_shared<std::vector<T*>>();
        for (std::size_t i = 0; i < nthreads_; ++i) {
            bufs->push_back(full<T>(target.shape(), C::template identity<T>()));
            bases->push_back(bufs->back().data());
        }
        op.base = bases->front();
        op.thread_bases = bases->data();
        keep_.push_back(bases);
        reductions_.push_back([bufs, target] {
            T* dst = target.data();
            const std::size_t n = target.size();
            for (auto& b : *bufs)
                for (std::size_t i = 0; i < n; ++i) dst[i] = C::combine(dst[i], b.data()[i]);
        });
        return op;
    }

    cpu_input_kernel<T> input_leaf(const tensor<T>& t) { return {input(t)}; }

    cpu_grad_leaf_kernel<T> grad_leaf(grad_state<T>& s) {
        return grads_.complete(
            cpu_grad_leaf_kernel<T>{input(s.value), {}, false}, s, want_grad_, shape_,
            // a broadcast leaf sums into private (per-thread) buffers
            [&] { return combine_output<plus_combine>(s.grad_for_accumulate(), false); },
            [&](bool assign) {
                output_operand<T> g = assign_output(s.grad_storage);
                g.mode = assign ? write_mode::assign : write_mode::combine;
                return g;
            });
    }

    /// A node computed before the loop (a reduction, later a barrier op) used as a leaf. Its
    /// gradient is gathered by the loop and handed to node.backward_from() afterwards.
    template <class Node>
    auto materialized(const Node& node) {
        tensor<T> v = node.forward_value();
        if (!(want_grad_ && Node::has_grad)) {
            keep_.push_back(std::make_shared<tensor<T>>(v));
            return cpu_grad_leaf_kernel<T>{input(v), {}, false};
        }
        auto s = std::make_shared<grad_state<T>>(std::move(v));
        keep_.push_back(s);
        backward_steps_.push_back([&node, s] { node.backward_from(s->grad()); });
        return grad_leaf(*s);
    }

    void keep(std::shared_ptr<void> p) { keep_.push_back(std::move(p)); }

    /// After the loop: merge private buffers, report the gradients written to a listening
    /// gradient_observer, then run materialized nodes' backward steps.
    void finish() {
        for (auto& r : reductions_) r();
        reductions_.clear();
        grads_.report();
        for (auto& b : backward_steps_) b();
        backward_steps_.clear();
    }

private:
    void fill_strides(std::array<std::ptrdiff_t, max_rank>& dst, const strides_t& src) {
        dst.fill(0);
        std::copy(src.begin(), src.end(), dst.begin());
    }

    shape_t shape_;
    bool want_grad_;
    std::size_t nthreads_ = 1;
    std::vector<std::shared_ptr<void>> keep_;
    std::vector<std::function<void()>> reductions_;
    std::vector<std::function<void()>> backward_steps_;
    leaf_gradients<output_operand<T>> grads_;
};

/// Loop geometry after collapsing: size-1 dimensions dropped, and neighbours merged where
/// every operand steps through them as through one dimension.
struct loop_geometry {
    std::size_t rank = 1;
    std::array<std::size_t, max_rank> shape{};
    std::size_t total = 0;
    bool simd = true;  // every operand is contiguous (stride 1) or broadcast (stride 0) along rows
};

/// collapse() on the operands' stride arrays (rewritten in place to the collapsed loop's).
/// Not a template: one copy per program, not one per expression.
inline loop_geometry collapse_strides(std::array<std::ptrdiff_t, max_rank>* const* ops, std::size_t nops,
                                      const shape_t& shape) {
    loop_geometry g;
    g.total = numel(shape);
    std::vector<std::size_t> dims;  // kept dimension extents
    std::vector<std::vector<std::ptrdiff_t>> st(nops);
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        bool merge = !dims.empty();
        for (std::size_t o = 0; merge && o < nops; ++o)
            merge = st[o].back() == (*ops[o])[d] * static_cast<std::ptrdiff_t>(shape[d]);
        if (merge) {
            dims.back() *= shape[d];
            for (std::size_t o = 0; o < nops; ++o) st[o].back() = (*ops[o])[d];
        } else {
            dims.push_back(shape[d]);
            for (std::size_t o = 0; o < nops; ++o) st[o].push_back((*ops[o])[d]);
        }
    }
    if (dims.empty()) {  // a single element
        dims.push_back(1);
        for (auto& s : st) s.push_back(0);
    }
    g.rank = dims.size();
    std::copy(dims.begin(), dims.end(), g.shape.begin());
    for (std::size_t o = 0; o < nops; ++o) {
        ops[o]->fill(0);
        std::copy(st[o].begin(), st[o].end(), ops[o]->begin());
        const auto inner = st[o].back();
        if (inner != 0 && inner != 1) g.simd = false;
    }
    return g;
}

template <class Root>
loop_geometry collapse(Root& root, const shape_t& shape) {
    std::vector<std::array<std::ptrdiff_t, max_rank>*> ops;
    root.visit([&](auto& op) { ops.push_back(&op.stride); });
    return collapse_strides(ops.data(), ops.size(), shape);
}

/// Runs root.step<V>(j) over linear positions [begin, end) of the collapsed loop.
template <class T, class Root>
void run_range(Root& root, const loop_geometry& g, std::size_t begin, std::size_t end) {
    if (begin >= end) return;
    using B = simd_t<T>;
    constexpr std::size_t W = B::size;
    const std::size_t r = g.rank;
    const std::size_t inner_n = g.shape[r - 1];
    std::array<std::size_t, max_rank> idx{};
    std::size_t rem = begin;
    for (std::size_t d = r; d-- > 0;) {
        idx[d] = rem % g.shape[d];
        rem /= g.shape[d];
    }
    std::size_t pos = begin;
    while (pos < end) {
        root.visit([&](auto& op) {
            op.set_row(idx.data(), r);
            op.begin_row();
        });
        const std::size_t j0 = idx[r - 1];
        const std::size_t n = std::min(inner_n - j0, end - pos);
        auto j = static_cast<std::ptrdiff_t>(j0);
        const auto j1 = static_cast<std::ptrdiff_t>(j0 + n);
        if (g.simd)
            for (; j + static_cast<std::ptrdiff_t>(W) <= j1; j += static_cast<std::ptrdiff_t>(W))
                root.template step<B>(j);
        for (; j < j1; ++j) root.template step<T>(j);
        root.visit([](auto& op) { op.end_row(); });
        pos += n;
        idx[r - 1] = 0;
        for (std::size_t d = r - 1; d-- > 0;) {
            if (++idx[d] < g.shape[d]) break;
            idx[d] = 0;
        }
    }
}

/// Runs a root kernel over the ctx's loop (threads as the ctx decided), then ctx.finish().
template <class T, class Root>
void execute(Root& root, loop_ctx<T>& ctx) {
    const loop_geometry g = collapse(root, ctx.shape());
    const std::size_t nt = ctx.threads();
    if (g.total > 0) {
        if (nt == 1) {
            root.visit([](auto& op) { op.bind_thread(0); });
            run_range<T>(root, g, 0, g.total);
        } else {
            parallel_run(nt, [&](std::size_t tid) {
                Root local = root;
                local.visit([tid](auto& op) { op.bind_thread(tid); });
                const std::size_t chunk = (g.total + nt - 1) / nt;
                run_range<T>(local, g, std::min(g.total, tid * chunk), std::min(g.total, (tid + 1) * chunk));
            });
        }
    }
    ctx.finish();
}

// --- roots: what one loop iteration does with the expression kernel ---------------------

/// out = expr
template <class K, class T>
struct eval_root {
    K k;
    output_operand<T> out;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) { out.store(j, k.template fwd<V>(j).v); }
    template <class F> void visit(F&& f) { k.visit(f); f(out); }
};

/// sink (+)= expr, or max-combined: reductions
template <class K, class T, class C>
struct reduce_root {
    K k;
    output_operand<T, C> sink;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) { sink.store(j, k.template fwd<V>(j).v); }
    template <class F> void visit(F&& f) { k.visit(f); f(sink); }
};

/// sum(expr) and its gradient in the same iteration: upstream gradient g is a constant.
template <class K, class T>
struct sum_backward_root {
    K k;
    output_operand<T> sink;
    T g;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<V>(j);
        sink.store(j, c.v);
        k.bwd(j, c, V(g));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(sink); }
};

/// Backward with an upstream gradient tensor (broadcast to the loop), times a scale.
template <class K, class T>
struct upstream_root {
    K k;
    input_operand<T> up;
    T scale;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<V>(j);
        k.bwd(j, c, V(up.template load<V>(j) * V(scale)));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(up); }
};

/// Backward of max: the upstream gradient goes to the elements equal to the maximum, split
/// evenly between ties (count holds how many there are).
template <class K, class T>
struct max_backward_root {
    K k;
    input_operand<T> up, m, count;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) {
        auto c = k.template fwd<V>(j);
        const V share = up.template load<V>(j) / count.template load<V>(j);
        k.bwd(j, c, vm::select(c.v == m.template load<V>(j), share, V(0)));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(up); f(m); f(count); }
};

/// count += (expr == m)
template <class K, class T>
struct count_equal_root {
    K k;
    input_operand<T> m;
    output_operand<T> sink;
    template <class V> XGRAD_INLINE void step(std::ptrdiff_t j) {
        sink.store(j, vm::select(k.template fwd<V>(j).v == m.template load<V>(j), V(1), V(0)));
    }
    template <class F> void visit(F&& f) { k.visit(f); f(m); f(sink); }
};

}  // namespace xgrad::detail
