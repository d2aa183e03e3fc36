#!/usr/bin/env python3
"""PyTorch side of the LSTM peer benchmark (benchmarks/peers/lstm.sh): one torch.nn.LSTM (or
GRU) layer, batch 64, sequence 50, input 128, hidden 256, float32, time-major; forward +
backward (input and weight gradients) against a fixed upstream gradient, eager or under
torch.compile. Prints "torch-<mode> <kind> threads=N median_ms=... min_ms=..." (compilation
happens in the untimed warm-up). --clock cpu times the calling thread's CPU time (time.thread_time)
instead of the wall clock; at 1 thread all the work runs on that thread.

    peer_torch_lstm.py --mode eager|compile --threads N [--kind lstm|gru] [--clock wall|cpu]
"""
import argparse
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["eager", "compile"], required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--kind", choices=["lstm", "gru"], default="lstm")
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--reps", type=int, default=15)
ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.set_num_interop_threads(args.threads)
torch.manual_seed(1)

T, B, I, H = 50, 64, 128, 256
m = (torch.nn.LSTM if args.kind == "lstm" else torch.nn.GRU)(I, H)
x = torch.randn(T, B, I, requires_grad=True)
g = torch.randn(T, B, H)


def fwd(x):
    return m(x)[0]


f = torch.compile(fwd, dynamic=False) if args.mode == "compile" else fwd


now = time.thread_time if args.clock == "cpu" else time.perf_counter


def step():
    x.grad = None
    m.zero_grad(set_to_none=True)
    f(x).backward(g)


for _ in range(args.warmup):
    step()
ms = []
for _ in range(args.reps):
    t0 = now()
    step()
    ms.append((now() - t0) * 1e3)
ms.sort()
print("torch-%s %s threads=%d median_ms=%.3f min_ms=%.3f" % (args.mode, args.kind, args.threads, ms[len(ms) // 2], ms[0]))
