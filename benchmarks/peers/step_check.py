#!/usr/bin/env python3
"""Step-by-step check of workload 5 against PyTorch: the first N batches of Fashion-MNIST in file
order (no shuffle) through the Keras-style CNN from the shared initial weights, Adam lr 1e-3.
Runs `bench_peers --part steps` and the same loop in PyTorch (float64 as well as float32), and
prints per step both losses and the largest relative gradient-norm difference, how far the
parameters are apart after step 1 and after step N, and the test accuracy of each final model
(xgrad's evaluated by xgrad and by PyTorch). With --steps 938 the loop is one whole epoch;
with --seed S the batches follow xgrad's shuffled order for seed S (xgrad's loader, as in
workload 5) instead of file order, so PyTorch trains on exactly xgrad's data order; with
--torch-seed S both follow PyTorch's order for seed S (torch.randperm, as peer_torch.py). PyTorch runs
in float64 too for runs of at most 100 steps.

    XGRAD_PEERS_DATA=~/.cache/xgrad-peers/data step_check.py BENCH_PEERS [--steps 10] [--seed S | --torch-seed S] [--out DIR]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

import common as c

ap = argparse.ArgumentParser()
ap.add_argument("bench")
ap.add_argument("--steps", type=int, default=10)
ap.add_argument("--seed", type=int, default=None, help="xgrad's shuffled order for this seed")
ap.add_argument("--torch-seed", type=int, default=None, help="PyTorch's shuffled order for this seed")
ap.add_argument("--out", default=None)
args = ap.parse_args()
out = args.out or tempfile.mkdtemp(prefix="xgrad-steps-")
os.makedirs(out, exist_ok=True)
torch.set_num_threads(1)
order_arg = []
if args.torch_seed is not None:
    np.save(os.path.join(out, "order.npy"), torch.randperm(60000, generator=torch.Generator().manual_seed(args.torch_seed)).numpy())
    order_arg = ["--order", os.path.join(out, "order.npy")]

run = subprocess.run([args.bench, "--data", c.data_dir(), "--threads", "1", "--part", "steps",
                      "--steps", str(args.steps), "--out", out]
                     + ([] if args.seed is None else ["--shuffle", "1", "--seed", str(args.seed)]) + order_arg, check=True, capture_output=True, text=True)
lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
xg, xg_eval = lines[:-1], lines[-1]


def model(dtype):
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                            torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                            torch.nn.Flatten(), torch.nn.Linear(64 * 5 * 5, 10))
    m.load_state_dict({k: torch.from_numpy(v) for k, v in c.weights("cnn_keras").items()})
    return m.to(dtype)


images, labels = c.fashion_mnist("train")
if args.seed is not None or args.torch_seed is not None:
    order = np.load(os.path.join(out, "order.npy"))
    images, labels = images[order], labels[order]


def torch_run(dtype):
    m = model(dtype)
    opt = torch.optim.Adam(m.parameters(), lr=c.EPOCH_LR)
    losses, norms, snaps = [], [], {}
    for s in range(min(args.steps, -(-len(labels) // 64))):
        x = torch.from_numpy(images[s * 64:(s + 1) * 64].astype(np.float32))
        x = ((x / 255.0 - c.FASHION_MEAN) / c.FASHION_STD).unsqueeze(1).to(dtype)
        y = torch.from_numpy(labels[s * 64:(s + 1) * 64])
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
        norms.append({k: p.grad.norm().item() for k, p in m.named_parameters()})
        opt.step()
        if s == 0:
            snaps["step1"] = {k: v.detach().double().numpy().copy() for k, v in m.state_dict().items()}
    snaps["last"] = {k: v.detach().double().numpy().copy() for k, v in m.state_dict().items()}
    return losses, norms, snaps


def accuracy(state, dtype=torch.float32):
    m = model(dtype)
    m.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in state.items()})
    test_x, test_y = c.fashion_mnist("test")
    with torch.no_grad():
        x = ((torch.from_numpy(test_x.astype(np.float32)) / 255.0 - c.FASHION_MEAN) / c.FASHION_STD).unsqueeze(1)
        out = m(x.to(dtype))
        return (out.argmax(1) == torch.from_numpy(test_y)).double().mean().item(), \
            F.cross_entropy(out, torch.from_numpy(test_y)).item()


t32 = torch_run(torch.float32)
t64 = torch_run(torch.float64) if args.steps <= 100 else t32
ref = "f64" if args.steps <= 100 else "f32"
print(f"{'step':>4} {'xgrad loss':>12} {'torch f32':>12} {'torch ' + ref:>12}  max rel grad-norm diff xgrad/{ref} (f32/{ref})")
for s in range(len(xg)):
    if len(xg) > 20 and 10 <= s < len(xg) - 10:
        continue
    rel = lambda n: max(abs(n[k] - t64[1][s][k]) / t64[1][s][k] for k in n)  # noqa: E731
    print(f"{s + 1:>4} {xg[s]['loss']:12.7f} {t32[0][s]:12.7f} {t64[0][s]:12.7f}  {rel(xg[s]['grad_norm']):.2e} "
          f"({rel(t32[1][s]):.2e})")
for tag, name in (("step1", "xgrad_step1"), ("last", "xgrad_last")):
    x = c.read_safetensors(os.path.join(out, f"{name}.safetensors"))
    init = c.weights("cnn_keras")
    print(f"parameters after {'step 1' if tag == 'step1' else f'step {args.steps}'}: |p - p_torch| / |p_torch - p0| (torch {ref}) "
          "xgrad (torch f32)")
    for k in t64[2][tag]:
        p_ref, moved = t64[2][tag][k], np.linalg.norm(t64[2][tag][k] - init[k])
        print(f"  {k:10} {np.linalg.norm(x[k] - p_ref) / moved:.2e} ({np.linalg.norm(t32[2][tag][k] - p_ref) / moved:.2e})")
x_last = c.read_safetensors(os.path.join(out, "xgrad_last.safetensors"))
print(f"test accuracy / loss after {len(xg)} steps:")
print(f"  xgrad, evaluated by xgrad:   {xg_eval['test_accuracy']:.4f} / {xg_eval['test_loss']:.4f}")
print("  xgrad, evaluated by PyTorch: %.4f / %.4f" % accuracy(x_last))
print("  PyTorch float32:             %.4f / %.4f" % accuracy(t32[2]["last"]))
if args.steps <= 100:
    print("  PyTorch float64:             %.4f / %.4f" % accuracy(t64[2]["last"], torch.float64))
