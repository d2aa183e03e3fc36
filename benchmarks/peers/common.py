"""Shared by the Python sides of the peer benchmarks: the timing protocol, the workloads'
shapes, the input files (written once by prepare.py, read by every framework), result lines.

The C++ side (benchmarks/bench_peers.cpp) uses the same constants; every result line carries
its warm-up/rep/iteration counts so the combiner can check that all frameworks ran alike.
"""
import gzip
import json
import os
import resource
import struct
import sys
import time

import numpy as np

# timing protocol: WARMUP untimed blocks, then REPS timed blocks of ITERS calls each; the
# result is the median over the blocks of (block time / ITERS)
WARMUP = int(os.environ.get("XGRAD_PEERS_WARMUP", "3"))
REPS = int(os.environ.get("XGRAD_PEERS_REPS", "7"))

CHAIN_SIZES = [10, 16, 20, 24]  # log2 n
CHAIN_ITERS = {10: 200, 16: 20, 20: 2, 24: 1}
TINY_ITERS = 1000
MLP_BATCHES = [64, 256]
MLP_ITERS = {64: 20, 256: 5}
CNN_BATCH = 64
CNN_ITERS = {"keras": 2, "torch": 5}
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
EPOCH_BATCH = 64
EPOCH_LR = 1e-3
MLP_LR, MLP_MOMENTUM = 0.01, 0.9

# layer lists, as torch.nn.Sequential indices (the names in the weight files)
MLP_LAYERS = [("linear", 0, 784, 256), ("linear", 2, 256, 128), ("linear", 4, 128, 10)]
CNN_LAYERS = {
    # conv 32 3x3, relu, pool, conv 64 3x3, relu, pool, flatten, dense 10
    "keras": [("conv", 0, 1, 32, 3), ("conv", 3, 32, 64, 3), ("linear", 7, 64 * 5 * 5, 10)],
    # conv 6 5x5, relu, pool, conv 16 5x5, relu, pool, flatten, fc 120, fc 84, fc 10
    "torch": [("conv", 0, 1, 6, 5), ("conv", 3, 6, 16, 5), ("linear", 7, 16 * 4 * 4, 120),
              ("linear", 9, 120, 84), ("linear", 11, 84, 10)],
}
CNN_FLAT = {"keras": (64, 5, 5), "torch": (16, 4, 4)}  # C, H, W before flatten


def data_dir():
    return os.environ["XGRAD_PEERS_DATA"]


def fashion_dir():
    return os.environ.get("XGRAD_DATA_DIR", "/usr/share/datasets/fashion-mnist")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_mnist(split):
    d, p = fashion_dir(), "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(d, f"{p}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(d, f"{p}-labels-idx1-ubyte.gz")).astype(np.int64)
    return images, labels


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(info["shape"]).copy()
    return out


def load(name):
    return np.load(os.path.join(data_dir(), name))


def weights(model):
    return read_safetensors(os.path.join(data_dir(), f"{model}.safetensors"))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Reporter:
    def __init__(self, framework, mode, threads, version):
        self.base = {"framework": framework, "mode": mode, "threads": threads, "version": version}

    def emit(self, **kw):
        line = dict(self.base, **kw)
        print(json.dumps(line), flush=True)

    def timed(self, workload, size, fn, iters, sync=lambda: None):
        """Runs fn() in WARMUP + REPS blocks of iters calls; emits the median per call."""
        first = None
        for w in range(WARMUP):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            sync()
            if w == 0:
                first = time.perf_counter() - t0
        times = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            sync()
            times.append((time.perf_counter() - t0) / iters)
        times.sort()
        self.emit(workload=workload, size=size, median_s=times[len(times) // 2], min_s=times[0],
                  first_block_s=first, warmup=WARMUP, reps=REPS, iters=iters)


def log(*a):
    print(*a, file=sys.stderr, flush=True)
