#pragma once
// Row-major GEMM for the dense ops: C = alpha * op(A) * op(B) + beta * C, op = identity or
// transpose, followed by an optional epilogue on each finished block of C (bias, activation).
//
// Two implementations behind one call:
//   - CBLAS (OpenBLAS) when the build defines XGRAD_HAVE_CBLAS;
//   - a built-in xsimd GEMM (packed panels, register-blocked micro-kernel, Goto/BLIS loop
//     order) that serves when there is no BLAS, and can be selected at run time for testing.
//
// Threading policy: xgrad::num_threads() is the single knob. A GEMM called from ordinary code
// runs on that many threads of xgrad's pool, each computing a slab of C (with the built-in GEMM,
// or one single-threaded OpenBLAS call: OpenBLAS's own threads are never used). Code
// that parallelises over a batch with xgrad's pool opens a `single_threaded_gemm` scope first,
// so each worker's GEMM runs on its own thread: two thread runtimes never spin on the same cores.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include <xsimd/xsimd.hpp>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "../../core/config.hpp"
#include "../../core/error.hpp"
#include "../../detail/vmath.hpp"
#include "thread_pool.hpp"

#if defined(XGRAD_HAVE_CBLAS)
#include <cblas.h>
#endif

namespace xgrad {

/// Which GEMM the dense ops call: the CBLAS, the built-in one, or per product (`automatic`:
/// the CBLAS for a product with a side shorter than gemm_small_side, the built-in GEMM for the
/// rest; the built-in GEMM everywhere in a build without a CBLAS).
enum class gemm_backend { blas, builtin, automatic };

/// Under gemm_backend::automatic, a product with M, N or K below this runs on the CBLAS. The
/// built-in kernel computes whole 8 x 32 tiles and packs its operands for every product; on a
/// side this short most of that is padding or set-up, which OpenBLAS's small-matrix paths avoid
/// (a 32 x 9 weight gradient over 676 positions: 17.3 us built-in, 7.7 us OpenBLAS). On every
/// other shape of the benchmarked models the built-in GEMM is as fast or faster (docs/dense_ops.md).
inline constexpr std::size_t gemm_small_side = 16;

/// True when xgrad was built against a CBLAS (XGRAD_HAVE_CBLAS).
inline constexpr bool have_blas() {
#if defined(XGRAD_HAVE_CBLAS)
    return true;
#else
    return false;
#endif
}

namespace detail {
/// True when OpenBLAS runs kernels older than the CPU it is on: its dynamic dispatch picks
/// kernels from the CPU model number, and on virtual machines that report a generic model it
/// falls back to its SSE3 ("Prescott") kernels, 3-5x slower than the AVX2/AVX-512 ones (unless
/// OPENBLAS_CORETYPE names the core). Then the built-in GEMM, when this build compiled it for
/// AVX2 or wider, is the faster one.
inline bool blas_kernels_lag_the_cpu() {
#if defined(XGRAD_HAVE_CBLAS) && defined(OPENBLAS_VERSION)
    const char* core = openblas_get_corename();
    if (!core) return false;
    const std::string name(core);
    static constexpr const char* pre_avx[] = {"Prescott", "Core2",     "Penryn", "Dunnington", "Nehalem",
                                              "Atom",     "Northwood", "Katmai", "Coppermine", "Banias"};
    bool old = false;
    for (const char* p : pre_avx) old = old || name == p;
#if XSIMD_WITH_AVX2 && XSIMD_WITH_FMA3_AVX2
    return old;  // this build's kernels are AVX2 or wider
#else
    (void)old;
    return false;
#endif
#else
    return false;
#endif
}

/// The GEMM used unless set_gemm_backend says otherwise: $XGRAD_GEMM ("blas", "builtin" or
/// "auto") when set, else `automatic` when the build has a CBLAS whose kernels fit the CPU, else
/// the built-in one.
inline gemm_backend default_gemm_backend() {
    if (const char* env = std::getenv("XGRAD_GEMM")) {
        const std::string v(env);
        if (v == "builtin") return gemm_backend::builtin;
        if (v == "blas" && have_blas()) return gemm_backend::blas;
        if (v == "auto" && have_blas()) return gemm_backend::automatic;
    }
    if (!have_blas()) return gemm_backend::builtin;
    return blas_kernels_lag_the_cpu() ? gemm_backend::builtin : gemm_backend::automatic;
}

inline std::atomic<gemm_backend>& gemm_backend_setting() {
    static std::atomic<gemm_backend> b{default_gemm_backend()};
    return b;
}
}  // namespace detail

/// The GEMM in use (default: detail::default_gemm_backend()).
inline gemm_backend get_gemm_backend() { return detail::gemm_backend_setting().load(); }

/// Selects the GEMM; throws value_error when asking for blas or automatic in a build without one.
inline void set_gemm_backend(gemm_backend b) {
    if (b != gemm_backend::builtin && !have_blas())
        throw value_error("set_gemm_backend: this build has no CBLAS (define XGRAD_HAVE_CBLAS and link OpenBLAS)");
    detail::gemm_backend_setting() = b;
}

namespace detail {

// --- threads -------------------------------------------------------------------------

/// > 0 while some caller runs GEMMs inside its own parallel region.
inline std::atomic<int>& single_thread_depth() {
    static std::atomic<int> d{0};
    return d;
}

/// Threads one GEMM call may use.
inline std::size_t gemm_threads() { return single_thread_depth().load() > 0 ? 1 : num_threads(); }

/// While alive, every GEMM runs on its calling thread (for batch-parallel loops on the pool).
struct single_threaded_gemm {
    single_threaded_gemm() { ++single_thread_depth(); }
    ~single_threaded_gemm() { --single_thread_depth(); }
    single_threaded_gemm(const single_threaded_gemm&) = delete;
    single_threaded_gemm& operator=(const single_threaded_gemm&) = delete;
};

#if defined(XGRAD_HAVE_CBLAS)
/// Makes OpenBLAS single-threaded (asking first: setting it is not free, and a program may
/// also set it directly). xgrad splits a GEMM over its own pool instead (gemm_slabs).
inline void pin_blas_to_one_thread() {
#if defined(OPENBLAS_VERSION)
    if (openblas_get_num_threads() != 1) {
        static std::mutex m;  // two pool tasks may get here at once
        std::lock_guard lk(m);
        if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    }
#endif  // another CBLAS: its own threading settings apply
}
#endif

/// An epilogue that does nothing.
struct no_epilogue {
    void operator()(std::size_t, std::size_t, std::size_t, std::size_t) const {}
};

/// A non-owning handle to an epilogue, so the GEMM kernels are compiled once per element type
/// rather than once per epilogue (the call happens once per MC x NC block: its cost is nil).
struct epilogue_ref {
    const void* obj = nullptr;
    void (*fn)(const void*, std::size_t, std::size_t, std::size_t, std::size_t) = nullptr;

    template <class Epi>
    explicit epilogue_ref(const Epi& e)
        : obj(&e), fn([](const void* o, std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) {
              (*static_cast<const Epi*>(o))(i0, i1, j0, j1);
          }) {}
    void operator()(std::size_t i0, std::size_t i1, std::size_t j0, std::size_t j1) const { fn(obj, i0, i1, j0, j1); }
};

// --- the built-in GEMM ----------------------------------------------------------------

/// Register and cache blocking. The micro-tile is MR rows x NR columns of C held in
/// MR * NR / W SIMD registers; a KC x NR panel of B stays in L1 across the MC rows of an
/// A block held in L2.
template <class T>
struct gemm_blocking {
    static constexpr std::size_t W = simd_t<T>::size;
    static constexpr std::size_t MR = 8;
    static constexpr std::size_t NV = 2;  // SIMD vectors per micro-tile row
    static constexpr std::size_t NR = NV * W;
    static constexpr std::size_t KC = 256;
    static constexpr std::size_t MC = 96;
    static constexpr std::size_t NC = 2048;
    static_assert(MC % MR == 0 && NC % NR == 0, "gemm_blocking: MC and NC must be multiples of the micro-tile");
};

template <class T>
using aligned_vector = std::vector<T, xsimd::aligned_allocator<T, alignment>>;

/// A(i, k) of op(A) for a row-major A with leading dimension lda.
template <class T>
XGRAD_INLINE T elem(const T* a, std::size_t ld, bool trans, std::size_t i, std::size_t k) {
    return trans ? a[k * ld + i] : a[i * ld + k];
}

/// dst[j * ldd + i] = src[i * lds + j] for an 8 x 8 block (AVX: in registers; else scalar).
template <class T>
XGRAD_INLINE void transpose8x8(const T* src, std::size_t lds, T* dst, std::size_t ldd) {
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float>) {
        __m256 r[8], t[8], u[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
        for (int i = 0; i < 8; i += 2) {
            t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
        }
        for (int i = 0; i < 8; i += 4) {
            u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
            u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
            u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
        }
        for (int i = 0; i < 4; ++i) {
            _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
            _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
        }
        return;
    }
#endif
    for (std::size_t i = 0; i < 8; ++i)
        for (std::size_t j = 0; j < 8; ++j) dst[j * ldd + i] = src[i * lds + j];
}

/// Packs rows [i0, i0 + mc) x columns [k0, k0 + kc) of op(A) into MR-row panels: panel p
/// holds, for each k, its MR values side by side. Rows past the end are zero.
template <class T>
void pack_a(const T* a, std::size_t lda, bool ta, std::size_t i0, std::size_t mc, std::size_t k0, std::size_t kc,
            T* dst) {
    constexpr std::size_t MR = gemm_blocking<T>::MR;
    for (std::size_t p = 0; p < mc; p += MR, dst += MR * kc) {
        const std::size_t mr = std::min(MR, mc - p);
        if (ta) {  // op(A)(i, k) = a[k * lda + i]: rows of a panel are contiguous
            for (std::size_t k = 0; k < kc; ++k) {
                const T* src = a + (k0 + k) * lda + i0 + p;
                T* d = dst + k * MR;
                for (std::size_t r = 0; r < mr; ++r) d[r] = src[r];
                for (std::size_t r = mr; r < MR; ++r) d[r] = T(0);
            }
        } else {
            std::size_t k8 = 0;
            if constexpr (MR % 8 == 0)
                if (mr == MR)  // 8 x 8 blocks transposed in registers
                    for (; k8 + 8 <= kc; k8 += 8)
                        for (std::size_t r = 0; r < MR; r += 8)
                            transpose8x8(a + (i0 + p + r) * lda + k0 + k8, lda, dst + k8 * MR + r, MR);
            for (std::size_t r = 0; r < mr; ++r) {
                const T* src = a + (i0 + p + r) * lda + k0;
                for (std::size_t k = k8; k < kc; ++k) dst[k * MR + r] = src[k];
            }
            for (std::size_t r = mr; r < MR; ++r)
                for (std::size_t k = 0; k < kc; ++k) dst[k * MR + r] = T(0);
        }
    }
}

/// Packs rows [k0, k0 + kc) x columns [j0, j0 + nc) of op(B) into NR-column panels: panel q
/// holds, for each k, its NR values contiguously. Columns past the end are zero.
template <class T>
void pack_b(const T* b, std::size_t ldb, bool tb, std::size_t k0, std::size_t kc, std::size_t j0, std::size_t nc,
            T* dst) {
    constexpr std::size_t NR = gemm_blocking<T>::NR;
    for (std::size_t q = 0; q < nc; q += NR, dst += NR * kc) {
        const std::size_t nr = std::min(NR, nc - q);
        if (tb) {  // op(B)(k, j) = b[j * ldb + k]
            const T* src = b + (j0 + q) * ldb + k0;
            std::size_t k = 0;
            if constexpr (NR % 8 == 0)
                if (nr == NR)  // 8 x 8 blocks transposed in registers
                    for (; k + 8 <= kc; k += 8)
                        for (std::size_t c = 0; c < NR; c += 8) transpose8x8(src + c * ldb + k, ldb, dst + k * NR + c, NR);
            for (std::size_t c = 0; c < nr; ++c)
                for (std::size_t kk = k; kk < kc; ++kk) dst[kk * NR + c] = src[c * ldb + kk];
            for (std::size_t c = nr; c < NR; ++c)
                for (std::size_t kk = 0; kk < kc; ++kk) dst[kk * NR + c] = T(0);
        } else if (nr == NR) {  // whole panels: NR values per k, copied as SIMD vectors
            using V = simd_t<T>;
            constexpr std::size_t W = V::size;
            for (std::size_t k = 0; k < kc; ++k) {
                const T* src = b + (k0 + k) * ldb + j0 + q;
                T* d = dst + k * NR;
                for (std::size_t v = 0; v < NR; v += W) V::load_unaligned(src + v).store_unaligned(d + v);
            }
        } else {
            for (std::size_t k = 0; k < kc; ++k) {
                const T* src = b + (k0 + k) * ldb + j0 + q;
                T* d = dst + k * NR;
                std::copy(src, src + nr, d);
                std::fill(d + nr, d + NR, T(0));
            }
        }
    }
}

/// The register-blocked core of the micro-kernels: acc[r][v] = sum over k < kc of
/// a_at(r, k) * (vector v of step k of the panel b, NV vectors per step). a_at reads A's
/// element of tile row r at step k, so a packed (k-major) A and an A read in place share it.
/// Step k of the panel starts at b + k * bs: bs is the width of a packed B step (NV vectors,
/// or more: a narrow tile reads the first NV vectors of a wider panel), or B's leading
/// dimension when B is read in place.
template <class T, std::size_t MR, std::size_t NV, class AAt>
XGRAD_INLINE void tile_product(std::size_t kc, const AAt& a_at, const T* b, simd_t<T> (&acc)[MR][NV],
                               std::size_t bs = NV * simd_t<T>::size) {
    using B = simd_t<T>;
    constexpr std::size_t W = B::size;
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (std::size_t v = 0; v < NV; ++v) acc[r][v] = B(T(0));
    for (std::size_t k = 0; k < kc; ++k, b += bs) {
        B bv[NV];
#pragma GCC unroll 4
        for (std::size_t v = 0; v < NV; ++v) bv[v] = B::load_aligned(b + v * W);
#pragma GCC unroll 16
        for (std::size_t r = 0; r < MR; ++r) {
            const B av(a_at(r, k));
#pragma GCC unroll 4
            for (std::size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
        }
    }
}

/// The MR x NR micro-kernel over a packed A panel and a B panel whose steps lie bs apart:
/// c = alpha * a_panel * b_panel + beta * c (beta == 0 never reads c, so c may hold garbage
/// or NaN).
template <class T>
XGRAD_INLINE void micro_kernel(std::size_t kc, const T* a, const T* b, std::size_t bs, T* c,
                               std::size_t ldc, T alpha, T beta) {
    using B = simd_t<T>;
    using blk = gemm_blocking<T>;
    constexpr std::size_t MR = blk::MR, NV = blk::NV, W = blk::W;
    B acc[MR][NV];
    tile_product<T>(kc, [a](std::size_t r, std::size_t k) { return a[k * MR + r]; },
                    b, acc, bs);
    const B va(alpha), vb(beta);
#pragma GCC unroll 16
    for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (std::size_t v = 0; v < NV; ++v) {
            T* p = c + r * ldc + v * W;
            const B out = beta == T(0) ? B(acc[r][v] * va) : xsimd::fma(vb, B::load_unaligned(p), acc[r][v] * va);
            out.store_unaligned(p);
        }
}

/// A partial tile at the edge of C: the micro-kernel into a scratch tile, then the valid part.
/// A tile at most one SIMD vector wide (784 = 24 * 32 + 16 columns; 10 classes) multiplies
/// only the first vector of each packed step: half the work of the full-width kernel.
template <class T>
void edge_kernel(std::size_t kc, const T* a, const T* b, std::size_t bs, T* c, std::size_t ldc, std::size_t mr,
                 std::size_t nr, T alpha, T beta) {
    using blk = gemm_blocking<T>;
    constexpr std::size_t MR = blk::MR, NR = blk::NR, W = blk::W;
    alignas(alignment) T tile[MR * NR];
    if (nr <= W) {
        using V = simd_t<T>;
        V acc[MR][1];
        const auto a_at = [a](std::size_t r, std::size_t k) { return a[k * MR + r]; };
        tile_product<T, MR, 1>(kc, a_at, b, acc, bs);
#pragma GCC unroll 16
        for (std::size_t r = 0; r < MR; ++r) acc[r][0].store_aligned(tile + r * NR);
    } else {
        micro_kernel<T>(kc, a, b, bs, tile, NR, T(1), T(0));
    }
    for (std::size_t r = 0; r < mr; ++r)
        for (std::size_t j = 0; j < nr; ++j) {
            T& dst = c[r * ldc + j];
            dst = beta == T(0) ? alpha * tile[r * blk::NR + j] : alpha * tile[r * blk::NR + j] + beta * dst;
        }
}

/// C[m0:m1, n0:n1] = alpha * op(A) op(B) + beta * C on the calling thread; epi(i0, i1, j0, j1)
/// runs on each MC x NC block of C as soon as it is final (still in cache).
template <class T>
void builtin_gemm_block(bool ta, bool tb, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1,
                        std::size_t K, T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
                        std::size_t ldc, epilogue_ref epi) {
    using blk = gemm_blocking<T>;
    constexpr std::size_t MR = blk::MR, NR = blk::NR, KC = blk::KC, MC = blk::MC, NC = blk::NC;
    if (m0 >= m1 || n0 >= n1) return;
    if (K == 0) {  // op(A) op(B) is all zeros
        for (std::size_t i = m0; i < m1; ++i)
            for (std::size_t j = n0; j < n1; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
        epi(m0, m1, n0, n1);
        return;
    }
    // An op(B) = B whose rows start on cache lines is read where it lies: step k of a whole
    // NR-column panel is NR contiguous values of row k, so packing would only copy it. Only a
    // narrower last panel is packed (its zero padding keeps the kernel inside B's rows). For
    // linear's weight gradient dW = G^T x this skips copying x (256 x 784 floats: 22 us per
    // thread on an AMD EPYC, where every thread of a split by rows packed all of it).
    const bool b_in_place = !tb && reinterpret_cast<std::uintptr_t>(b + n0) % alignment == 0 &&
                            ldb * sizeof(T) % alignment == 0;
    thread_local aligned_vector<T> abuf, bbuf;
    // grown, never shrunk: resizing up again would zero the new part on every call
    if (abuf.size() < MC * KC) abuf.resize(MC * KC);
    const std::size_t b_need = b_in_place ? NR * KC : std::min(NC, (n1 - n0 + NR - 1) / NR * NR) * KC;
    if (bbuf.size() < b_need) bbuf.resize(b_need);
    for (std::size_t jc = n0; jc < n1; jc += NC) {
        const std::size_t nc = std::min(NC, n1 - jc);
        const std::size_t nc_whole = nc / NR * NR;
        for (std::size_t pc = 0; pc < K; pc += KC) {
            const std::size_t kc = std::min(KC, K - pc);
            const T beta_k = pc == 0 ? beta : T(1);  // later K blocks accumulate
            const bool last_k = pc + kc == K;
            if (!b_in_place)
                pack_b(b, ldb, tb, pc, kc, jc, nc, bbuf.data());
            else if (nc_whole < nc)
                pack_b(b, ldb, tb, pc, kc, jc + nc_whole, nc - nc_whole, bbuf.data());
            for (std::size_t ic = m0; ic < m1; ic += MC) {
                const std::size_t mc = std::min(MC, m1 - ic);
                pack_a(a, lda, ta, ic, mc, pc, kc, abuf.data());
                for (std::size_t jr = 0; jr < nc; jr += NR) {
                    const std::size_t nr = std::min(NR, nc - jr);
                    const bool direct = b_in_place && nr == NR;
                    const T* bp = direct ? b + pc * ldb + jc + jr : bbuf.data() + (b_in_place ? 0 : jr * kc);
                    const std::size_t bs = direct ? ldb : NR;
                    for (std::size_t ir = 0; ir < mc; ir += MR) {
                        const std::size_t mr = std::min(MR, mc - ir);
                        T* cp = c + (ic + ir) * ldc + jc + jr;
                        const T* ap = abuf.data() + ir * kc;
                        if (mr == MR && nr == NR)
                            micro_kernel<T>(kc, ap, bp, bs, cp, ldc, alpha, beta_k);
                        else
                            edge_kernel<T>(kc, ap, bp, bs, cp, ldc, mr, nr, alpha, beta_k);
                    }
                }
                if (last_k) epi(ic, ic + mc, jc, jc + nc);
            }
        }
    }
}

/// Splits C (M x N, K deep) into one slab per thread and runs slab(m0, m1, n0, n1) for each on
/// xgrad's pool; slab edges fall on multiples of unit_m rows or unit_n columns, as near the
/// even split as they can (784 columns in units of 32 split 384 + 400, not 416 + 368).
/// Products under 0.5 MFLOP stay on the calling thread. A region costs about 1 us (the
/// workers spin between the regions of a step), and the narrow products of a small layer run
/// far below peak (256 x 10 x 128 takes ~20 us on one thread), so halving them pays.
///
/// Which side is split: each thread packs all of the operand the split does not cut, so the
/// longer side of C is split and the smaller operand is the one packed twice. On a tie, a
/// transposed B (`b_is_weight`, set by gemm for every op(B) = B^T, above all linear's {N, K}
/// weight in y = x W^T) is cut by rows: each core then reads only its own rows of it. Split
/// the other way, both cores read (and cache) all of it, and the optimizer's update, which
/// splits the weight by rows as well, has to take every line it writes back from the other
/// core's cache first (measured: the SGD update of a 256 x 784 weight at 2 threads,
/// 125 -> 35 us). For the same reason a product whose C is a weight's gradient (`c_is_weight`:
/// linear's dW = G^T x) is cut by rows whenever each thread gets at least one unit of them, even
/// when C is wider than tall: each core then writes the rows of the gradient that its share of
/// the update reads next. For the MLP's dW1 (256 x 784) this also splits 128 + 128 rows instead
/// of 384 + 400 columns; measured on an AMD EPYC at 2 threads, the whole MLP step at batch 256
/// 1.36 -> 1.34 ms when the host is quiet and 1.73 -> 1.66 ms when it is not (the extra packing
/// of x by both threads costs less than the gradient lines that crossed cores).
template <class F>
void gemm_slabs(std::size_t M, std::size_t N, std::size_t K, std::size_t nt, std::size_t unit_m, std::size_t unit_n,
                const F& slab, bool b_is_weight = false, bool c_is_weight = false) {
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    if (flops < 5e5) nt = 1;
    const bool split_m = (c_is_weight && M >= nt * unit_m) || (b_is_weight ? M > N : M >= N);
    const std::size_t unit = split_m ? unit_m : unit_n, extent = split_m ? M : N;
    const std::size_t units = (extent + unit - 1) / unit;
    nt = std::max<std::size_t>(1, std::min(nt, units));
    if (nt == 1) {
        slab(std::size_t{0}, M, std::size_t{0}, N);
        return;
    }
    // slab t starts at the unit nearest to t/nt of the extent
    auto edge = [&](std::size_t t) {
        if (t >= nt) return extent;
        const std::size_t u = (2 * t * extent / nt + unit) / (2 * unit);
        return std::min(extent, u * unit);
    };
    parallel_run(nt, [&](std::size_t t) {
        const std::size_t lo = edge(t), hi = edge(t + 1);
        if (lo >= hi) return;
        if (split_m)
            slab(lo, hi, std::size_t{0}, N);
        else
            slab(std::size_t{0}, M, lo, hi);
    });
}

/// The built-in GEMM over `nt` threads: one slab of C per thread (each packs its own panels;
/// the duplicated packing is O(1/M) of the work).
template <class T>
void builtin_gemm(bool ta, bool tb, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* a, std::size_t lda,
                  const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc, epilogue_ref epi, std::size_t nt,
                  bool c_is_weight = false) {
    gemm_slabs(M, N, K, nt, gemm_blocking<T>::MR, gemm_blocking<T>::NR,
               [&](std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
                   builtin_gemm_block(ta, tb, m0, m1, n0, n1, K, alpha, a, lda, b, ldb, beta, c, ldc, epi);
               },
               tb, c_is_weight);
}
XGRAD_INSTANCE(void builtin_gemm<float>(bool, bool, std::size_t, std::size_t, std::size_t, float, const float*,
                                         std::size_t, const float*, std::size_t, float, float*, std::size_t,
                                         epilogue_ref, std::size_t, bool))

#if defined(XGRAD_HAVE_CBLAS)
/// C[m0:m1, n0:n1] through one CBLAS call on the slab's parts of A, B and C.
template <class T>
void blas_gemm_slab(bool ta, bool tb, std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1, std::size_t K,
                    T alpha, const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    // row i of op(A): row i of A, or column i of A when transposed; likewise columns of op(B)
    const T* as = ta ? a + m0 : a + m0 * lda;
    const T* bs = tb ? b + n0 * ldb : b + n0;
    T* cs = c + m0 * ldc + n0;
    const auto cta = ta ? CblasTrans : CblasNoTrans, ctb = tb ? CblasTrans : CblasNoTrans;
    const auto m = static_cast<int>(m1 - m0), n = static_cast<int>(n1 - n0), k = static_cast<int>(K);
    const auto la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, cta, ctb, m, n, k, alpha, as, la, bs, lb, beta, cs, lc);
    else
        cblas_dgemm(CblasRowMajor, cta, ctb, m, n, k, alpha, as, la, bs, lb, beta, cs, lc);
}
#endif

/// C = alpha * op(A) op(B) + beta * C with row-major operands, then epi(i0, i1, j0, j1) over
/// blocks covering C (each element exactly once). op(A) is M x K, op(B) is K x N. With
/// beta == 0, C is not read (it may be uninitialised). `c_is_weight`: C is a weight's gradient,
/// split by rows across threads (gemm_slabs).
template <class T, class Epi = no_epilogue>
void gemm(bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha, const T* a,
          std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc, const Epi& epi = {},
          bool c_is_weight = false) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "xgrad::gemm: T must be float or double");
    if (M == 0 || N == 0) return;
    const std::size_t nt = gemm_threads();
#if defined(XGRAD_HAVE_CBLAS)
    const gemm_backend be = get_gemm_backend();
    const bool small = M < gemm_small_side || N < gemm_small_side || K < gemm_small_side;
    if (K > 0 && (be == gemm_backend::blas || (be == gemm_backend::automatic && small))) {
        // OpenBLAS runs single-threaded, one call per slab of C on xgrad's pool: one thread
        // runtime owns the cores, and OpenBLAS's own threads (which spin between calls) never
        // compete with the pool's workers. Each slab's epilogue follows its GEMM, still in cache.
        pin_blas_to_one_thread();
        const epilogue_ref e(epi);
        gemm_slabs(M, N, K, nt, 16, 16, [&](std::size_t m0, std::size_t m1, std::size_t n0, std::size_t n1) {
            blas_gemm_slab<T>(trans_a, trans_b, m0, m1, n0, n1, K, alpha, a, lda, b, ldb, beta, c, ldc);
            if constexpr (!std::is_same_v<Epi, no_epilogue>) e(m0, m1, n0, n1);
        }, trans_b, c_is_weight);
        return;
    }
#endif
    builtin_gemm<T>(trans_a, trans_b, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc, epilogue_ref(epi), nt, c_is_weight);
}

}  // namespace detail
}  // namespace xgrad
