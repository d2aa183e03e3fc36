#!/usr/bin/env bash
# One LSTM (or GRU) layer, batch 64, sequence 50, input 128, hidden 256, forward + backward:
# xgrad (benchmarks/bench_lstm.cpp) against PyTorch eager and torch.compile
# (peer_torch_lstm.py), each at 1 and 2 threads, run one after the other in rounds so that
# machine noise hits all of them alike; prints the medians and xgrad's speed-ups.
#
#   benchmarks/peers/lstm.sh [--kind lstm|gru] [--rounds 3] [--build DIR] [--clock wall|cpu]
#
# --clock cpu times each side's calling-thread CPU time instead of the wall clock (1 thread
# only: at 2 threads part of the work runs on other threads), which a shared machine's load
# does not inflate.
#
# The Python is $XGRAD_PEERS_PYTHON (default python3) with torch installed. OpenBLAS picks its
# kernels from CPUID; on virtual machines that hide the CPU model it falls back to the generic
# "Prescott" SSE kernels (4x slower here), so on an AVX-512 CPU this script sets
# OPENBLAS_CORETYPE=SkylakeX unless the caller set it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
kind=lstm rounds=3 build=$root/build clock=wall
while [[ $# -gt 0 ]]; do
    case $1 in
        --kind) kind=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --build) build=$2; shift ;;
        --clock) clock=$2; shift ;;
        *) echo "usage: $0 [--kind lstm|gru] [--rounds N] [--build DIR] [--clock wall|cpu]" >&2; exit 2 ;;
    esac
    shift
done
py=${XGRAD_PEERS_PYTHON:-python3}
if [[ -z ${OPENBLAS_CORETYPE:-} ]] && grep -q avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; fi
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCHMARKS=ON >&2
fi
cmake --build "$build" --target bench_lstm -j 1 >&2
threads="1 2"
if [[ $clock == cpu ]]; then threads=1; fi
log=$(mktemp)
echo "load before: $(uptime)"
for ((r = 0; r < rounds; ++r)); do
    for t in $threads; do
        "$build/benchmarks/bench_lstm" --threads "$t" --kind "$kind" --clock "$clock" | tee -a "$log"
        for mode in eager compile; do
            "$py" "$here/peer_torch_lstm.py" --mode "$mode" --threads "$t" --kind "$kind" --clock "$clock" 2>/dev/null | tee -a "$log" ||
                echo "torch-$mode $kind threads=$t failed" | tee -a "$log"
        done
    done
done
echo "load after: $(uptime)"
"$py" - "$log" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\S+) \S+ threads=(\d+) median_ms=([\d.]+) min_ms=([\d.]+)", line)
    if m:
        runs.setdefault((m[1], int(m[2])), []).append((float(m[3]), float(m[4])))
print("\nmedian over rounds of each run's median (and the fastest single call of all rounds), ms")
print("| threads | xgrad | torch eager | torch.compile | xgrad vs eager | xgrad vs compile |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    med = {k: statistics.median(a for a, _ in v) for (k, tt), v in runs.items() if tt == t}
    low = {k: min(b for _, b in v) for (k, tt), v in runs.items() if tt == t}
    f = lambda k: "%.1f (%.1f)" % (med[k], low[k]) if k in med else "-"
    r = lambda a, b: "%.2fx (%.2fx)" % (med[b] / med[a], low[b] / low[a]) if a in med and b in med else "-"
    print("| %d | %s | %s | %s | %s | %s |" % (t, f("xgrad"), f("torch-eager"), f("torch-compile"),
                                             r("xgrad", "torch-eager"), r("xgrad", "torch-compile")))
PY
rm -f "$log"
