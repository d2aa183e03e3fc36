#!/usr/bin/env python3
"""xgrad against PyTorch (eager and torch.compile) on one transformer encoder layer
(d_model 256, 4 heads, feed-forward 1024, post-norm, ReLU, dropout 0, float32) with a
{32, 128, 256} batch: forward + backward with a fixed upstream gradient, at 1 and 2 threads.
Prints one table of median milliseconds per step and the speed-ups of xgrad.

    cmake --build build --target bench_attention
    python3 benchmarks/peers/encoder_layer.py [--bench build/benchmarks/bench_attention]
                                              [--threads 1 2] [--reps 7] [--no-compile]

Each framework and thread count runs in its own process, one after the other, so the figures
are comparable; the machine's load average is printed with them (noisy machines: compare the
ratios, and rerun)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

B, S, E, H, F = 32, 128, 256, 4, 1024


def torch_worker(mode, threads, reps):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=F, dropout=0.0, batch_first=True).train()
    x = torch.randn(B, S, E, requires_grad=True)
    g = torch.randn(B, S, E)
    fwd = torch.compile(layer, dynamic=False) if mode == "compile" else layer

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        fwd(x).backward(g)

    t0 = time.perf_counter()
    step()  # includes the compilation under torch.compile
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    times, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"ms": 1e3 * statistics.median(times), "cpu_ms": 1e3 * statistics.median(cpu), "first_s": first,
                      "torch": torch.__version__}))


def run_torch(mode, threads, reps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", mode, "--threads", str(threads), "--reps", str(reps)],
                             env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def run_xgrad(bench, threads, reps):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    # OpenBLAS 0.3.21 (Debian 12) does not know newer Xeons and falls back to its SSE3
    # "Prescott" kernels (3-4x slower GEMMs); name the AVX-512 kernels unless the user did.
    if avx512() and not env.get("OPENBLAS_CORETYPE"):
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    out = subprocess.run([bench, f"--benchmark_filter=threads:{threads}/", f"--benchmark_repetitions={reps}",
                          "--benchmark_format=json"], env=env, capture_output=True, text=True, check=True)
    runs = [b for b in json.loads(out.stdout)["benchmarks"] if b.get("run_type") == "iteration"]
    # milliseconds (the benchmark's unit); cpu_time is the calling thread's, all the work at 1 thread
    return statistics.median(b["real_time"] for b in runs), statistics.median(b["cpu_time"] for b in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "../../build/benchmarks/bench_attention"))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--worker", choices=["eager", "compile"])
    args = ap.parse_args()
    if args.worker:
        torch_worker(args.worker, args.threads[0], args.reps)
        return
    print(f"# encoder layer fwd+bwd, batch {B}, seq {S}, d_model {E}, {H} heads, ff {F}, float32; "
          f"load before: {os.getloadavg()[0]:.2f}")
    print("| threads | xgrad ms | torch eager ms | torch.compile ms | eager / xgrad | compile / xgrad | load |")
    print("|---|---|---|---|---|---|---|")
    cpu_rows = []
    for t in args.threads:
        xg, xg_cpu = run_xgrad(args.bench, t, args.reps)
        eager, err_e = run_torch("eager", t, args.reps)
        comp, err_c = (None, "skipped") if args.no_compile else run_torch("compile", t, args.reps)
        e_ms = f"{eager['ms']:.1f}" if eager else f"({err_e})"
        c_ms = f"{comp['ms']:.1f} (first step {comp['first_s']:.0f} s)" if comp else f"({err_c})"
        e_r = f"{eager['ms'] / xg:.2f}x" if eager else "-"
        c_r = f"{comp['ms'] / xg:.2f}x" if comp else "-"
        print(f"| {t} | {xg:.1f} | {e_ms} | {c_ms} | {e_r} | {c_r} | {os.getloadavg()[0]:.2f} |", flush=True)
        if t == 1:
            cpu_rows.append((xg_cpu, eager["cpu_ms"] if eager else None, comp["cpu_ms"] if comp else None))
    for xg_cpu, e_cpu, c_cpu in cpu_rows:  # a busy machine inflates wall time, much less CPU time
        fmt = lambda v: f"{v:.1f} ms ({v / xg_cpu:.2f}x)" if v else "-"
        print(f"\nCPU time per step at 1 thread: xgrad {xg_cpu:.1f} ms, torch eager {fmt(e_cpu)}, torch.compile {fmt(c_cpu)}")


if __name__ == "__main__":
    main()
