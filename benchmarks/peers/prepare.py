#!/usr/bin/env python3
"""Writes the inputs every framework reads, once, into $XGRAD_PEERS_DATA: the chain's x and w
(2^24 floats each; smaller sizes use a prefix), the MLP and CNN batches, and the initial weights
of the MLP and both CNNs (safetensors, torch.nn.Sequential names and layouts; PyTorch's default
initialization U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases)."""
import os

import numpy as np

import common as c

out = c.data_dir()
os.makedirs(out, exist_ok=True)
stamp = os.path.join(out, "ready-v1")
if os.path.exists(stamp):
    raise SystemExit(0)
rng = np.random.default_rng(1234)
n = 1 << max(c.CHAIN_SIZES)
np.save(os.path.join(out, "chain_x.npy"), rng.standard_normal(n, dtype=np.float32))
np.save(os.path.join(out, "chain_w.npy"), rng.standard_normal(n, dtype=np.float32))
for b in c.MLP_BATCHES:
    np.save(os.path.join(out, f"mlp_x_{b}.npy"), rng.standard_normal((b, 784), dtype=np.float32))
    np.save(os.path.join(out, f"mlp_y_{b}.npy"), rng.integers(0, 10, b).astype(np.int64))
images, labels = c.fashion_mnist("train")
x = (images[:c.CNN_BATCH].astype(np.float32) / 255.0 - c.FASHION_MEAN) / c.FASHION_STD
np.save(os.path.join(out, f"cnn_x_{c.CNN_BATCH}.npy"), x.reshape(c.CNN_BATCH, 1, 28, 28))
np.save(os.path.join(out, f"cnn_y_{c.CNN_BATCH}.npy"), labels[:c.CNN_BATCH])


def init(layers):
    t = {}
    for layer in layers:
        if layer[0] == "linear":
            _, i, fin, fout = layer
            shape = (fout, fin)
        else:
            _, i, cin, cout, k = layer
            fin, shape = cin * k * k, (cout, cin, k, k)
        bound = 1.0 / np.sqrt(fin)
        t[f"{i}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        t[f"{i}.bias"] = rng.uniform(-bound, bound, shape[0]).astype(np.float32)
    return t


c.write_safetensors(os.path.join(out, "mlp.safetensors"), init(c.MLP_LAYERS))
for name, layers in c.CNN_LAYERS.items():
    c.write_safetensors(os.path.join(out, f"cnn_{name}.safetensors"), init(layers))
open(stamp, "w").close()
