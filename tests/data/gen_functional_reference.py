#!/usr/bin/env python3
"""Writes tests/data/functional_reference.txt: inputs, outputs and gradients of xgrad's
functional ops (softmax, losses, norms, embedding, shape ops) computed by PyTorch in float64.

    pip install torch numpy
    python3 tests/data/gen_functional_reference.py

The file is committed, so the tests never need torch. Format, one record per two lines:

    <name> <rank> <d0> ... <d{rank-1}>
    <values in row-major order, %.17g>

Names are "<case>.<what>": inputs (x, g = upstream gradient, labels ...), outputs (y) and
gradients (dx, dgamma ...). Labels and indices are stored as numbers too.
"""
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20240611)
torch.set_default_dtype(torch.float64)

records = []


def put(name, t):
    t = torch.as_tensor(t).detach()
    records.append((name, list(t.shape), t.reshape(-1).tolist()))


def leaf(t):
    return t.clone().requires_grad_(True)


def case_unary(case, fn, x, **kw):
    """y = fn(x); dx for a random upstream gradient g."""
    xl = leaf(x)
    y = fn(xl, **kw)
    g = torch.randn(y.shape)
    (dx,) = torch.autograd.grad(y, xl, g)
    put(case + ".x", x)
    put(case + ".g", g)
    put(case + ".y", y)
    put(case + ".dx", dx)


# --- softmax / log_softmax ------------------------------------------------------------------
for fn, nm in ((F.softmax, "softmax"), (F.log_softmax, "log_softmax")):
    case_unary(nm + "_2d_axis1", fn, torch.randn(3, 5), dim=1)
    case_unary(nm + "_2d_axis0", fn, torch.randn(3, 5), dim=0)
    case_unary(nm + "_3d_axis1", fn, torch.randn(2, 3, 4), dim=1)
    # long rows cross several SIMD batches; large magnitudes check stability
    case_unary(nm + "_wide", fn, torch.randn(2, 37) * 30 + 500, dim=1)


# --- class losses ------------------------------------------------------------------------------
def case_class(case, logits, labels, fn, y_shape_upstream=False, **kw):
    xl = leaf(logits)
    y = fn(xl, labels, **kw)
    g = torch.randn(y.shape) if y_shape_upstream else torch.ones(())
    (dx,) = torch.autograd.grad(y, xl, g)
    put(case + ".x", logits)
    put(case + ".labels", labels)
    if "weight" in kw and kw["weight"] is not None:
        put(case + ".weight", kw["weight"])
    put(case + ".g", g)
    put(case + ".y", y)
    put(case + ".dx", dx)


w5 = torch.rand(5) + 0.5
x45 = torch.randn(4, 5)
y45 = torch.tensor([1, 0, 4, 1])
case_class("ce_mean", x45, y45, F.cross_entropy)
case_class("ce_sum_weight_smooth", x45, y45, F.cross_entropy, reduction="sum", weight=w5, label_smoothing=0.2)
case_class("ce_mean_weight_smooth", x45, y45, F.cross_entropy, weight=w5, label_smoothing=0.15)
case_class("ce_none_smooth_ignore", x45, torch.tensor([1, -100, 4, 2]), F.cross_entropy, y_shape_upstream=True,
           reduction="none", label_smoothing=0.1)
case_class("ce_mean_weight_ignore", x45, torch.tensor([3, 2, -100, 3]), F.cross_entropy, weight=w5,
           ignore_index=-100, label_smoothing=0.25)
case_class("ce_3d", torch.randn(2, 4, 3), torch.tensor([[0, 3, 1], [2, 2, 0]]), F.cross_entropy,
           label_smoothing=0.1, weight=torch.rand(4) + 0.5)
case_class("nll_mean_weight", F.log_softmax(x45, 1), y45, F.nll_loss, weight=w5)
case_class("nll_sum_ignore", x45, torch.tensor([0, 7, 2, 7]), F.nll_loss, reduction="sum", ignore_index=7)


# --- elementwise losses --------------------------------------------------------------------
def case_pair(case, fn, a, b, **kw):
    al, bl = leaf(a), leaf(b)
    y = fn(al, bl, **kw)
    da, db = torch.autograd.grad(y, (al, bl))
    put(case + ".a", a)
    put(case + ".b", b)
    put(case + ".y", y)
    put(case + ".da", da)
    put(case + ".db", db)


a = torch.randn(3, 7)
b = torch.randn(3, 7)
b[0, 0] = a[0, 0]  # a tie: l1/huber gradient 0 there
case_pair("mse_mean", F.mse_loss, a, b)
case_pair("mse_sum", F.mse_loss, a, b, reduction="sum")
case_pair("l1_mean", F.l1_loss, a, b)
case_pair("huber_mean", F.huber_loss, a, b, delta=0.5)
case_pair("huber_sum", F.huber_loss, a, b, reduction="sum", delta=1.5)
logit = torch.randn(3, 7) * 4
logit[0, 0] = 0.0  # d/dx = 0.5 - t exactly at 0
logit[1, 1] = 60.0  # far tails: the stable form stays finite
logit[2, 2] = -60.0
case_pair("bce_logits_mean", F.binary_cross_entropy_with_logits, logit, torch.rand(3, 7))
case_pair("bce_logits_sum", F.binary_cross_entropy_with_logits, logit, torch.rand(3, 7), reduction="sum")


# --- batch_norm ----------------------------------------------------------------------------------
def case_bn(case, x, training):
    C = x.shape[1]
    gamma, beta = torch.rand(C) + 0.5, torch.randn(C)
    rm, rv = torch.randn(C) * 0.1, torch.rand(C) + 0.5
    put(case + ".x", x)
    put(case + ".gamma", gamma)
    put(case + ".beta", beta)
    put(case + ".running_mean", rm)
    put(case + ".running_var", rv)
    xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
    rm2, rv2 = rm.clone(), rv.clone()
    y = F.batch_norm(xl, rm2, rv2, gl, bl, training=training, momentum=0.1, eps=1e-5)
    g = torch.randn(y.shape)
    dx, dg, db = torch.autograd.grad(y, (xl, gl, bl), g)
    put(case + ".g", g)
    put(case + ".y", y)
    put(case + ".dx", dx)
    put(case + ".dgamma", dg)
    put(case + ".dbeta", db)
    put(case + ".new_running_mean", rm2)
    put(case + ".new_running_var", rv2)


case_bn("bn_train_4d", torch.randn(3, 4, 2, 3) * 2 + 1, True)
case_bn("bn_train_2d", torch.randn(5, 3), True)
case_bn("bn_eval_4d", torch.randn(2, 3, 2, 2), False)

# --- layer_norm ----------------------------------------------------------------------------------
x = torch.randn(3, 4, 5)
gamma, beta = torch.rand(4, 5) + 0.5, torch.randn(4, 5)
xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
y = F.layer_norm(xl, (4, 5), gl, bl, eps=1e-5)
g = torch.randn(y.shape)
dx, dg, db = torch.autograd.grad(y, (xl, gl, bl), g)
for k, v in dict(x=x, gamma=gamma, beta=beta, g=g, y=y, dx=dx, dgamma=dg, dbeta=db).items():
    put("ln." + k, v)

# --- embedding -----------------------------------------------------------------------------------
wt = torch.randn(6, 3)
idx = torch.tensor([[0, 5, 5], [2, 0, 1]])
wl = leaf(wt)
y = F.embedding(idx, wl)
g = torch.randn(y.shape)
(dw,) = torch.autograd.grad(y, wl, g)
for k, v in dict(weight=wt, indices=idx, g=g, y=y, dweight=dw).items():
    put("emb." + k, v)

# --- shape ops -----------------------------------------------------------------------------------
x = torch.randn(2, 3, 4)
put("shape.x", x)
put("shape.permute_201", x.permute(2, 0, 1))
put("shape.transpose_02", x.transpose(0, 2))
put("shape.flatten_1", torch.flatten(x, 1))
z = torch.randn(2, 2, 4)
put("shape.z", z)
put("shape.concat_1", torch.cat([x, z, x], 1))
parts = torch.split(x, [1, 2], dim=1)
put("shape.split_1_part1", parts[1])

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "functional_reference.txt")
with open(out, "w") as f:
    f.write("# Generated by gen_functional_reference.py with torch %s (float64). Do not edit.\n" % torch.__version__)
    for name, shape, values in records:
        f.write("%s %d%s\n" % (name, len(shape), "".join(" %d" % d for d in shape)))
        f.write(" ".join("%.17g" % v for v in values) + "\n")
print("wrote %s: %d records, %d bytes" % (out, len(records), os.path.getsize(out)))
