#!/usr/bin/env bash
# Set up, build and run the main example.
#
#   ./scripts/main.sh [args passed to the program...]
#
# Environment:
#   MAIN_TARGET   example to build and run (default: fashion_mnist_cnn)
#   BUILD_DIR     build directory (default: build)
#   JOBS          parallel build jobs (default: nproc)
set -euo pipefail

MAIN_TARGET=${MAIN_TARGET:-fashion_mnist_cnn}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

bash scripts/setup.sh
# shellcheck source=openblas_env.sh
source scripts/openblas_env.sh

cmake -S . -B "$BUILD_DIR" \
  -DCMAKE_BUILD_TYPE=Release \
  -DXGRAD_BUILD_TESTS=OFF \
  -DXGRAD_BUILD_EXAMPLES=ON \
  -DXGRAD_BUILD_BENCHMARKS=OFF \
  -DXGRAD_EXAMPLE_CXX_FLAGS=
cmake --build "$BUILD_DIR" --target "$MAIN_TARGET" -j "$JOBS"

echo "main: running $BUILD_DIR/examples/$MAIN_TARGET $*"
exec "$BUILD_DIR/examples/$MAIN_TARGET" "$@"
