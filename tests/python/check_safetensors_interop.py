#!/usr/bin/env python3
"""Checkpoint interop with Python's safetensors (and PyTorch when it is installed).

usage: check_safetensors_interop.py PATH/TO/safetensors_interop

1. xgrad writes a file; Python's safetensors reads it and every tensor, dtype, shape and
   metadata entry must equal what xgrad printed (BF16, which numpy lacks, is decoded by hand).
2. Python writes a file with every dtype xgrad reads; xgrad reads it and prints it back.
3. With PyTorch installed: a small CNN saved by xgrad loads strictly into the equal
   torch.nn.Sequential and computes the same outputs, and the other way round.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run_helper(helper, mode, path):
    out = subprocess.run([helper, mode, path], capture_output=True, text=True, encoding="utf-8")
    if out.returncode != 0:
        sys.exit(f"{helper} {mode} {path} failed ({out.returncode}): {out.stderr}")
    meta, tensors = {}, {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "meta":
            meta[parts[1]] = parts[2]
            continue
        _, name, dtype, shape, values = parts
        shape = tuple(int(d) for d in shape.split(",")) if shape else ()
        floating = dtype in ("F64", "F32", "F16", "BF16")
        data = [float.fromhex(v) if floating else int(v) for v in values.split(" ")] if values else []
        tensors[name] = (dtype, shape, np.array(data, dtype=np.float64 if floating else object))
    return meta, tensors


def same_values(expected, actual):
    """Exact equality as float64 (or Python ints), including the sign of zeros."""
    a = np.asarray(actual).reshape(-1)
    e = np.asarray(expected).reshape(-1)
    if a.shape != e.shape:
        return False
    if e.dtype == object:
        return all(int(x) == int(y) for x, y in zip(e, a))
    a = a.astype(np.float64)
    return bool(np.array_equal(e, a, equal_nan=True) and np.array_equal(np.signbit(e), np.signbit(a)))


def bf16_tensor(path, name):
    """Decodes a BF16 tensor straight from the file (numpy has no bfloat16)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        info = header[name]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return info["dtype"], tuple(info["shape"]), (raw.astype("<u4") << 16).view("<f4").reshape(info["shape"])


def xgrad_writes_python_reads(helper, tmp):
    path = os.path.join(tmp, "from_xgrad.safetensors")
    meta, expected = run_helper(helper, "write", path)
    check(meta == {"format": "pt", "written_by": "xgrad"}, f"printed metadata {meta}")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        check(n % 8 == 0, f"header length {n} is a multiple of 8")
        header = json.loads(f.read(n))
    check(header.get("__metadata__") == meta, "metadata in the file")
    check(set(header) - {"__metadata__"} == set(expected), "tensor names in the file")
    with safe_open(path, framework="numpy") as f:
        check(f.metadata() == meta, f"safetensors metadata {f.metadata()}")
        check(set(f.keys()) == set(expected), f"safetensors keys {sorted(f.keys())}")
        for name, (dtype, shape, values) in expected.items():
            check(header[name]["dtype"] == dtype, f"{name}: dtype {header[name]['dtype']} != {dtype}")
            if dtype == "BF16":
                _, got_shape, got = bf16_tensor(path, name)
            else:
                got = f.get_tensor(name)
                got_shape = got.shape
                check(got.dtype == NUMPY_DTYPES[dtype], f"{name}: numpy dtype {got.dtype} for {dtype}")
            check(tuple(got_shape) == shape, f"{name}: shape {got_shape} != {shape}")
            check(same_values(values, got), f"{name}: values differ")
    try:
        import torch
        from safetensors.torch import load_file
    except ImportError:
        print("PyTorch not installed: torch.load_file check skipped")
        return
    state = load_file(path)
    check(state["bfloat"].dtype == torch.bfloat16, "torch reads BF16")
    check(same_values(expected["bfloat"][2], state["bfloat"].float().numpy()), "torch BF16 values")
    check(same_values(expected["0.weight"][2], state["0.weight"].numpy()), "torch 0.weight values")
    print("PyTorch read the xgrad file")


def python_writes_xgrad_reads(helper, tmp):
    rng = np.random.default_rng(7)
    arrays = {
        "features.0.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "features.0.bias": np.array([0.0, -0.0, 1e-45, -3.5, np.inf, -np.inf, 1e38, 7.0], dtype=np.float32),
        "classifier.1.weight": rng.standard_normal((5, 4)).astype(np.float64),
        "half": np.array([0.1, -65504, 6e-8, 1.0], dtype=np.float16),
        "bn.num_batches_tracked": np.array(123456789012, dtype=np.int64),
        "ids": np.array([[-(2**31), 2**31 - 1]], dtype=np.int32),
        "short": np.array([-7, 300], dtype=np.int16),
        "tiny": np.array([-128, 127, 0], dtype=np.int8),
        "pixels": np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10,
        "mask": np.array([True, False, True]),
        "empty": np.zeros((3, 0), dtype=np.float32),
        "\u00fcnicode": np.ones(2, dtype=np.float32),
    }
    path = os.path.join(tmp, "from_python.safetensors")
    metadata = {"format": "np", "note": "caf\u00e9 \u2713"}
    save_file(arrays, path, metadata=metadata)
    meta, got = run_helper(helper, "read", path)
    check(meta == metadata, f"xgrad metadata {meta}")
    check(set(got) == set(arrays), f"xgrad names {sorted(got)}")
    names = {v: k for k, v in NUMPY_DTYPES.items()}
    for name, a in arrays.items():
        if name not in got:
            continue
        dtype, shape, values = got[name]
        check(dtype == names[a.dtype.type], f"{name}: xgrad dtype {dtype} for numpy {a.dtype}")
        check(shape == a.shape, f"{name}: xgrad shape {shape} != {a.shape}")
        expected = a.astype(np.int64) if a.dtype == np.bool_ else a
        check(same_values(expected.astype(np.float64) if values.dtype != object else expected.astype(object), values),
              f"{name}: values differ")
    try:
        import torch
        from safetensors.torch import save_file as torch_save
    except ImportError:
        return
    path = os.path.join(tmp, "from_torch.safetensors")
    w = torch.randn(4, 3).to(torch.bfloat16)
    torch_save({"w": w}, path)
    _, got = run_helper(helper, "read", path)
    check(got["w"][0] == "BF16", "xgrad reads torch BF16")
    check(same_values(w.float().numpy(), got["w"][2]), "torch BF16 values in xgrad")


def torch_models_match(helper, tmp):
    """The same small CNN in xgrad and PyTorch: weights move both ways, outputs agree."""
    try:
        import torch
        from safetensors.torch import load_file, save_file
    except ImportError:
        print("PyTorch not installed: model round trip skipped")
        return

    def make():
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                   torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 5)).eval()

    model_file, io_file, out_file = (os.path.join(tmp, n) for n in ("m.safetensors", "io.safetensors", "o.safetensors"))
    subprocess.run([helper, "model-write", model_file, io_file], check=True)
    net = make()
    net.load_state_dict(load_file(model_file))  # strict: same names and shapes, num_batches_tracked included
    io = load_file(io_file)
    with torch.no_grad():
        got = net(io["input"])
    check(torch.allclose(got, io["output"], atol=1e-5, rtol=1e-5), "PyTorch runs the xgrad model to xgrad's outputs")

    torch.manual_seed(0)
    net = make()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].num_batches_tracked.fill_(7)
    save_file(net.state_dict(), model_file)
    x = torch.randn(3, 1, 8, 8)
    save_file({"input": x}, io_file)
    subprocess.run([helper, "model-run", model_file, io_file, out_file], check=True)
    with torch.no_grad():
        want = net(x)
    check(torch.allclose(load_file(out_file)["output"], want, atol=1e-5, rtol=1e-5),
          "xgrad runs the PyTorch model to PyTorch's outputs")
    print("a PyTorch nn.Sequential and the xgrad sequential exchanged weights")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    helper = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        xgrad_writes_python_reads(helper, tmp)
        python_writes_xgrad_reads(helper, tmp)
        torch_models_match(helper, tmp)
    if failures:
        sys.exit(f"{len(failures)} interop check(s) failed")
    print("safetensors interop: all checks passed")


if __name__ == "__main__":
    main()
