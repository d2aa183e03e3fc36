#!/usr/bin/env python3
"""PyTorch side of benchmarks/bench_mlp.cpp: the same MLP 784-256-128-10 training step (ReLU,
cross-entropy, SGD momentum 0.9, float32, CPU) at batch 64 and 256 on 1 and 2 threads, in
eager mode. Prints the median and best step time over `--reps` timed blocks, as wall time and
as CPU time of the process (all threads), like bench_mlp on a shared machine.

    python3 benchmarks/bench_mlp_torch.py [--reps 7] [--steps 50]
"""
import argparse
import time

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--reps", type=int, default=7)
parser.add_argument("--steps", type=int, default=50)
args = parser.parse_args()

torch.manual_seed(0)
for threads in (1, 2):
    torch.set_num_threads(threads)
    for batch in (64, 256):
        model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                    torch.nn.ReLU(), torch.nn.Linear(128, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(batch, 784)
        y = torch.randint(0, 10, (batch,))

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        for _ in range(10):
            step()
        wall, cpu = [], []
        for _ in range(args.reps):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step()
            wall.append((time.perf_counter() - t0) / args.steps)
            cpu.append((time.process_time() - c0) / args.steps)
        wall.sort()
        cpu.sort()
        print(f"torch {torch.__version__} batch {batch:3d} threads {threads}: wall median {wall[len(wall) // 2] * 1e6:8.1f} us "
              f"best {wall[0] * 1e6:8.1f} us; cpu median {cpu[len(cpu) // 2] * 1e6:8.1f} us best {cpu[0] * 1e6:8.1f} us "
              f"= {batch / cpu[0]:8.0f} samples per CPU-second")
