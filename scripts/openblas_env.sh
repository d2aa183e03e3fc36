# Sourced by main.sh and test.sh. Debian's OpenBLAS 0.3.21 picks its kernels from the CPU's
# model number; on virtual machines that report a generic "Intel Xeon Processor" it falls back to
# the SSE3 ("Prescott") kernels, about 3x slower per GEMM than its AVX-512 ones. When the CPU has
# AVX-512 (F and BW) and the user chose nothing, ask for the SkylakeX kernels.
if [[ -z "${OPENBLAS_CORETYPE:-}" ]] && grep -qw avx512f /proc/cpuinfo 2>/dev/null &&
  grep -qw avx512bw /proc/cpuinfo 2>/dev/null; then
  export OPENBLAS_CORETYPE=SkylakeX
fi
