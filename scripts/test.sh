#!/usr/bin/env bash
# Set up, build and run the whole test suite:
#   1. one build in build/: the CPU unit tests with AddressSanitizer + UBSan at -O1 (checked
#      and quick to compile), the device suites on Thrust's host systems, the documentation
#      snippets (two executables) and the Python-checked helpers at -O1 without sanitizers (a
#      sanitizer triples a translation unit's compile time; see XGRAD_TEST_UNSANITIZED in
#      CMakeLists.txt), the examples at -O1, the CUDA suites compiled by nvcc
#      (they skip without a GPU); then every ctest test: unit, device, documentation snippets,
#      compile-fail checks, consumer projects, example runs;
#   2. ThreadSanitizer runs of the data loader and the thread pool (tests/tsan/run.sh);
#   3. a bounded libFuzzer run of every file reader (tests/fuzz/run.sh), JOBS readers at a time.
# The wall time of every phase is printed at the end.
#
# Environment:
#   XGRAD_SANITIZE=...     sanitizers of the unit tests (default address,undefined; empty: none)
#   XGRAD_TEST_CXX_FLAGS   extra flags of the unit tests (default "-O1 -g1")
#   XGRAD_EXAMPLE_CXX_FLAGS extra flags of the examples (default "-O1": here they are run on
#                          a few batches only; scripts/main.sh builds them at full optimization)
#   XGRAD_TEST_CUDA_FLAGS  extra nvcc flags of the CUDA suites (default "-O0" without a GPU:
#                          there they are only compiled, so their host code is not optimized)
#   XGRAD_CUDA_ARCHS       CMAKE_CUDA_ARCHITECTURES (default 90-virtual without a GPU: PTX only,
#                          no SASS; 90 with one)
#   XGRAD_SKIP_BUILD=1     skip phase 1
#   XGRAD_SKIP_TSAN=1      skip phase 2
#   XGRAD_SKIP_FUZZ=1      skip phase 3 (XGRAD_FUZZ_SECONDS per target, default 15)
#   JOBS                   parallel build/test jobs (default: nproc)
#   BUILD_DIR              build directory (default: build)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

JOBS=${JOBS:-$(nproc)}
BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}

timings=()
print_timings() {
  local status=$?
  if ((${#timings[@]})); then
    echo
    echo "== phase timings (wall clock) =="
    printf '%s\n' "${timings[@]}"
  fi
  if ((status != 0)); then
    echo "test: FAILED (exit status $status)" >&2
  fi
}
trap print_timings EXIT

# phase <name> <command...>: run a command and record its wall time.
phase() {
  local name=$1
  shift
  echo
  echo "== $name =="
  local start end ms rc=0
  start=$(date +%s%N)
  "$@" || rc=$?
  end=$(date +%s%N)
  ms=$(((end - start) / 1000000))
  local line
  line=$(printf '%-22s %6d.%01d s' "$name" $((ms / 1000)) $((ms % 1000 / 100)))
  if ((rc != 0)); then
    line+="  (failed, exit status $rc)"
  fi
  timings+=("$line")
  return "$rc"
}

phase "setup" bash scripts/setup.sh
# shellcheck source=openblas_env.sh
source scripts/openblas_env.sh

# Python's safetensors + numpy for the checkpoint interop test; without them CMake just does
# not register that test.
if ! python3 -c "import safetensors, numpy" >/dev/null 2>&1; then
  python3 -m pip install --quiet --retries 1 --timeout 30 safetensors numpy >/dev/null 2>&1 ||
    echo "test: could not install Python safetensors/numpy; skipping the safetensors interop test"
fi
# tensorboard (event-file read-back test) and onnx + onnxruntime (ONNX export test), likewise.
if ! python3 -c "import tensorboard.backend.event_processing.event_accumulator" >/dev/null 2>&1; then
  python3 -m pip install --quiet --retries 1 --timeout 30 tensorboard >/dev/null 2>&1 ||
    echo "test: could not install Python tensorboard; skipping the TensorBoard read-back test"
fi
if ! python3 -c "import onnx, onnxruntime" >/dev/null 2>&1; then
  python3 -m pip install --quiet --retries 1 --timeout 30 onnx onnxruntime >/dev/null 2>&1 ||
    echo "test: could not install Python onnx/onnxruntime; skipping the ONNX runtime test"
fi

# Without a GPU the CUDA suites and the CUDA example only prove that nvcc compiles them: build
# their host code unoptimized and emit PTX only (about half the nvcc time of -O3 + sm_90 SASS).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  cuda_flags_default="" cuda_archs_default=90
else
  cuda_flags_default="-O0" cuda_archs_default=90-virtual
fi

# Text and rating data for the examples (a few seconds; their tests skip when this fails).
phase "fetch data" bash scripts/fetch_data.sh ||
  echo "test: scripts/fetch_data.sh failed; the examples that need its data will be skipped"

if [[ "${XGRAD_SKIP_BUILD:-0}" != "1" ]]; then
  phase "configure" cmake -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DXGRAD_BUILD_TESTS=ON \
    -DXGRAD_BUILD_EXAMPLES=ON \
    -DXGRAD_BUILD_BENCHMARKS=OFF \
    "-DXGRAD_SANITIZE=${XGRAD_SANITIZE-address,undefined}" \
    "-DXGRAD_TEST_CXX_FLAGS=${XGRAD_TEST_CXX_FLAGS--O1 -g1}" \
    "-DXGRAD_EXAMPLE_CXX_FLAGS=${XGRAD_EXAMPLE_CXX_FLAGS--O1}" \
    "-DXGRAD_TEST_CUDA_FLAGS=${XGRAD_TEST_CUDA_FLAGS-$cuda_flags_default}" \
    "-DCMAKE_CUDA_ARCHITECTURES=${XGRAD_CUDA_ARCHS:-$cuda_archs_default}"
  phase "build" cmake --build "$BUILD_DIR" -j "$JOBS"
  phase "ctest" env \
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$repo_root/tests/sanitizers/ubsan.supp" \
    ASAN_OPTIONS=detect_leaks=1 \
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
else
  echo "test: XGRAD_SKIP_BUILD=1, skipping the build and ctest"
fi

# Thread-safety of the data loader and the thread pool under ThreadSanitizer, and a bounded
# libFuzzer run of every file reader under ASan/UBSan.
if [[ "${XGRAD_SKIP_TSAN:-0}" != "1" ]]; then
  phase "tsan" bash tests/tsan/run.sh 3
fi
if [[ "${XGRAD_SKIP_FUZZ:-0}" != "1" ]]; then
  phase "fuzz" bash tests/fuzz/run.sh "${XGRAD_FUZZ_SECONDS:-15}"
fi

echo
echo "test: all phases passed"
