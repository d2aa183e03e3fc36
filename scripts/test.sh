#!/usr/bin/env bash
# Set up, build and run the whole test suite:
#   1. Release build in build/ (tests, examples, benchmarks), all ctest tests
#      (unit, documentation snippets, consumer projects);
#   2. Debug build in build-asan/ with AddressSanitizer + UBSan, unit and
#      documentation snippet tests.
# The wall time of every phase is printed at the end.
#
# Environment:
#   XGRAD_SKIP_RELEASE=1   skip phase 1
#   XGRAD_SKIP_ASAN=1      skip phase 2
#   XGRAD_SKIP_TSAN=1      skip the ThreadSanitizer runs (tests/tsan/run.sh)
#   XGRAD_SKIP_FUZZ=1      skip the bounded fuzzing (tests/fuzz/run.sh; XGRAD_FUZZ_SECONDS per target, default 20)
#   JOBS                   parallel build/test jobs (default: nproc)
#   BUILD_DIR, ASAN_BUILD_DIR   build directories (default: build, build-asan)
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

# Python's safetensors + numpy for the checkpoint interop test; without them CMake just does
# not register that test.
if ! python3 -c "import safetensors, numpy" >/dev/null 2>&1; then
  python3 -m pip install --quiet --retries 1 --timeout 30 safetensors numpy >/dev/null 2>&1 ||
    echo "test: could not install Python safetensors/numpy; skipping the safetensors interop test"
fi

if [[ "${XGRAD_SKIP_RELEASE:-0}" != "1" ]]; then
  phase "release: configure" cmake -S . -B "$BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Release \
    -DXGRAD_BUILD_TESTS=ON \
    -DXGRAD_BUILD_EXAMPLES=ON \
    -DXGRAD_BUILD_BENCHMARKS=ON \
    -DXGRAD_SANITIZE=
  phase "release: build" cmake --build "$BUILD_DIR" -j "$JOBS"
  phase "release: ctest" ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS"
else
  echo "test: XGRAD_SKIP_RELEASE=1, skipping the Release build"
fi

if [[ "${XGRAD_SKIP_ASAN:-0}" != "1" ]]; then
  phase "asan: configure" cmake -S . -B "$ASAN_BUILD_DIR" \
    -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_CXX_FLAGS_DEBUG=-g -O1" \
    -DXGRAD_SANITIZE=address,undefined \
    -DXGRAD_USE_CUDA=OFF \
    -DXGRAD_BUILD_TESTS=ON \
    -DXGRAD_BUILD_EXAMPLES=OFF \
    -DXGRAD_BUILD_BENCHMARKS=OFF
  phase "asan: build" cmake --build "$ASAN_BUILD_DIR" -j "$JOBS"
  phase "asan: ctest" env \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    ASAN_OPTIONS=detect_leaks=1 \
    ctest --test-dir "$ASAN_BUILD_DIR" --output-on-failure -j "$JOBS" -LE consumer
else
  echo "test: XGRAD_SKIP_ASAN=1, skipping the sanitizer build"
fi

# Thread-safety of the data loader and the thread pool under ThreadSanitizer, and a bounded
# libFuzzer run of every file reader under ASan/UBSan.
if [[ "${XGRAD_SKIP_TSAN:-0}" != "1" ]]; then
  phase "tsan" bash tests/tsan/run.sh 3
fi
if [[ "${XGRAD_SKIP_FUZZ:-0}" != "1" ]]; then
  phase "fuzz" bash tests/fuzz/run.sh "${XGRAD_FUZZ_SECONDS:-20}"
fi

echo
echo "test: all phases passed"
