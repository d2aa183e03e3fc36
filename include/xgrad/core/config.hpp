#pragma once
// Compiler shims, kept in one place so no macro leaks into op code.
#include <cstddef>

// XGRAD_HD marks what CPU loops and device kernels share: expression kernels, op rules,
// scalar math. The CPU loops instantiate them with SIMD batches, and nvcc compiles every
// instantiation of a __host__ __device__ template for the device as well, where it rejects
// those vector types; so under nvcc they are constexpr instead, which nvcc compiles for the
// device only where device code calls them (--expt-relaxed-constexpr, added by xgrad::cuda).
// XGRAD_HOST_DEVICE is for functions that only device backends instantiate.
// CCCL does not define __host__/__device__ under a plain C++ compiler: both expand to nothing.
#if defined(__CUDACC__)
#define XGRAD_HD constexpr
#define XGRAD_HOST_DEVICE __host__ __device__
#else
#define XGRAD_HD
#define XGRAD_HOST_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define XGRAD_INLINE inline __attribute__((always_inline))
#else
#define XGRAD_INLINE inline
#endif

namespace xgrad {
/// Storage alignment in bytes (one AVX-512 register, one cache line).
inline constexpr std::size_t alignment = 64;
/// Largest rank a fused loop handles; higher ranks throw xgrad::shape_error.
inline constexpr std::size_t max_rank = 8;
}  // namespace xgrad
