#!/usr/bin/env python3
"""Writes PyTorch reference values for xgrad's dense ops (matmul, linear, conv2d, pooling).

    python3 -m pip install torch numpy       # the CPU is enough
    python3 tests/data/gen_dense_reference.py

Output: tests/data/dense_{matmul,conv,pool}.txt, read by tests/test_{matmul,conv,pool}.cpp.
Every case stores its inputs, an upstream gradient `up`, the output `y` and the gradients
`d<input>` of sum(y * up), all computed in float64 from a fixed seed.

File format (text): lines starting with '#' are comments; each tensor is one header line
    <case>.<name> <rank> <dim0> ... <dimN-1>
followed by one line holding its elements in row-major order (%.15g).
"""
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20240601)


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float64)


class Writer:
    def __init__(self, name):
        self.path = os.path.join(HERE, name)
        self.lines = [f"# PyTorch {torch.__version__} reference values, written by gen_dense_reference.py"]

    def tensor(self, key, t):
        t = t.detach().contiguous()
        dims = " ".join(str(d) for d in t.shape)
        self.lines.append(f"{key} {t.dim()} {dims}".rstrip())
        self.lines.append(" ".join("%.15g" % v for v in t.reshape(-1).tolist()))

    def case(self, name, fn, **inputs):
        """Evaluates fn(**inputs), its gradients against a random upstream, and stores all."""
        leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
        y = fn(**leaves)
        up = rnd(*y.shape)
        (y * up).sum().backward()
        for k, v in leaves.items():
            self.tensor(f"{name}.{k}", v)
        self.tensor(f"{name}.up", up)
        self.tensor(f"{name}.y", y)
        for k, v in leaves.items():
            self.tensor(f"{name}.d{k}", v.grad)

    def save(self):
        with open(self.path, "w") as f:
            f.write("\n".join(self.lines) + "\n")
        print(f"wrote {self.path} ({os.path.getsize(self.path)} bytes)")


def matmul_cases():
    w = Writer("dense_matmul.txt")
    w.case("mm2d", lambda a, b: a @ b, a=rnd(3, 5), b=rnd(5, 4))
    w.case("mm_batch_x_2d", lambda a, b: a @ b, a=rnd(2, 3, 5), b=rnd(5, 4))
    w.case("mm_broadcast_batch", lambda a, b: a @ b, a=rnd(1, 3, 5), b=rnd(2, 5, 4))
    w.case("mm_vec_x_batch", lambda a, b: a @ b, a=rnd(5), b=rnd(2, 5, 3))
    w.case("mm_mat_x_vec", lambda a, b: a @ b, a=rnd(4, 5), b=rnd(5))
    w.case("linear", lambda x, W, b: F.linear(x, W, b), x=rnd(2, 4, 6), W=rnd(3, 6), b=rnd(3))
    acts = {"relu": F.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu}
    for name, act in acts.items():
        w.case(f"linear_{name}", lambda x, W, b, act=act: act(F.linear(x, W, b)), x=rnd(5, 6), W=rnd(7, 6), b=rnd(7))
        w.case(f"{name}_mm_bias", lambda a, b, c, act=act: act(a @ b + c), a=rnd(5, 6), b=rnd(6, 7), c=rnd(7))
    w.save()


def conv_cases():
    w = Writer("dense_conv.txt")
    w.case("stride2_pad1", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
           x=rnd(2, 3, 7, 5), w=rnd(4, 3, 3, 2), b=rnd(4))
    w.case("groups_dilation", lambda x, w, b: F.conv2d(x, w, b, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2),
           x=rnd(2, 4, 6, 7), w=rnd(6, 2, 3, 3), b=rnd(6))
    w.case("pointwise_groups_batch1", lambda x, w: F.conv2d(x, w, groups=3), x=rnd(1, 6, 5, 5), w=rnd(3, 2, 1, 1))
    w.case("lenet_relu", lambda x, w, b: F.relu(F.conv2d(x, w, b, padding=2)), x=rnd(2, 1, 7, 7), w=rnd(3, 1, 5, 5),
           b=rnd(3))
    w.case("depthwise_stride3", lambda x, w, b: torch.tanh(F.conv2d(x, w, b, stride=3, padding=2, dilation=2, groups=4)),
           x=rnd(1, 4, 9, 8), w=rnd(4, 1, 3, 3), b=rnd(4))
    w.save()


def pool_cases():
    w = Writer("dense_pool.txt")
    x = lambda: rnd(2, 2, 7, 6)
    w.case("max2", lambda x: F.max_pool2d(x, 2), x=x())
    w.case("max3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), x=x())
    w.case("max_3x2_s12_p10", lambda x: F.max_pool2d(x, (3, 2), (1, 2), (1, 0)), x=x())
    w.case("avg3_s2_p1", lambda x: F.avg_pool2d(x, 3, 2, 1), x=x())
    w.case("avg3_s2_p1_exclude_pad", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), x=x())
    w.case("avg2_unbatched", lambda x: F.avg_pool2d(x, 2), x=rnd(3, 5, 4))
    w.case("adaptive_3x4", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), x=x())
    w.case("adaptive_5x9", lambda x: F.adaptive_avg_pool2d(x, (5, 9)), x=x())
    w.save()


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    matmul_cases()
    conv_cases()
    pool_cases()
