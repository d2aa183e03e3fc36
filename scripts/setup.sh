#!/usr/bin/env bash
# Install the Debian 12 packages needed to build, test and run xgrad.
# Only packages that are missing are installed; when nothing is missing this
# script changes nothing and does not touch the network.
#
# Environment:
#   XGRAD_SKIP_SETUP=1   do nothing (e.g. on a non-Debian system with the
#                        dependencies installed by other means)
set -euo pipefail

if [[ "${XGRAD_SKIP_SETUP:-0}" == "1" ]]; then
  echo "setup: XGRAD_SKIP_SETUP=1, not checking packages"
  exit 0
fi

packages=(
  build-essential
  cmake
  pkg-config
  libxtensor-dev
  libxsimd-dev
  xtl-dev
  libboost-test-dev
  libbenchmark-dev
  libopenblas-dev
  zlib1g-dev
  libbz2-dev
  dataset-fashion-mnist
)
# Never install libthrust-dev / libcub-dev: Debian's old Thrust lands in
# /usr/include/thrust and shadows the CUDA toolkit's newer one.

if ! command -v dpkg >/dev/null 2>&1; then
  echo "setup: dpkg not found; this script only knows Debian." >&2
  echo "setup: install the equivalents of: ${packages[*]}" >&2
  exit 0
fi

is_installed() {
  local status
  status=$(dpkg -s "$1" 2>/dev/null || true)
  [[ "$status" == *"Status: install ok installed"* ]]
}

missing=()
for pkg in "${packages[@]}"; do
  if ! is_installed "$pkg"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} required packages are installed"
else
  echo "setup: installing ${#missing[@]} missing package(s): ${missing[*]}"
  sudo_cmd=()
  if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo)
    else
      echo "setup: not root and sudo is not available; install these as root:" >&2
      echo "  apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
  echo "setup: installed ${missing[*]}"
fi

for pkg in libthrust-dev libcub-dev; do
  if is_installed "$pkg"; then
    echo "setup: warning: $pkg is installed; its /usr/include headers can shadow the CUDA toolkit's Thrust/CUB" >&2
  fi
done
