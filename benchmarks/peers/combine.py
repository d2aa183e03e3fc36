#!/usr/bin/env python3
"""Combines the JSON lines of one peer-benchmark run into one Markdown table of medians and
speed-ups, plus the epoch/memory table and a check of the targets.

    combine.py RESULTS.jsonl [MACHINE.txt] > table.md

Speed-up = peer time / xgrad time for the same workload, size and thread count, measured in
the same run: above 1 xgrad is faster, below 1 the peer is."""
import json
import sys

PEERS = ["torch eager", "torch compile", "tf eager", "tf xla"]


def fmt_t(s):
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
    res = [r for r in rows if "workload" in r]
    errors = [r for r in rows if "error" in r]
    loads = [r["load"] for r in rows if "load" in r]
    versions = {}
    for r in res:
        versions[r["framework"]] = r["version"]
    by = {(r["workload"], r["size"], r["threads"], r["mode"]): r for r in res}
    threads = sorted({r["threads"] for r in res})
    order = [("chain", f"2^{k}") for k in (10, 16, 20, 24)] + [("tiny", "1"), ("mlp", "batch 64"),
                                                                  ("mlp", "batch 256"), ("cnn", "keras batch 64"),
                                                                  ("cnn", "torch batch 64")]
    names = {"chain": "1 chain fwd+bwd", "tiny": "2 tiny graph fwd+bwd", "mlp": "3 MLP step (SGD mom.)",
             "cnn": "4 CNN step (Adam)"}
    out = []
    p = out.append
    if len(sys.argv) > 2:
        p(open(sys.argv[2]).read().rstrip() + "\n")
    p("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + "\n")
    if loads:
        p(f"Load average (1 min) sampled before each process: min {min(loads):.2f}, max {max(loads):.2f}\n")
    p("### Workloads 1–4: time per call (median of the timed blocks, wall clock) and speed-up\n")
    p("Speed-up = peer time / xgrad time, same run (> 1: xgrad faster).\n")
    p("| workload | size | thr | xgrad | " + " | ".join(PEERS) + " | " +
      " | ".join(f"× vs {q}" for q in PEERS) + " |")
    p("|---|---|---|---|" + "---|" * (2 * len(PEERS)))
    checks, acc_checks = [], []
    for t in threads:
        for wl, size in order:
            x = by.get((wl, size, t, "xgrad"))
            if x is None and not any((wl, size, t, q) in by for q in PEERS):
                continue
            xs = x["median_s"] if x else None
            cells, ratios = [], []
            for q in PEERS:
                r = by.get((wl, size, t, q))
                cells.append(fmt_t(r["median_s"]) if r else "–")
                if r and xs:
                    sp = r["median_s"] / xs
                    ratios.append(f"**{sp:.2f}**" if sp >= 1 else f"{sp:.2f}")
                    if wl in ("chain", "tiny", "mlp") and q in ("torch eager", "torch compile"):
                        checks.append((wl, size, t, q, sp, 3.0 if q == "torch eager" else 1.5))
                else:
                    ratios.append("–")
            p(f"| {names[wl]} | {size} | {t} | {fmt_t(xs)} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
            have = [(by[(wl, size, t, q)]["median_s"], q) for q in PEERS if (wl, size, t, q) in by]
            if wl == "cnn" and xs and have:
                best = min(have)
                checks.append((wl, size, t, "best peer (" + best[1] + ")", best[0] / xs, 1.0))
    p("")
    comp = [(k, r) for k, r in by.items() if r["mode"] in ("torch compile", "tf xla") and k[0] != "epoch"]
    if comp:
        p("First (warm-up) block of the compiling modes, which includes tracing and compilation "
          "(not in the medians above):\n")
        p("| workload | size | thr | torch compile | tf xla |")
        p("|---|---|---|---|---|")
        for t in threads:
            for wl, size in order:
                a, b = by.get((wl, size, t, "torch compile")), by.get((wl, size, t, "tf xla"))
                if a or b:
                    p(f"| {names[wl]} | {size} | {t} | {fmt_t(a['first_block_s']) if a else '–'} | "
                      f"{fmt_t(b['first_block_s']) if b else '–'} |")
        p("")
    ep = [r for r in res if r["workload"] == "epoch"]
    if ep:
        p("### Workloads 5–6: one epoch of Fashion-MNIST, Keras-style CNN, Adam, batch 64\n")
        p("Training wall time of the epoch (for the compiling modes including their compilation), test "
          "accuracy on the 10,000 test images after it, peak resident memory of the whole process.\n")
        p("| thr | framework | epoch time | xgrad speed-up | test accuracy | Δ accuracy vs xgrad (pp) | "
          "peak RSS | xgrad RSS / peer RSS |")
        p("|---|---|---|---|---|---|---|---|")
        for t in threads:
            x = by.get(("epoch", "keras batch 64", t, "xgrad"))
            for m in ["xgrad"] + PEERS:
                r = by.get(("epoch", "keras batch 64", t, m))
                if not r:
                    continue
                sp = f"{r['median_s'] / x['median_s']:.2f}" if x and m != "xgrad" else "–"
                da = f"{(r['test_accuracy'] - x['test_accuracy']) * 100:+.2f}" if x and m != "xgrad" else "–"
                mr = f"{x['peak_rss_mb'] / r['peak_rss_mb']:.2f}" if x and m != "xgrad" else "–"
                p(f"| {t} | {m} | {r['median_s']:.1f} s | {sp} | {r['test_accuracy']:.4f} | {da} | "
                  f"{r['peak_rss_mb']:.0f} MB | {mr} |")
            if x:
                peers = [by[("epoch", "keras batch 64", t, q)] for q in PEERS if ("epoch", "keras batch 64", t, q) in by]
                if peers:
                    best = min(peers, key=lambda r: r["median_s"])
                    checks.append(("epoch", "keras", t, "best peer (" + best["mode"] + ")",
                                   best["median_s"] / x["median_s"], 1.0))
                    gap = max(abs(r["test_accuracy"] - x["test_accuracy"]) * 100 for r in peers)
                    acc_checks.append((t, gap))
                    for r in peers:
                        if r["mode"].startswith("torch"):
                            checks.append(("memory", "epoch", t, r["mode"], r["peak_rss_mb"] / x["peak_rss_mb"], 2.0))
        p("")
    if checks:
        p("### Targets\n")
        p("| what | size | thr | against | measured | target | |")
        p("|---|---|---|---|---|---|---|")
        for wl, size, t, q, v, target in checks:
            what = "peak RSS: peer / xgrad" if wl == "memory" else f"{wl} speed-up"
            p(f"| {what} | {size} | {t} | {q} | {v:.2f}× | ≥ {target:g}× | {'met' if v >= target else 'missed'} |")
        for t, gap in acc_checks:
            p(f"| epoch accuracy: largest gap to a peer | keras | {t} | all peers | {gap:.2f} pp | ≤ 0.5 pp | "
              f"{'met' if gap <= 0.5 else 'missed'} |")
        p("")
    for e in errors:
        p(f"- failed: {e['error']}")
    print("\n".join(out))


main()
