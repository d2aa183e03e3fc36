// fashion_mnist_cnn on an NVIDIA GPU: the same source as fashion_mnist_cnn.cpp, trained on
// xgrad::device::cuda (built by nvcc when XGRAD_USE_CUDA is on, as fashion_mnist_cnn_cuda).
#define XGRAD_EXAMPLE_CUDA 1
#include "fashion_mnist_cnn.cpp"
