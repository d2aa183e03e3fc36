#!/usr/bin/env bash
# Workload 5 (one Fashion-MNIST epoch of the Keras-style CNN, Adam lr 1e-3, batch 64, from the
# shared initial weights, then the test accuracy) for several data-order seeds per framework:
# one process per framework and seed. Prints, per framework, the test accuracy's mean, min,
# max and standard deviation and the training time's median over the seeds.
#
#   benchmarks/peers/epoch_seeds.sh [--seeds 5] [--first 0] [--threads 2] [--frameworks "xgrad torch-eager"]
#
#   --seeds       how many seeds: first .. first+N-1 (the loader's shuffle; torch.Generator and
#                 tf.data's seed)
#   --first       the first seed
#   --threads     the thread count of every run
#   --frameworks  any of xgrad torch-eager torch-compile tf-eager tf-xla
#
# Uses what benchmarks/peers/run.sh set up (same environment variables): the virtual
# environment, the inputs in $XGRAD_PEERS_CACHE/data and the bench_peers build. Raw JSON lines
# go to $XGRAD_PEERS_OUT (default $XGRAD_PEERS_CACHE/results/seeds-<UTC time>).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
seeds=5
first=0
threads=2
frameworks="xgrad torch-eager"
while [[ $# -gt 0 ]]; do
    case $1 in
        --seeds) seeds=$2; shift ;;
        --first) first=$2; shift ;;
        --threads) threads=$2; shift ;;
        --frameworks) frameworks=$2; shift ;;
        *) echo "usage: $0 [--seeds N] [--first S] [--threads N] [--frameworks \"xgrad torch-eager ...\"]" >&2; exit 2 ;;
    esac
    shift
done

cache=${XGRAD_PEERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xgrad-peers}
build=${XGRAD_PEERS_BUILD:-$root/build-peers}
out=${XGRAD_PEERS_OUT:-$cache/results/seeds-$(date -u +%Y%m%dT%H%M%SZ)}
export XGRAD_PEERS_DATA=$cache/data
py=$cache/venv/bin/python
if [[ ! -x $py || ! -f $build/CMakeCache.txt ]]; then
    echo "run benchmarks/peers/run.sh once first (it sets up $cache/venv and $build)" >&2
    exit 1
fi
cmake --build "$build" --target bench_peers >&2
(cd "$here" && "$py" prepare.py)
mkdir -p "$out/logs"
results=$out/results.jsonl
: > "$results"

for ((s = first; s < first + seeds; ++s)); do
    for f in $frameworks; do
        case $f in
            xgrad) cmd=("$build/benchmarks/bench_peers" --data "$XGRAD_PEERS_DATA") ;;
            torch-eager | torch-compile) cmd=("$py" "$here/peer_torch.py" --mode "${f#torch-}") ;;
            tf-eager | tf-xla) cmd=("$py" "$here/peer_tf.py" --mode "${f#tf-}") ;;
            *) echo "unknown framework $f" >&2; exit 2 ;;
        esac
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "== $f seed $s, $threads thread(s), load $load ($(date -u +%H:%M:%S))" >&2
        line=$(env OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" \
            TORCHINDUCTOR_CACHE_DIR="$cache/inductor-t$threads" \
            "${cmd[@]}" --threads "$threads" --part epoch --seed "$s" 2> "$out/logs/$f-seed$s.log" | tail -1)
        echo "{\"run\": \"$f\", \"seed\": $s, \"load\": $load, \"result\": $line}" | tee -a "$results" >&2
    done
done

"$py" - "$results" "$threads" <<'PY'
import json, statistics as st, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    runs.setdefault(r["run"], []).append(r)
print(f"Workload 5 over seeds, {sys.argv[2]} thread(s): test accuracy and training time per framework\n")
print("| framework | seeds | accuracy mean | min | max | std | time median (s) | time min (s) | load |")
print("|---|---|---|---|---|---|---|---|---|")
for name, rs in runs.items():
    acc = [r["result"]["test_accuracy"] for r in rs]
    t = [r["result"]["median_s"] for r in rs]
    load = [r["load"] for r in rs]
    print(f"| {name} | {len(rs)} | {st.mean(acc):.4f} | {min(acc):.4f} | {max(acc):.4f} | "
          f"{st.stdev(acc) if len(acc) > 1 else 0:.4f} | {st.median(t):.1f} | {min(t):.1f} | {min(load):.2f}-{max(load):.2f} |")
PY
echo "== raw lines in $results" >&2
