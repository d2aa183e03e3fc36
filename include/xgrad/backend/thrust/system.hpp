#pragma once
// Thrust devices: the tags tensors carry, and what each tag means to Thrust (execution policy,
// memory, how many lanes run a loop). thrust_cpp and thrust_omp run Thrust's host systems, so
// the same device code path is compiled and tested by a plain C++ compiler; cuda needs nvcc.
#if !defined(__CUDACC__) && !defined(THRUST_DEVICE_SYSTEM)
#error "xgrad's Thrust backend under a C++ compiler needs -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP -fopenmp (or THRUST_DEVICE_SYSTEM_CPP): link the CMake target xgrad::thrust_omp"
#endif
#if defined(__CUDACC__) && !defined(__CUDACC_RELAXED_CONSTEXPR__)
#error "xgrad's device kernels need nvcc --expt-relaxed-constexpr (see XGRAD_HD in xgrad/core/config.hpp): link the CMake target xgrad::cuda"
#endif

#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>

#include <thrust/copy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/memory.h>
#include <thrust/system/cpp/execution_policy.h>
#include <thrust/system/omp/execution_policy.h>
#if defined(_OPENMP)
#include <omp.h>
#endif
#if defined(__CUDACC__)
#include <thrust/system/cuda/execution_policy.h>
#include <thrust/system/cuda/pointer.h>
#endif

#include "../../core/config.hpp"
#include "../../core/tensor.hpp"

namespace xgrad {

namespace device {
/// Thrust's serial host system: the device code path on one CPU thread.
struct thrust_cpp {
    static constexpr const char* name = "thrust_cpp";
};
/// Thrust's OpenMP host system: the device code path on the CPU's threads.
struct thrust_omp {
    static constexpr const char* name = "thrust_omp";
};
/// An NVIDIA GPU through Thrust's CUDA system (translation units compiled by nvcc).
struct cuda {
    static constexpr const char* name = "cuda";
};
}  // namespace device

/// A device executed by xgrad's Thrust backend.
template <class D>
concept thrust_device = std::same_as<D, device::thrust_cpp> || std::same_as<D, device::thrust_omp> ||
                        std::same_as<D, device::cuda>;

namespace detail::thrust_backend {

/// What a Thrust device means to Thrust:
///   policy()         the execution policy every algorithm runs with
///   host_memory      whether the host may dereference its pointers
///   lanes()          host systems: how many private lanes one loop is split into
///   copy_in/out      n elements from host memory to the device and back
template <class D>
struct system {
    static_assert(sizeof(D) == 0, "xgrad::device::cuda needs a .cu translation unit compiled by nvcc (link xgrad::cuda)");
};

template <>
struct system<device::thrust_cpp> {
    static auto policy() { return thrust::cpp::par; }
    static constexpr bool host_memory = true;
    static std::size_t lanes() { return 1; }
    template <class T>
    static void copy_in(const T* host, T* dev, std::size_t n) { std::copy_n(host, n, dev); }
    template <class T>
    static void copy_out(const T* dev, T* host, std::size_t n) { std::copy_n(dev, n, host); }
};

template <>
struct system<device::thrust_omp> {
    static auto policy() { return thrust::omp::par; }
    static constexpr bool host_memory = true;
    static std::size_t lanes() {
#if defined(_OPENMP)
        return static_cast<std::size_t>(omp_get_max_threads());
#else
        return 1;  // without -fopenmp Thrust's OMP system runs serially
#endif
    }
    template <class T>
    static void copy_in(const T* host, T* dev, std::size_t n) { std::copy_n(host, n, dev); }
    template <class T>
    static void copy_out(const T* dev, T* host, std::size_t n) { std::copy_n(dev, n, host); }
};

#if defined(__CUDACC__)
template <>
struct system<device::cuda> {
    static auto policy() { return thrust::cuda::par; }
    static constexpr bool host_memory = false;
    static std::size_t lanes() { return 1; }
    template <class T>
    static void copy_in(const T* host, T* dev, std::size_t n) {
        thrust::copy_n(host, n, thrust::cuda::pointer<T>(dev));
    }
    template <class T>
    static void copy_out(const T* dev, T* host, std::size_t n) {
        thrust::copy_n(thrust::cuda::pointer<const T>(dev), n, host);
    }
};
#endif

/// Loops shorter than this run in one lane on the host systems (waking threads costs more).
/// Tests lower it to force several lanes on small shapes.
inline std::size_t& host_parallel_grain() {
    static std::size_t grain = std::size_t{1} << 15;
    return grain;
}

/// n uninitialized elements of device memory, freed when the last handle (or view) goes.
template <class T, class D>
std::shared_ptr<T> allocate(std::size_t n) {
    static_assert(std::is_trivially_copyable_v<T>, "xgrad tensors hold trivially copyable element types");
    auto policy = system<D>::policy();
    auto p = thrust::malloc<T>(policy, n > 0 ? n : 1);
    return std::shared_ptr<T>(thrust::raw_pointer_cast(p), [](T* q) {
        auto pol = system<D>::policy();
        thrust::free(pol, q);
    });
}

/// Runs f(i) for i in [0, n) on device D.
template <class D, class F>
void for_each_index(std::size_t n, const F& f) {
    if (n == 0) return;
    thrust::for_each(system<D>::policy(), thrust::counting_iterator<std::ptrdiff_t>(0),
                     thrust::counting_iterator<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(n)), f);
}

/// Loop position -> element offset for one operand: the loop's extents (innermost last) and
/// the operand's strides in elements (0 where it broadcasts). Trivially copyable, so device
/// functors carry it by value; nothing is kept per row.
struct strided_index {
    int rank = 1;
    std::ptrdiff_t extent[max_rank] = {};
    std::ptrdiff_t stride[max_rank] = {};

    XGRAD_HD XGRAD_INLINE std::ptrdiff_t operator()(std::ptrdiff_t j) const {
        if (rank == 1) return j * stride[0];  // the common case after collapsing: no division
        std::ptrdiff_t off = 0;
#if defined(__CUDA_ARCH__)
        // Unrolled, so that extent and stride are read at constant indices: an array read at
        // a run-time index makes every thread's copy of the kernel functor live in local
        // memory, which costs more than the arithmetic. Steps past the rank do nothing.
#pragma unroll
        for (int d = static_cast<int>(max_rank) - 1; d > 0; --d) {
            if (d < rank) {
                const std::ptrdiff_t q = j / extent[d];
                off += (j - q * extent[d]) * stride[d];
                j = q;
            }
        }
#else
        for (int d = rank - 1; d > 0; --d) {
            const std::ptrdiff_t q = j / extent[d];
            off += (j - q * extent[d]) * stride[d];
            j = q;
        }
#endif
        return off + j * stride[0];
    }
};

/// A strided_index over `shape` for a layout with `strides` (both of the same rank).
inline strided_index make_index(const shape_t& shape, const strides_t& strides) {
    if (shape.size() > max_rank)
        throw shape_error("device loop: rank " + std::to_string(shape.size()) + " of shape " + to_string(shape) +
                          " exceeds xgrad::max_rank (" + std::to_string(max_rank) + ")");
    strided_index ix;
    ix.rank = shape.empty() ? 1 : static_cast<int>(shape.size());
    ix.extent[0] = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
        ix.extent[d] = static_cast<std::ptrdiff_t>(shape[d]);
        ix.stride[d] = strides[d];
    }
    return ix;
}

}  // namespace detail::thrust_backend
}  // namespace xgrad
