#!/usr/bin/env python3
"""Writes tests/data/attention_reference.txt: inputs, parameters, outputs and gradients of
masked softmax, torch.nn.MultiheadAttention and torch.nn.TransformerEncoderLayer, computed by
PyTorch in float64 (eval mode, so dropout is off).

    python3 tests/data/gen_attention_reference.py

The file is committed, so the tests never need torch. Format (tests/reference_file.hpp), one
record per two lines:

    <name> <rank> <d0> ... <d{rank-1}>
    <values in row-major order, %.17g>

Names are "<case>.<what>": x, g (upstream gradient), y, dx, key padding masks (1 = padded), and
for each parameter "<case>.<pytorch name>" with its gradient "<case>.grad.<pytorch name>".
Masks never hide every key of a query (PyTorch gives NaN there; xgrad gives zeros, tested apart).
"""
import os

import torch
import torch.nn.functional as F

torch.manual_seed(20261204)
torch.set_default_dtype(torch.float64)

records = []


def put(name, t):
    t = torch.as_tensor(t).detach().to(torch.float64)
    records.append((name, list(t.shape), t.reshape(-1).tolist()))


def causal(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)  # True = hidden


def padding(B, S, lengths):
    m = torch.zeros(B, S, dtype=torch.bool)
    for b, n in enumerate(lengths):
        m[b, n:] = True
    return m


# --- masked softmax: y = softmax(scale * x) over visible keys -------------------------------
def case_masked_softmax(case, shape, scale, pad, is_causal):
    x = torch.randn(shape)
    xl = x.clone().requires_grad_(True)
    s = xl * scale
    hide = torch.zeros(shape, dtype=torch.bool)
    if pad is not None:
        hide = hide | pad.view(shape[0], *([1] * (len(shape) - 2)), shape[-1])
    if is_causal:
        hide = hide | causal(shape[-1])[: shape[-2]]
    y = torch.softmax(s.masked_fill(hide, float("-inf")), dim=-1)
    g = torch.randn(shape)
    (dx,) = torch.autograd.grad(y, xl, g)
    put(case + ".x", x)
    put(case + ".g", g)
    put(case + ".y", y)
    put(case + ".dx", dx)
    if pad is not None:
        put(case + ".pad", pad)


case_masked_softmax("softmax_plain", (3, 4, 6), 0.5, None, False)
case_masked_softmax("softmax_pad", (2, 3, 4, 5), 0.7, padding(2, 5, [5, 3]), False)
case_masked_softmax("softmax_causal_pad", (2, 2, 5, 5), 0.35, padding(2, 5, [4, 2]), True)


def put_module(case, m, x_inputs, g, y, dx_names):
    for n, p in m.named_parameters():
        put(case + "." + n, p)
        put(case + ".grad." + n, p.grad)
    for n, xi in zip(dx_names, x_inputs):
        put(case + "." + n, xi)
        put(case + ".d" + n, xi.grad)
    put(case + ".g", g)
    put(case + ".y", y)


# --- multi-head attention (batch_first) -------------------------------------------------------
def case_mha_self(case, B, S, E, H, lengths, is_causal):
    m = torch.nn.MultiheadAttention(E, H, batch_first=True).eval()
    with torch.no_grad():  # non-zero biases so their gradients and values are tested
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()
    x = torch.randn(B, S, E, requires_grad=True)
    pad = padding(B, S, lengths) if lengths else None
    y, _ = m(x, x, x, key_padding_mask=pad, attn_mask=causal(S) if is_causal else None, need_weights=False)
    g = torch.randn(y.shape)
    y.backward(g)
    put_module(case, m, [x], g, y, ["x"])
    if pad is not None:
        put(case + ".pad", pad)


case_mha_self("mha_self", 2, 5, 8, 2, None, False)
case_mha_self("mha_self_pad_causal", 3, 6, 12, 3, [6, 4, 1], True)


def case_mha_cross(case, B, Sq, Sk, E, H, lengths):
    m = torch.nn.MultiheadAttention(E, H, batch_first=True).eval()
    with torch.no_grad():
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()
    q = torch.randn(B, Sq, E, requires_grad=True)
    k = torch.randn(B, Sk, E, requires_grad=True)
    v = torch.randn(B, Sk, E, requires_grad=True)
    pad = padding(B, Sk, lengths)
    y, _ = m(q, k, v, key_padding_mask=pad, need_weights=False)
    g = torch.randn(y.shape)
    y.backward(g)
    put_module(case, m, [q, k, v], g, y, ["q", "k", "v"])
    put(case + ".pad", pad)


case_mha_cross("mha_cross", 2, 3, 5, 8, 4, [5, 2])


# --- transformer encoder layer ----------------------------------------------------------------
def case_encoder(case, B, S, E, H, F_, act, norm_first, lengths, is_causal):
    m = torch.nn.TransformerEncoderLayer(E, H, dim_feedforward=F_, dropout=0.1, activation=act,
                                         batch_first=True, norm_first=norm_first).eval()
    with torch.no_grad():
        m.self_attn.in_proj_bias.normal_()
        m.self_attn.out_proj.bias.normal_()
        m.norm1.weight.normal_(1.0, 0.2)
        m.norm1.bias.normal_()
        m.norm2.weight.normal_(1.0, 0.2)
        m.norm2.bias.normal_()
    x = torch.randn(B, S, E, requires_grad=True)
    pad = padding(B, S, lengths)
    y = m(x, src_mask=causal(S) if is_causal else None, src_key_padding_mask=pad)
    g = torch.randn(y.shape)
    y.backward(g)
    put_module(case, m, [x], g, y, ["x"])
    put(case + ".pad", pad)


case_encoder("enc_post_relu", 2, 5, 8, 2, 16, "relu", False, [5, 3], False)
case_encoder("enc_pre_gelu", 2, 5, 8, 2, 16, "gelu", True, [4, 5], True)

# --- sinusoidal positional encoding table -----------------------------------------------------
max_len, E = 7, 6
pos = torch.arange(max_len).unsqueeze(1)
div = torch.exp(torch.arange(0, E, 2) * (-torch.log(torch.tensor(10000.0)) / E))
pe = torch.zeros(max_len, E)
pe[:, 0::2] = torch.sin(pos * div)
pe[:, 1::2] = torch.cos(pos * div)
put("sinusoid.pe", pe)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "attention_reference.txt")
with open(out, "w") as f:
    f.write("# generated by gen_attention_reference.py (PyTorch %s, float64)\n" % torch.__version__)
    for name, shape, vals in records:
        f.write("%s %d %s\n" % (name, len(shape), " ".join(str(d) for d in shape)))
        f.write(" ".join("%.17g" % v for v in vals) + "\n")
print("wrote", out, len(records), "records")
