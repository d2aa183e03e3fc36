#pragma once
// Compiler shims, kept in one place so no macro leaks into op code.
#include <cstddef>

// XGRAD_HD marks every function that CPU loops and device kernels share (expression kernels,
// op rules, per-line formulas of the barrier ops, scalar math) and every device functor. The
// CPU loops instantiate the shared templates with SIMD batches, and nvcc compiles every
// instantiation of a __host__ __device__ template for the device as well, where it rejects
// those vector types; so under nvcc XGRAD_HD is constexpr, which nvcc compiles for the device
// only where device code calls it (--expt-relaxed-constexpr, added by xgrad::cuda). A constexpr
// function may still call device-only code under __CUDA_ARCH__ (thrust/kernels.hpp's atomics).
// Only code that is device-only by nature (atomics, warp intrinsics) is written __device__
// directly, inside #if defined(__CUDA_ARCH__). CCCL does not define __host__/__device__ under a
// plain C++ compiler: XGRAD_HD expands to nothing there.
#if defined(__CUDACC__)
#define XGRAD_HD constexpr
#else
#define XGRAD_HD
#endif

#if defined(__GNUC__) || defined(__clang__)
#define XGRAD_INLINE inline __attribute__((always_inline))
#else
#define XGRAD_INLINE inline
#endif

// Optional precompiled part. xgrad is header-only; a program may instead link the library
// xgrad_precompiled (src/precompiled.cpp; CMake defines XGRAD_PRECOMPILED for its users), which
// holds one compiled copy of the heavy functions that run a few times per model, epoch or file
// (shape checks, file formats, reports) and of the float CPU kernels every model uses (GEMM,
// Adam), so that its users' translation units generate no code for them.
//   XGRAD_OUTLINE          before such a non-template function (or in-class declaration of a
//                          member): `inline` header-only; with XGRAD_PRECOMPILED a function
//                          template with one defaulted parameter, so that
//   XGRAD_OUTLINE_DEF      the out-of-class definition of such a member, and
//   XGRAD_INSTANCE(decl)   after a definition: nothing header-only; `extern template decl;` in
//                          the users' translation units (no instantiation, no code), `template
//                          decl;` in src/precompiled.cpp (XGRAD_PRECOMPILED_BUILD), the one copy.
// Callers are the same in both modes.
#if defined(XGRAD_PRECOMPILED) || defined(XGRAD_PRECOMPILED_BUILD)
#define XGRAD_OUTLINE template <class = void>
#define XGRAD_OUTLINE_DEF template <class>
#if defined(XGRAD_PRECOMPILED_BUILD)
#define XGRAD_INSTANCE(...) template __VA_ARGS__;
#else
#define XGRAD_INSTANCE(...) extern template __VA_ARGS__;
#endif
#else
#define XGRAD_OUTLINE inline
#define XGRAD_OUTLINE_DEF inline
#define XGRAD_INSTANCE(...)
#endif

namespace xgrad {
/// Storage alignment in bytes (one AVX-512 register, one cache line).
inline constexpr std::size_t alignment = 64;
/// Largest rank a fused loop handles; higher ranks throw xgrad::shape_error.
inline constexpr std::size_t max_rank = 8;
}  // namespace xgrad
