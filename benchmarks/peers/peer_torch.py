#!/usr/bin/env python3
"""PyTorch side of the peer benchmarks: the workloads of benchmarks/bench_peers.cpp, eager or
under torch.compile (Inductor), with the same inputs, initial weights and timing protocol.

    peer_torch.py --mode eager|compile --threads N --part micro|epoch

Under torch.compile the model's forward and loss (and, through AOTAutograd, their backward)
are compiled; the optimizer step runs eagerly. The first block of each workload includes the
compilation and is reported as first_block_s, never in the timed blocks."""
import argparse
import os
import time

import common as c

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["eager", "compile"], required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--part", choices=["micro", "epoch"], default="micro")
ap.add_argument("--seed", type=int, default=0, help="the epoch's data order")
args = ap.parse_args()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(args.threads)
rep = c.Reporter("torch", "torch " + args.mode, args.threads, torch.__version__)


def maybe_compile(fn):
    return torch.compile(fn, dynamic=False) if args.mode == "compile" else fn


def mlp():
    return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                               torch.nn.ReLU(), torch.nn.Linear(128, 10))


def cnn(name):
    if name == "keras":
        return torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                   torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                   torch.nn.Flatten(), torch.nn.Linear(64 * 5 * 5, 10))
    return torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(16 * 4 * 4, 120), torch.nn.ReLU(),
                               torch.nn.Linear(120, 84), torch.nn.ReLU(), torch.nn.Linear(84, 10))


def with_weights(model, name):
    model.load_state_dict({k: torch.from_numpy(v) for k, v in c.weights(name).items()})
    return model


def train_step(model, opt, x, y):
    loss_fn = maybe_compile(lambda x, y: F.cross_entropy(model(x), y))

    def step():
        opt.zero_grad()
        loss_fn(x, y).backward()
        opt.step()
    return step


def micro():
    cx, cw = torch.from_numpy(c.load("chain_x.npy")), torch.from_numpy(c.load("chain_w.npy"))

    def chain(workload, n, iters, size):
        x = cx[:n].clone().requires_grad_()
        w = cw[:n].clone().requires_grad_()
        b = torch.zeros(1, requires_grad=True)
        f = maybe_compile(lambda x, w, b: torch.sum(torch.tanh(x * w + b) * torch.sigmoid(x)))

        def run():
            x.grad = w.grad = b.grad = None
            f(x, w, b).backward()
        rep.timed(workload, size, run, iters)

    for lg in c.CHAIN_SIZES:
        chain("chain", 1 << lg, c.CHAIN_ITERS[lg], f"2^{lg}")
    chain("tiny", 1, c.TINY_ITERS, "1")

    for batch in c.MLP_BATCHES:
        model = with_weights(mlp(), "mlp")
        opt = torch.optim.SGD(model.parameters(), lr=c.MLP_LR, momentum=c.MLP_MOMENTUM)
        x = torch.from_numpy(c.load(f"mlp_x_{batch}.npy"))
        y = torch.from_numpy(c.load(f"mlp_y_{batch}.npy"))
        rep.timed("mlp", f"batch {batch}", train_step(model, opt, x, y), c.MLP_ITERS[batch])

    x = torch.from_numpy(c.load(f"cnn_x_{c.CNN_BATCH}.npy"))
    y = torch.from_numpy(c.load(f"cnn_y_{c.CNN_BATCH}.npy"))
    for name in ("keras", "torch"):
        model = with_weights(cnn(name), f"cnn_{name}")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        rep.timed("cnn", f"{name} batch {c.CNN_BATCH}", train_step(model, opt, x, y), c.CNN_ITERS[name])


def epoch():
    # what a user writes: tensors in memory, shuffled mini-batches, Adam, then evaluate.
    # Images stay uint8 and are normalized per batch (as xgrad's loader does).
    train_x, train_y = (torch.from_numpy(a) for a in c.fashion_mnist("train"))
    test_x, test_y = (torch.from_numpy(a) for a in c.fashion_mnist("test"))

    def prep(u8):
        return ((u8.float() / 255.0 - c.FASHION_MEAN) / c.FASHION_STD).unsqueeze(1)

    model = with_weights(cnn("keras"), "cnn_keras")
    opt = torch.optim.Adam(model.parameters(), lr=c.EPOCH_LR)
    loss_fn = maybe_compile(lambda x, y: F.cross_entropy(model(x), y))
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    model.train()
    order = torch.randperm(len(train_x), generator=gen)
    first = None
    for i in range(0, len(order), c.EPOCH_BATCH):
        idx = order[i:i + c.EPOCH_BATCH]
        opt.zero_grad()
        loss_fn(prep(train_x[idx]), train_y[idx]).backward()
        opt.step()
        if first is None:
            first = time.perf_counter() - t0
    train_s = time.perf_counter() - t0
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(test_x), 256):
            out = model(prep(test_x[i:i + 256]))
            loss_sum += F.cross_entropy(out, test_y[i:i + 256], reduction="sum").item()
            correct += (out.argmax(1) == test_y[i:i + 256]).sum().item()
    rep.emit(workload="epoch", size="keras batch 64", median_s=train_s, first_block_s=first,
             test_accuracy=correct / len(test_x), test_loss=loss_sum / len(test_x), peak_rss_mb=c.peak_rss_mb(),
             warmup=0, reps=1, iters=1)


micro() if args.part == "micro" else epoch()
