#!/usr/bin/env python3
"""Writes tests/data/rnn_reference.txt: inputs, parameters, outputs and every gradient of
torch.nn.LSTM / GRU / LSTMCell / GRUCell in float64, for xgrad's recurrent layers.

    pip install torch
    python3 tests/data/gen_rnn_reference.py

The file is committed, so the tests never need torch. Format (tests/reference_file.hpp):

    <name> <rank> <d0> ... <d{rank-1}>
    <values in row-major order, %.17g>

Names are "<case>.<what>": x, h0, c0, lengths, the state_dict entries (weight_ih_l0 ...),
upstream gradients gy, gh, gc, outputs y, h_n, c_n, gradients dx, dh0, dc0, d<param name>.
The loss whose gradients are stored is sum(y * gy) + sum(h_n * gh) + sum(c_n * gc).
With lengths the batch goes through pack_padded_sequence(enforce_sorted=False) and back through
pad_packed_sequence(total_length=T): padded outputs are zero, final states are those of each
sequence's last valid step.
"""
import os

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch.manual_seed(20261204)
torch.set_default_dtype(torch.float64)

records = []


def put(name, t):
    t = torch.as_tensor(t).detach().to(torch.float64)
    records.append((name, list(t.shape), t.reshape(-1).tolist()))


def case_layer(case, kind, inp, hid, layers, bidir, batch_first, T, B, lengths=None):
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    m = cls(inp, hid, num_layers=layers, bidirectional=bidir, batch_first=batch_first)
    D = 2 if bidir else 1
    x = torch.randn((B, T, inp) if batch_first else (T, B, inp), requires_grad=True)
    h0 = torch.randn(layers * D, B, hid, requires_grad=True)
    c0 = torch.randn(layers * D, B, hid, requires_grad=True)
    state = (h0, c0) if kind == "lstm" else h0
    if lengths is None:
        y, st = m(x, state)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
        yp, st = m(packed, state)
        y, _ = pad_packed_sequence(yp, batch_first=batch_first, total_length=T)
    hn, cn = st if kind == "lstm" else (st, None)
    gy, gh = torch.randn(y.shape), torch.randn(hn.shape)
    loss = (y * gy).sum() + (hn * gh).sum()
    leaves = [x, h0] + ([c0] if kind == "lstm" else [])
    if kind == "lstm":
        gc = torch.randn(cn.shape)
        loss = loss + (cn * gc).sum()
    names = [n for n, _ in m.named_parameters()]
    params = [p for _, p in m.named_parameters()]
    grads = torch.autograd.grad(loss, leaves + params)
    put(case + ".x", x)
    put(case + ".h0", h0)
    if kind == "lstm":
        put(case + ".c0", c0)
    if lengths is not None:
        put(case + ".lengths", torch.tensor(lengths, dtype=torch.float64))
    for n, p in zip(names, params):
        put(case + "." + n, p)
    put(case + ".gy", gy)
    put(case + ".gh", gh)
    put(case + ".y", y)
    put(case + ".h_n", hn)
    if kind == "lstm":
        put(case + ".gc", gc)
        put(case + ".c_n", cn)
    put(case + ".dx", grads[0])
    put(case + ".dh0", grads[1])
    if kind == "lstm":
        put(case + ".dc0", grads[2])
    for n, g in zip(names, grads[len(leaves):]):
        put(case + ".d" + n, g)


def case_cell(case, kind, inp, hid, B):
    cls = torch.nn.LSTMCell if kind == "lstm" else torch.nn.GRUCell
    m = cls(inp, hid)
    x = torch.randn(B, inp, requires_grad=True)
    h = torch.randn(B, hid, requires_grad=True)
    c = torch.randn(B, hid, requires_grad=True)
    if kind == "lstm":
        h1, c1 = m(x, (h, c))
    else:
        h1, c1 = m(x, h), None
    gh = torch.randn(h1.shape)
    loss = (h1 * gh).sum()
    leaves = [x, h]
    if kind == "lstm":
        gc = torch.randn(c1.shape)
        loss = loss + (c1 * gc).sum()
        leaves.append(c)
    names = [n for n, _ in m.named_parameters()]
    params = [p for _, p in m.named_parameters()]
    grads = torch.autograd.grad(loss, leaves + params)
    put(case + ".x", x)
    put(case + ".h0", h)
    put(case + ".gh", gh)
    put(case + ".h_n", h1)
    put(case + ".dx", grads[0])
    put(case + ".dh0", grads[1])
    if kind == "lstm":
        put(case + ".c0", c)
        put(case + ".gc", gc)
        put(case + ".c_n", c1)
        put(case + ".dc0", grads[2])
    for n, p, g in zip(names, params, grads[len(leaves):]):
        put(case + "." + n, p)
        put(case + ".d" + n, g)


for kind in ("lstm", "gru"):
    case_layer(kind + "_1layer", kind, 3, 4, 1, False, False, 5, 2)
    case_layer(kind + "_2layer_bidir", kind, 3, 4, 2, True, False, 5, 3)
    case_layer(kind + "_batch_first_lengths", kind, 3, 4, 2, True, True, 6, 4, lengths=[6, 2, 4, 1])
    case_cell(kind + "_cell", kind, 3, 5, 2)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn_reference.txt")
with open(out, "w") as f:
    f.write("# written by gen_rnn_reference.py (torch %s); do not edit\n" % torch.__version__)
    for name, shape, vals in records:
        f.write("%s %d %s\n" % (name, len(shape), " ".join(str(d) for d in shape)))
        f.write(" ".join("%.17g" % v for v in vals) + "\n")
print("wrote", out, len(records), "records")
