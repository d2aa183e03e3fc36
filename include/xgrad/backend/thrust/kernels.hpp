#pragma once
// Device leaf kernels and operands. They follow the kernel protocol of expr/kernels.hpp with
// V = T (one element per call) and j = the element's position in the whole loop: each operand
// turns j into its own offset, so a functor needs no per-row state and runs one element per
// GPU thread, or any range of elements per host lane.
#include <cstring>

#include "../../expr/kernels.hpp"
#include "system.hpp"

namespace xgrad::detail::thrust_backend {

/// An array the loop reads.
template <class T>
struct input_operand {
    const T* base = nullptr;
    strided_index at;
    template <class V = T>  // V is always T here (one element per call)
    XGRAD_HD XGRAD_INLINE V load(std::ptrdiff_t j) const {
        return base[at(j)];
    }
};

/// How the values that meet in one output element combine.
enum class combine { plus, max };

#if defined(__CUDA_ARCH__)
/// atomicAdd, aggregated over the lanes of the warp that target the same address (a scalar
/// bias, a reduction's output), which is what makes broadcast gradients cheap on the GPU: the
/// lanes that are active together are grouped by address, each group sums its values in a
/// tree of shuffles, and the group's first lane adds the sum. Lanes need not be converged and
/// groups need not be contiguous (independent thread scheduling may split a warp anywhere).
template <class T>
__device__ XGRAD_INLINE void atomic_add(T* p, T v) {
#if __CUDA_ARCH__ >= 700
    const unsigned active = __activemask();
    const unsigned peers = __match_any_sync(active, reinterpret_cast<unsigned long long>(p));
    unsigned lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));  // not threadIdx.x: blocks may be 2-D
    const int rank = __popc(peers & ((1u << lane) - 1u));  // place among the group's lanes
    const int members = __popc(peers);
    // every active lane runs the same 5 shuffles (their mask is `active`); a lane adds the
    // partial sum held by the group member `step` places above it when its rank says so
    for (int step = 1; step < 32; step <<= 1) {
        const unsigned src = __fns(peers, lane, step + 1);  // lane of the member `step` above
        const T other = __shfl_sync(active, v, src == 0xffffffffu ? lane : src);
        if (rank % (2 * step) == 0 && rank + step < members) v += other;
    }
    if (rank == 0) atomicAdd(p, v);
#else
    atomicAdd(p, v);
#endif
}

/// There is no floating-point atomicMax: compare-and-swap on the bits.
template <class T>
__device__ XGRAD_INLINE void atomic_max(T* p, T v) {
    using U = std::conditional_t<sizeof(T) == 4, unsigned int, unsigned long long>;
    U* q = reinterpret_cast<U*>(p);
    U old = *q;
    for (;;) {
        T cur;
        std::memcpy(&cur, &old, sizeof(T));
        if (!(v > cur)) return;
        U bits;
        std::memcpy(&bits, &v, sizeof(T));
        const U prev = atomicCAS(q, old, bits);
        if (prev == old) return;
        old = prev;
    }
}
#endif

/// *p (+|max)= v in a partial copy: an atomic on the GPU, where several threads share a copy;
/// a plain update on the host systems, where a lane's positions all fall in its own copy.
template <combine C, class T>
XGRAD_HD XGRAD_INLINE void combine_into(T* p, T v) {
#if defined(__CUDA_ARCH__)
    if constexpr (C == combine::plus)
        atomic_add(p, v);
    else
        atomic_max(p, v);
#else
    if constexpr (C == combine::plus)
        *p += v;
    else if (v > *p)
        *p = v;
#endif
}

/// An array written once per position (a fresh result).
template <class T>
struct assign_operand {
    T* base = nullptr;
    strided_index at;
    XGRAD_HD XGRAD_INLINE void store(std::ptrdiff_t j, T v) const { base[at(j)] = v; }
};

/// An array many positions combine into (a reduction's result, the value of a loss): position
/// j goes to partial copy j / chunk; the copies are merged after the loop.
template <class T, combine C>
struct partial_operand {
    T* base = nullptr;              // the first copy (set when the loop's scratch exists)
    strided_index at;               // offset inside one copy
    std::ptrdiff_t chunk = 1;       // positions per copy
    std::ptrdiff_t copy_size = 0;   // elements per copy
    std::ptrdiff_t scratch = -1;    // where the copies start in the loop's scratch buffer
    XGRAD_HD XGRAD_INLINE void store(std::ptrdiff_t j, T v) const {
        combine_into<C>(base + (j / chunk) * copy_size + at(j), v);
    }
};

/// A leaf's gradient: stored directly where each element belongs to one position (assigned by
/// the first writer after zero_grad, added by later ones), else summed in partial copies
/// (a broadcast leaf).
template <class T>
struct grad_operand {
    enum class kind : int { assign, add, partial };
    T* base = nullptr;
    strided_index at;
    kind mode = kind::assign;
    std::ptrdiff_t chunk = 1, copy_size = 0, scratch = -1;  // partial: as in partial_operand

    XGRAD_HD XGRAD_INLINE void store(std::ptrdiff_t j, T v) const {
        if (mode == kind::partial)
            combine_into<combine::plus>(base + (j / chunk) * copy_size + at(j), v);
        else if (mode == kind::assign)
            base[at(j)] = v;
        else
            base[at(j)] += v;
    }
};

/// The leaf kernels of a device loop (expr/kernels.hpp).
template <class T>
using device_input_kernel = input_kernel<input_operand<T>>;
template <class T>
using device_grad_leaf_kernel = grad_leaf_kernel<input_operand<T>, grad_operand<T>>;

}  // namespace xgrad::detail::thrust_backend
