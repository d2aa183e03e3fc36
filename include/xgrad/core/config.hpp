#pragma once
// Compiler shims, kept in one place so no macro leaks into op code.
#include <cstddef>

// Functions callable from both host and device code. CCCL does not define
// __host__/__device__ under a plain C++ compiler, so expand to nothing there.
#if defined(__CUDACC__)
#define XGRAD_HD __host__ __device__
#else
#define XGRAD_HD
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
