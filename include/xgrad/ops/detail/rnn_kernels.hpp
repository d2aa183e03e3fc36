#pragma once
// The machinery of the recurrent layers' per-step work (ops/rnn.hpp):
//   - rnn_panels: a recurrent weight packed once per call into the GEMM's NR-column panels, so
//     the 50-odd small per-step products {B, H} x {H, G} never repack it (a BLAS call repacks
//     its operands every time: for B = 64 that packing costs about as much as the product);
//   - rnn_step_gemm: C (+)= A x panels over a range of hidden units, A read in place (row-major,
//     no packing), with an MR x NR register-blocked micro-kernel;
//   - rnn_team: the threads of xgrad's pool stepping through one recurrence together, each
//     owning a slice of the hidden units, with one barrier per time step.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>

#include "../../backend/cpu/gemm.hpp"
#include "../../backend/cpu/thread_pool.hpp"

namespace xgrad::detail {

template <class T>
struct rnn_blocking {
    static constexpr std::size_t W = simd_t<T>::size;
    static constexpr std::size_t MR = 8;   // rows of C per micro-tile
    static constexpr std::size_t NV = 2;   // SIMD vectors per micro-tile row
    static constexpr std::size_t NR = NV * W;
    static constexpr std::size_t KC = 256;  // depth per pass: one panel block (KC x NR) stays in L1
};

/// op(W) {K, N} (or `blocks` of them side by side, N columns each) packed into NR-column panels:
/// panel q of block g holds, for k = 0 .. K-1, op(W)(k, g N + q NR + 0 .. NR-1) contiguously;
/// columns past N are zero.
template <class T>
struct rnn_panels {
    static constexpr std::size_t NR = rnn_blocking<T>::NR;
    std::size_t K = 0, N = 0, blocks = 0, npan = 0;
    aligned_vector<T> data;

    const T* panel(std::size_t g, std::size_t q) const { return data.data() + (g * npan + q) * K * NR; }

    /// Packs op(w) for a row-major w: trans ? w^T (w is {blocks N, K}) : w (w is {K, blocks N}).
    void pack(const T* w, bool trans, std::size_t K_, std::size_t N_, std::size_t blocks_) {
        K = K_, N = N_, blocks = blocks_, npan = (N + NR - 1) / NR;
        data.assign(blocks * npan * K * NR, T(0));
        for (std::size_t g = 0; g < blocks; ++g)
            for (std::size_t n = 0; n < N; ++n) {
                T* dst = data.data() + (g * npan + n / NR) * K * NR + n % NR;
                if (trans) {  // op(w)(k, n) = w[(g N + n) K + k]: a row of w per column
                    const T* src = w + (g * N + n) * K;
                    for (std::size_t k = 0; k < K; ++k) dst[k * NR] = src[k];
                } else {      // op(w)(k, n) = w[k (blocks N) + g N + n]
                    const std::size_t ld = blocks * N;
                    for (std::size_t k = 0; k < K; ++k) dst[k * NR] = w[k * ld + g * N + n];
                }
            }
    }
};

/// One MR x NR tile: c = a b (acc: c += a b) over kc steps; a is row-major with leading
/// dimension lda (MR rows are read), b one panel (NR values per step, aligned).
template <class T>
XGRAD_INLINE void rnn_tile(std::size_t kc, const T* a, std::size_t lda, const T* b, T* c, std::size_t ldc, bool acc) {
    using V = simd_t<T>;
    using blk = rnn_blocking<T>;
    constexpr std::size_t MR = blk::MR, NV = blk::NV, W = blk::W;
    V s[MR][NV];
    tile_product<T>(kc, [a, lda](std::size_t r, std::size_t k) { return a[r * lda + k]; },
                    b, s);
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (std::size_t v = 0; v < NV; ++v) {
            T* p = c + r * ldc + v * W;
            (acc ? V(s[r][v] + V::load_unaligned(p)) : s[r][v]).store_unaligned(p);
        }
}

/// A tile at the edge of C (mr <= MR rows, nr <= NR columns): through zero-padded scratch.
template <class T>
void rnn_edge_tile(std::size_t kc, const T* a, std::size_t lda, std::size_t mr, std::size_t nr, const T* b, T* c,
                   std::size_t ldc, bool acc) {
    using blk = rnn_blocking<T>;
    constexpr std::size_t MR = blk::MR, NR = blk::NR, KC = blk::KC;
    alignas(alignment) T as[MR * KC];
    alignas(alignment) T tile[MR * NR];
    std::fill_n(as, MR * kc, T(0));
    for (std::size_t r = 0; r < mr; ++r) std::copy_n(a + r * lda, kc, as + r * kc);
    rnn_tile<T>(kc, as, kc, b, tile, NR, false);
    for (std::size_t r = 0; r < mr; ++r)
        for (std::size_t j = 0; j < nr; ++j) c[r * ldc + j] = acc ? c[r * ldc + j] + tile[r * NR + j] : tile[r * NR + j];
}

/// c[0:M, u0:u1] = a[0:M, 0:K] op(W)_g[:, u0:u1] (acc: +=), op(W)_g block g of the panels;
/// a row-major (lda), c row-major (ldc) pointing at the block's column 0; u0 a multiple of NR.
template <class T>
void rnn_step_gemm(std::size_t M, const T* a, std::size_t lda, const rnn_panels<T>& w, std::size_t g, std::size_t u0,
                   std::size_t u1, T* c, std::size_t ldc, bool acc) {
    using blk = rnn_blocking<T>;
    constexpr std::size_t MR = blk::MR, NR = blk::NR, KC = blk::KC;
    const std::size_t K = w.K;
    for (std::size_t pc = 0; pc < K; pc += KC) {
        const std::size_t kc = std::min(KC, K - pc);
        const bool acc_k = acc || pc > 0;
        for (std::size_t u = u0; u < u1; u += NR) {
            const std::size_t nr = std::min(NR, u1 - u);
            const T* bp = w.panel(g, u / NR) + pc * NR;
            for (std::size_t i = 0; i < M; i += MR) {
                const std::size_t mr = std::min(MR, M - i);
                const T* ap = a + i * lda + pc;
                T* cp = c + i * ldc + u;
                if (mr == MR && nr == NR)
                    rnn_tile<T>(kc, ap, lda, bp, cp, ldc, acc_k);
                else
                    rnn_edge_tile<T>(kc, ap, lda, mr, nr, bp, cp, ldc, acc_k);
            }
        }
    }
}

/// Threads of xgrad's pool working through a recurrence together, one barrier per step. The
/// pool runs a job's tasks one after another on the calling thread when it is busy or called
/// from inside a task: then the first task does all the work alone and the others nothing.
class rnn_team {
public:
    /// Runs body(rank, size) on up to `want` threads; returns when all are done.
    template <class F>
    void run(std::size_t want, F&& body) {
        if (want <= 1) {
            size_ = 1;
            body(std::size_t{0}, std::size_t{1});
            return;
        }
        parallel_run(want, [&](std::size_t rank) {
            const std::size_t n = thread_pool::tasks_run_concurrently() ? want : 1;
            if (rank >= n) return;
            size_.store(n, std::memory_order_relaxed);  // the same value from every member
            body(rank, n);
        });
    }

    /// Waits until every member has called it (once per step).
    void barrier() {
        const std::size_t n = size_.load(std::memory_order_relaxed);
        if (n <= 1) return;
        const std::size_t g = gen_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
            arrived_.store(0, std::memory_order_relaxed);
            gen_.store(g + 1, std::memory_order_release);
            return;
        }
        for (int spin = 0; gen_.load(std::memory_order_acquire) == g; ++spin) relax(spin);
    }

private:
    // spin while the partner is likely running; yield the core when it is not (shared machines)
    static void relax(int spin) {
        if (spin < 2048) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            std::this_thread::yield();
        }
    }
    std::atomic<std::size_t> size_{1}, arrived_{0}, gen_{0};
};

/// Hidden units [u0, u1) of member `rank` of `size`: whole NR panels, as evenly as they go.
template <class T>
std::pair<std::size_t, std::size_t> rnn_unit_range(std::size_t H, std::size_t rank, std::size_t size) {
    constexpr std::size_t NR = rnn_blocking<T>::NR;
    const std::size_t np = (H + NR - 1) / NR;
    return {std::min(H, rank * np / size * NR), std::min(H, (rank + 1) * np / size * NR)};
}

/// Threads worth using for a recurrence whose step costs `flops` and has H hidden units.
template <class T>
std::size_t rnn_team_size(std::size_t H, double flops) {
    const std::size_t np = (H + rnn_blocking<T>::NR - 1) / rnn_blocking<T>::NR;
    if (flops < 2e6) return 1;  // a step under ~15 us: a barrier per step costs more than it saves
    return std::max<std::size_t>(1, std::min(num_threads(), np));
}

}  // namespace xgrad::detail
