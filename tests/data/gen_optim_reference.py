#!/usr/bin/env python3
"""Writes tests/data/optim_reference.txt: ten steps of every xgrad optimizer configuration,
gradient clipping and every learning-rate scheduler, computed by PyTorch.

    pip install torch numpy
    python3 tests/data/gen_optim_reference.py

The file is committed, so the tests never need torch. Format, one record per two lines:

    <name> <rank> <d0> ... <d{rank-1}>
    <values in row-major order, %.17g>

Records:
    param.<k>                 initial value of parameter k (k = 0, 1, 2)
    grad.<s>.<k>              gradient of parameter k at step s (s = 0..9); missing when the
                              parameter has no gradient at that step (PyTorch: .grad is None)
    <case>.f64.step<s>.<k>    parameter k after step s (1, 2 and 10), float64 run
    <case>.f32.step10.<k>     parameter k after step 10, float32 run
    clip.<case>.norm          total norm returned by the clipping function (rank 0)
    clip.<case>.<k>           gradient k after clipping (of grad.0.<k>)
    sched.<case>.lr           {epochs, groups}: learning rates after construction (row 0) and
                              after each step()
    sched.<case>.metric       metrics passed to reduce_lr_on_plateau.step()
"""
import os

import torch

torch.manual_seed(20240612)

SHAPES = [(4, 5), (5,), (2, 3, 2)]
STEPS = 10
# the third parameter gets no gradient at step 3: optimizers must skip it
MISSING = {(3, 2)}

records = []


def put(name, t):
    t = torch.as_tensor(t, dtype=torch.float64).detach()
    records.append((name, list(t.shape), t.reshape(-1).tolist()))


params0 = [torch.randn(s, dtype=torch.float64) for s in SHAPES]
grads = [[torch.randn(s, dtype=torch.float64) for s in SHAPES] for _ in range(STEPS)]
for k, p in enumerate(params0):
    put(f"param.{k}", p)
for s in range(STEPS):
    for k in range(len(SHAPES)):
        if (s, k) not in MISSING:
            put(f"grad.{s}.{k}", grads[s][k])

# name -> (torch class, [(parameter indices, options)]); the first group's options are also the
# optimizer's defaults (PyTorch's Adagrad fills its accumulators from the defaults, not from the
# group), so later groups spell out every option that differs from them. Option names match
# xgrad's options structs.
CASES = {
    "sgd_plain": (torch.optim.SGD, [([0, 1, 2], dict(lr=0.1))]),
    "sgd_weight_decay": (torch.optim.SGD, [([0, 1, 2], dict(lr=0.1, weight_decay=0.01))]),
    "sgd_momentum": (torch.optim.SGD, [([0, 1, 2], dict(lr=0.05, momentum=0.9))]),
    "sgd_dampening": (torch.optim.SGD, [([0, 1, 2], dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.02))]),
    "sgd_nesterov": (torch.optim.SGD, [([0, 1, 2], dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))]),
    "sgd_groups": (torch.optim.SGD, [([0, 1], dict(lr=0.1, momentum=0.9)), ([2], dict(lr=0.01, momentum=0.0))]),
    "adam": (torch.optim.Adam, [([0, 1, 2], dict(lr=0.01))]),
    "adam_weight_decay": (torch.optim.Adam, [([0, 1, 2], dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1))]),
    "adam_amsgrad": (torch.optim.Adam, [([0, 1, 2], dict(lr=0.02, amsgrad=True, weight_decay=0.05))]),
    "adamw": (torch.optim.AdamW, [([0, 1, 2], dict(lr=0.01))]),
    "adamw_amsgrad": (torch.optim.AdamW, [([0, 1, 2], dict(lr=0.01, weight_decay=0.1, amsgrad=True))]),
    "adagrad": (torch.optim.Adagrad, [([0, 1, 2], dict(lr=0.1))]),
    "adagrad_decay": (torch.optim.Adagrad, [([0, 1, 2], dict(lr=0.1, lr_decay=0.05, weight_decay=0.01,
                                                              initial_accumulator_value=0.5, eps=1e-8))]),
    "rmsprop": (torch.optim.RMSprop, [([0, 1, 2], dict(lr=0.01))]),
    "rmsprop_centered": (torch.optim.RMSprop, [([0, 1, 2], dict(lr=0.01, centered=True))]),
    "rmsprop_momentum": (torch.optim.RMSprop, [([0, 1, 2], dict(lr=0.01, momentum=0.5))]),
    "rmsprop_all": (torch.optim.RMSprop, [([0, 1, 2], dict(lr=0.01, alpha=0.9, centered=True, momentum=0.9,
                                                         weight_decay=0.01))]),
}


def run_case(name, cls, groups, dtype):
    params = [p.clone().to(dtype).requires_grad_(True) for p in params0]
    pg = [dict(params=[params[i] for i in idx], **opts) for idx, opts in groups]
    opt = cls(pg, **groups[0][1], foreach=False)
    out = {}
    for s in range(STEPS):
        for k, p in enumerate(params):
            p.grad = None if (s, k) in MISSING else grads[s][k].to(dtype).clone()
        opt.step()
        out[s + 1] = [p.detach().clone() for p in params]
    return out


for name, (cls, groups) in CASES.items():
    r64 = run_case(name, cls, groups, torch.float64)
    for s in (1, 2, 10):
        for k, p in enumerate(r64[s]):
            put(f"{name}.f64.step{s}.{k}", p)
    r32 = run_case(name, cls, groups, torch.float32)
    for k, p in enumerate(r32[10]):
        put(f"{name}.f32.step10.{k}", p)


# --- clipping ----------------------------------------------------------------------------------
def clip_case(name, fn):
    gs = [g.clone() for g in grads[0]]
    ps = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, g in zip(ps, gs):
        p.grad = g
    norm = fn(ps)
    if norm is not None:
        put(f"clip.{name}.norm", norm)
    for k, p in enumerate(ps):
        put(f"clip.{name}.{k}", p.grad)


clip_case("norm2", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.0, foreach=False))
clip_case("norm2_large", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 100.0, foreach=False))
clip_case("norm1", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 2.0, norm_type=1.0, foreach=False))
clip_case("norm3", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.5, norm_type=3.0, foreach=False))
clip_case("norm_inf", lambda ps: torch.nn.utils.clip_grad_norm_(ps, 0.5, norm_type=float("inf"), foreach=False))
clip_case("value", lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5, foreach=False))


# --- schedulers --------------------------------------------------------------------------------
BASE_LRS = (0.1, 0.02)
EPOCHS = 15


def sched_case(name, make, metrics=None):
    p = torch.zeros(1, requires_grad=True)
    q = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([dict(params=[p], lr=BASE_LRS[0]), dict(params=[q], lr=BASE_LRS[1])])
    sched = make(opt)
    lrs = [[g["lr"] for g in opt.param_groups]]
    for e in range(EPOCHS):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
        lrs.append([g["lr"] for g in opt.param_groups])
    put(f"sched.{name}.lr", lrs)
    if metrics is not None:
        put(f"sched.{name}.metric", metrics)


S = torch.optim.lr_scheduler
sched_case("step_lr", lambda o: S.StepLR(o, step_size=3, gamma=0.5))
sched_case("multi_step_lr", lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.1))
sched_case("exponential_lr", lambda o: S.ExponentialLR(o, gamma=0.9))
sched_case("cosine_annealing_lr", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001))
# linear warm-up over 3 epochs from 0.1 x base, then cosine to 0.001 at epoch 10
sched_case("warmup_cosine_lr", lambda o: S.SequentialLR(
    o, [S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=3),
        S.CosineAnnealingLR(o, T_max=7, eta_min=0.001)], milestones=[3]))
loss = [1.0, 0.9, 0.95, 0.91, 0.905, 0.92, 0.8, 0.85, 0.83, 0.84, 0.845, 0.9, 0.7, 0.71, 0.72]
sched_case("plateau_min_rel", lambda o: S.ReduceLROnPlateau(o, mode="min", factor=0.5, patience=1,
                                                            threshold=0.01, cooldown=1, min_lr=0.004), loss)
acc = [0.5, 0.6, 0.6, 0.65, 0.64, 0.66, 0.66, 0.7, 0.69, 0.7, 0.705, 0.75, 0.74, 0.73, 0.72]
sched_case("plateau_max_abs", lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.2, patience=2,
                                                            threshold=0.02, threshold_mode="abs"), acc)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_reference.txt")
with open(out, "w") as f:
    f.write(f"# Generated by gen_optim_reference.py with torch {torch.__version__}. Do not edit.\n")
    for name, shape, values in records:
        f.write(" ".join([name, str(len(shape))] + [str(d) for d in shape]) + "\n")
        f.write(" ".join("%.17g" % v for v in values) + "\n")
print(f"wrote {len(records)} records to {out} ({os.path.getsize(out)} bytes)")
