#!/usr/bin/env bash
# xgrad against PyTorch (eager, torch.compile) and TensorFlow (eager, XLA) on the same
# workloads, inputs, initial weights, thread counts and timing protocol; prints one table of
# medians and speed-ups and writes it (with the raw JSON lines and logs) to a results folder.
#
#   benchmarks/peers/run.sh [--quick] [--no-epoch] [--threads "1 2"]
#
#   --quick      1 warm-up and 3 timed blocks instead of 3 and 7, and no epoch run
#   --no-epoch   skip workloads 5-6 (one Fashion-MNIST epoch per framework, mode and thread count)
#   --threads    the thread counts to run (default "1 2")
#
# Environment:
#   XGRAD_PEERS_CACHE   cache folder (default ${XDG_CACHE_HOME:-$HOME/.cache}/xgrad-peers): the
#                       virtual environment, the generated inputs, Inductor's cache, the results
#   XGRAD_PEERS_BUILD   xgrad build folder (default <repo>/build-peers)
#   XGRAD_PEERS_OUT     results folder (default $XGRAD_PEERS_CACHE/results/<UTC time>)
#   XGRAD_PEERS_TORCH, XGRAD_PEERS_TF   pip requirement strings (default torch, tensorflow-cpu;
#                       e.g. "torch==2.15.0") ; XGRAD_PEERS_UPGRADE=1 reinstalls/upgrades
#   XGRAD_PEERS_PYTHON  the Python that creates the venv (default python3)
#   XGRAD_PEERS_WARMUP, XGRAD_PEERS_REPS   override the timing protocol
#   XGRAD_DATA_DIR      Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cmdline="benchmarks/peers/run.sh${*:+ $*}"
epoch=1
threads="1 2"
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) export XGRAD_PEERS_WARMUP=${XGRAD_PEERS_WARMUP:-1} XGRAD_PEERS_REPS=${XGRAD_PEERS_REPS:-3}; epoch=0 ;;
        --no-epoch) epoch=0 ;;
        --threads) threads=$2; shift ;;
        *) echo "usage: $0 [--quick] [--no-epoch] [--threads \"1 2\"]" >&2; exit 2 ;;
    esac
    shift
done
export XGRAD_PEERS_WARMUP=${XGRAD_PEERS_WARMUP:-3} XGRAD_PEERS_REPS=${XGRAD_PEERS_REPS:-7}

cache=${XGRAD_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xgrad-peers}
build=${XGRAD_PEERS_BUILD:-$root/build-peers}
out=${XGRAD_PEERS_OUT:-$cache/results/$(date -u +%Y%m%dT%H%M%SZ)}
export XGRAD_PEERS_DATA=$cache/data
mkdir -p "$cache" "$out/logs"
py=$cache/venv/bin/python

# --- 1. the peers in a virtual environment (reused; pip only when something is missing)
if [[ ! -x $py ]]; then
    "${XGRAD_PEERS_PYTHON:-python3}" -m venv "$cache/venv"
fi
if [[ ${XGRAD_PEERS_UPGRADE:-0} == 1 ]] || ! "$py" -c "import torch, tensorflow, numpy" 2>/dev/null; then
    echo "== installing ${XGRAD_PEERS_TORCH:-torch} ${XGRAD_PEERS_TF:-tensorflow-cpu} numpy into $cache/venv" >&2
    "$py" -m pip install --upgrade pip >&2
    "$py" -m pip install --upgrade "${XGRAD_PEERS_TORCH:-torch}" "${XGRAD_PEERS_TF:-tensorflow-cpu}" numpy >&2
fi

# --- 2. xgrad's benchmark program (only that target)
if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DXGRAD_BUILD_BENCHMARKS=ON \
        -DXGRAD_BUILD_TESTS=OFF -DXGRAD_BUILD_EXAMPLES=OFF -DXGRAD_USE_CUDA=OFF >&2
fi
cmake --build "$build" --target bench_peers -j "$(nproc)" >&2
bench=$build/benchmarks/bench_peers

# --- 3. the shared inputs and initial weights (written once)
(cd "$here" && "$py" prepare.py)

# --- 4. one process per framework, mode, thread count and part (clean threads and peak RSS)
results=$out/results.jsonl
: > "$results"
{
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB;"
    echo "$(. /etc/os-release && echo "$PRETTY_NAME"), $(g++ --version | head -1), $("$py" --version)."
    echo "Command: $cmdline; warm-up blocks $XGRAD_PEERS_WARMUP, timed blocks $XGRAD_PEERS_REPS;"
    echo "started $(date -u '+%Y-%m-%d %H:%M UTC'), xgrad at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')."
} > "$out/machine.txt"

one() {  # name threads command...
    local name=$1 t=$2
    shift 2
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "{\"load\": $load, \"run\": \"$name\", \"threads\": $t}" >> "$results"
    echo "== $name, $t thread(s), load $load ($(date -u +%H:%M:%S))" >&2
    if ! env OMP_NUM_THREADS="$t" OPENBLAS_NUM_THREADS="$t" MKL_NUM_THREADS="$t" \
        TORCHINDUCTOR_CACHE_DIR="$cache/inductor-t$t" "$@" >> "$results" 2> "$out/logs/$name-t$t.log"; then
        echo "{\"error\": \"$name with $t thread(s) failed, see logs/$name-t$t.log\"}" >> "$results"
        echo "   failed: see $out/logs/$name-t$t.log" >&2
    fi
}

for t in $threads; do
    one xgrad "$t" "$bench" --data "$XGRAD_PEERS_DATA" --threads "$t" --warmup "$XGRAD_PEERS_WARMUP" --reps "$XGRAD_PEERS_REPS"
    one torch-eager "$t" "$py" "$here/peer_torch.py" --mode eager --threads "$t"
    one torch-compile "$t" "$py" "$here/peer_torch.py" --mode compile --threads "$t"
    one tf-eager "$t" "$py" "$here/peer_tf.py" --mode eager --threads "$t"
    one tf-xla "$t" "$py" "$here/peer_tf.py" --mode xla --threads "$t"
done
if [[ $epoch == 1 ]]; then
    for t in $threads; do
        one xgrad-epoch "$t" "$bench" --data "$XGRAD_PEERS_DATA" --threads "$t" --part epoch
        one torch-eager-epoch "$t" "$py" "$here/peer_torch.py" --mode eager --threads "$t" --part epoch
        one torch-compile-epoch "$t" "$py" "$here/peer_torch.py" --mode compile --threads "$t" --part epoch
        one tf-eager-epoch "$t" "$py" "$here/peer_tf.py" --mode eager --threads "$t" --part epoch
        one tf-xla-epoch "$t" "$py" "$here/peer_tf.py" --mode xla --threads "$t" --part epoch
    done
fi
echo "finished $(date -u '+%Y-%m-%d %H:%M UTC')." >> "$out/machine.txt"

# --- 5. the table
"$py" "$here/combine.py" "$results" "$out/machine.txt" > "$out/table.md"
mkdir -p "$cache/results"
cp "$out/table.md" "$cache/results/latest.md"
cp "$results" "$cache/results/latest.jsonl"
cat "$out/table.md"
echo "== written to $out/table.md (and $cache/results/latest.md)" >&2
