#pragma once
// Dense linear algebra on the Thrust devices: a strided-batched GEMM over raw device pointers,
// with row-major semantics, what matmul, linear and conv2d call on a device.
//
//   C_i = alpha op(A_i) op(B_i) + beta C_i,   X_i = x + i * stride_x,   i < batch
//
// op(A) is M x K, op(B) K x N, C M x N, all row-major with leading dimensions lda, ldb, ldc. A
// stride of 0 reuses one matrix for every batch. With beta == 0, C is not read.
//
//   thrust_cpp, thrust_omp  host memory: xgrad's CPU GEMM (backend/cpu/gemm.hpp, CBLAS when
//                           XGRAD_HAVE_CBLAS) on the pointers, one call per batch
//   cuda                    cuBLAS (cublas{S,D}gemmStridedBatched) through a handle kept per
//                           GPU and host thread; a failing call throws xgrad::device_error
//                           naming the op and the cuBLAS status
#include <cstddef>
#include <limits>
#include <string>

#include "../../core/error.hpp"
#include "../cpu/gemm.hpp"
#include "system.hpp"

#if defined(__CUDACC__)
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace xgrad::detail::thrust_backend {

/// C_i = beta C_i over the M x N blocks of a batch (0 where beta is 0): a GEMM with K = 0.
template <class T>
struct scale_blocks {
    T* c;
    std::ptrdiff_t N, ldc, stride_c, per_batch;
    T beta;
    XGRAD_HD void operator()(std::ptrdiff_t i) const {
        const std::ptrdiff_t b = i / per_batch, r = (i - b * per_batch) / N, j = i - b * per_batch - r * N;
        T& x = c[b * stride_c + r * ldc + j];
        x = beta == T(0) ? T(0) : beta * x;
    }
};

#if defined(__CUDACC__)
/// Throws device_error naming the op, the cuBLAS call and its status unless s is success.
inline void check_cublas(cublasStatus_t s, const char* op, const char* call) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw device_error(std::string(op) + ": " + call + " failed with " + cublasGetStatusName(s) + " (" +
                           cublasGetStatusString(s) + ")");
}

/// The calling thread's cuBLAS handle for the current GPU, created on first use. Handles stay
/// for the thread's lifetime (creating one costs milliseconds) and run on the default stream,
/// the one Thrust's cuda::par kernels run on, so GEMMs and kernels are ordered.
inline cublasHandle_t cublas_handle(const char* op) {
    int dev = 0;
    const cudaError_t e = cudaGetDevice(&dev);
    if (e != cudaSuccess)
        throw device_error(std::string(op) + ": cudaGetDevice failed with " + cudaGetErrorName(e) + " (" +
                           cudaGetErrorString(e) + ")");
    struct handles {
        std::vector<cublasHandle_t> per_device;
        ~handles() {
            for (cublasHandle_t h : per_device)
                if (h) cublasDestroy(h);  // status ignored: nothing to report at thread exit
        }
    };
    thread_local handles cache;
    if (cache.per_device.size() <= static_cast<std::size_t>(dev)) cache.per_device.resize(static_cast<std::size_t>(dev) + 1, nullptr);
    cublasHandle_t& h = cache.per_device[static_cast<std::size_t>(dev)];
    if (!h) check_cublas(cublasCreate(&h), op, "cublasCreate");
    return h;
}

/// n as cuBLAS's int, or value_error naming the op.
inline int cublas_int(std::size_t n, const char* op, const char* what) {
    if (n > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw value_error(std::string(op) + ": GEMM " + what + " " + std::to_string(n) +
                          " exceeds cuBLAS's 32-bit limit");
    return static_cast<int>(n);
}
#endif

/// The strided-batched GEMM at the top of this file on device D; `op` names the caller in errors.
template <class D, class T>
void gemm_strided_batched([[maybe_unused]] const char* op, bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K,
                          T alpha, const T* a, std::size_t lda, std::ptrdiff_t stride_a, const T* b, std::size_t ldb,
                          std::ptrdiff_t stride_b, T beta, T* c, std::size_t ldc, std::ptrdiff_t stride_c,
                          std::size_t batch) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "xgrad: device GEMM needs float or double");
    if (M == 0 || N == 0 || batch == 0) return;
    if (K == 0) {  // op(A) op(B) is empty: C = beta C
        const auto per = static_cast<std::ptrdiff_t>(M * N);
        for_each_index<D>(batch * M * N, scale_blocks<T>{c, static_cast<std::ptrdiff_t>(N), static_cast<std::ptrdiff_t>(ldc),
                                                        stride_c, per, beta});
        return;
    }
    if constexpr (system<D>::host_memory) {
        for (std::size_t i = 0; i < batch; ++i) {
            const auto o = static_cast<std::ptrdiff_t>(i);
            gemm<T>(trans_a, trans_b, M, N, K, alpha, a + o * stride_a, lda, b + o * stride_b, ldb, beta,
                    c + o * stride_c, ldc);
        }
    } else {
#if defined(__CUDACC__)
        // cuBLAS is column-major: a row-major X is the column-major X^T, so C^T = op(B)^T op(A)^T
        // is the same call with the operands (and M, N) swapped.
        const cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        const int m = cublas_int(M, op, "M"), n = cublas_int(N, op, "N"), k = cublas_int(K, op, "K");
        const int la = cublas_int(lda, op, "lda"), lb = cublas_int(ldb, op, "ldb"), lc = cublas_int(ldc, op, "ldc");
        const int nb = cublas_int(batch, op, "batch count");
        cublasHandle_t h = cublas_handle(op);
        if constexpr (std::is_same_v<T, float>)
            check_cublas(cublasSgemmStridedBatched(h, opb, opa, n, m, k, &alpha, b, lb, stride_b, a, la, stride_a, &beta,
                                                   c, lc, stride_c, nb),
                         op, "cublasSgemmStridedBatched");
        else
            check_cublas(cublasDgemmStridedBatched(h, opb, opa, n, m, k, &alpha, b, lb, stride_b, a, la, stride_a, &beta,
                                                   c, lc, stride_c, nb),
                         op, "cublasDgemmStridedBatched");
#endif
    }
}

/// One GEMM (a batch of one).
template <class D, class T>
void device_gemm(const char* op, bool trans_a, bool trans_b, std::size_t M, std::size_t N, std::size_t K, T alpha,
                 const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    gemm_strided_batched<D, T>(op, trans_a, trans_b, M, N, K, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

}  // namespace xgrad::detail::thrust_backend
