// Compiled by nvcc against xgrad::cuda (see CMakeLists.txt): the device headers and one fused
// forward + backward kernel must compile and link. It runs the kernel only when a GPU exists.
#include <cuda_runtime.h>

#include <xgrad/device.hpp>

int main() {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return 0;
    auto x = xgrad::param(xgrad::ones<float, xgrad::device::cuda>({8}));
    return xgrad::backward(xgrad::sum(x * x)) == 8.0f ? 0 : 1;
}
