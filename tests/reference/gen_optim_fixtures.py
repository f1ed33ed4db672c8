#!/usr/bin/python3
"""Writes optim_trajectories.safetensors and optim_schedules.safetensors:
what torch.optim does on one small fixed problem, and PyTorch's lr schedules.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_optim_fixtures.py

Trajectories. Three parameters of odd shapes, w1 [5, 3], b1 [5], w2 [2, 5],
and a loss whose gradients change with every weight:
    loss = sum(c * tanh(tanh(x @ w1.T + b1) @ w2.T))
with fixed x [4, 3] and c [4, 2]. Each optimizer configuration takes 5 steps
(zero_grad, forward, backward, step) in float32 and in float64 from the same
initial values; the weights after every step and the loss before it are stored.
Keys: "<dtype>.x", "<dtype>.c", "<dtype>.init.<param>",
"<dtype>.<config>.step<k>.<param>" (k = 1..5), "<dtype>.<config>.loss" [5],
with dtype f32 or f64.

Schedules. Each "<name>.lr" holds the lr PyTorch's scheduler gives at steps
0, 1, ... (get_last_lr() after construction, then after each step()) and
"<name>.args" the arguments, float64, in the order the C++ constructor takes them.
"""

import math
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 5

# name -> (optimizer class, keyword arguments). The AdamW lr is large so that
# five steps move the weights far enough for a wrong bias correction to show;
# the amsgrad run uses beta2 = 0.5 so that v falls somewhere and the running
# maximum differs from v (checked below).
CONFIGS = {
    "sgd_plain": (torch.optim.SGD, dict(lr=0.1)),
    "sgd_momentum_wd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1)),
    "adamw_default": (torch.optim.AdamW, dict(lr=0.05)),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.05, betas=(0.9, 0.5), weight_decay=0.1, amsgrad=True)),
}

PARAM_NAMES = ("w1", "b1", "w2")


def loss_fn(x, c, w1, b1, w2):
    return (c * torch.tanh(torch.tanh(x @ w1.T + b1) @ w2.T)).sum()


def trajectories():
    gen = torch.Generator().manual_seed(20240611)
    base = {
        "x": torch.randn(4, 3, generator=gen, dtype=torch.float64),
        "c": torch.randn(4, 2, generator=gen, dtype=torch.float64),
        "w1": 0.7 * torch.randn(5, 3, generator=gen, dtype=torch.float64),
        "b1": 0.5 * torch.randn(5, generator=gen, dtype=torch.float64),
        "w2": 0.7 * torch.randn(2, 5, generator=gen, dtype=torch.float64),
    }
    out = {}
    for tag, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        data = {k: v.to(dtype) for k, v in base.items()}
        out[f"{tag}.x"] = data["x"]
        out[f"{tag}.c"] = data["c"]
        for name in PARAM_NAMES:
            out[f"{tag}.init.{name}"] = data[name]
        finals = {}
        for config, (cls, kwargs) in CONFIGS.items():
            params = [data[name].clone().requires_grad_(True) for name in PARAM_NAMES]
            opt = cls(params, **kwargs)
            losses = []
            for k in range(1, STEPS + 1):
                opt.zero_grad()
                loss = loss_fn(data["x"], data["c"], *params)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
                for name, p in zip(PARAM_NAMES, params):
                    out[f"{tag}.{config}.step{k}.{name}"] = p.detach().clone()
            out[f"{tag}.{config}.loss"] = torch.stack(losses)
            finals[config] = params
            if config == "adamw_amsgrad":
                differs = any(
                    not torch.equal(opt.state[p]["max_exp_avg_sq"], opt.state[p]["exp_avg_sq"]) for p in params
                )
                assert differs, "amsgrad never used the running maximum: the fixture would not test it"
        # Every configuration must lead somewhere else, or a test could confuse them.
        names = list(finals)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                assert not all(torch.equal(p, q) for p, q in zip(finals[a], finals[b])), f"{a} == {b}"
    return out


def lr_sequence(make_scheduler, steps, base_lr):
    # A throwaway optimizer: schedulers read and write its param_groups' lr.
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = [sched.get_last_lr()[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()"
        for _ in range(steps - 1):
            opt.step()
            sched.step()
            lrs.append(sched.get_last_lr()[0])
    return torch.tensor(lrs, dtype=torch.float64)


def schedules():
    out = {}

    def store(name, args, lrs):
        out[f"{name}.args"] = torch.tensor([float(a) for a in args], dtype=torch.float64)
        out[f"{name}.lr"] = lrs

    # OneCycleLR: peak steps 5.9 (not an integer), 1.5, and -1 (no warmup at all).
    for name, (max_lr, total, pct, div, final) in {
        "onecycle_default": (0.1, 23, 0.3, 25.0, 1e4),
        "onecycle_short": (0.4, 10, 0.25, 10.0, 100.0),
        "onecycle_nowarmup": (0.2, 9, 0.0, 5.0, 50.0),
    }.items():
        lrs = lr_sequence(
            lambda opt: torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=max_lr, total_steps=total, pct_start=pct, div_factor=div, final_div_factor=final,
                anneal_strategy="cos", three_phase=False, cycle_momentum=False),
            total, max_lr)
        store(name, (max_lr, total, pct, div, final), lrs)

    # CosineAnnealingLR is CosineLr without warmup: args (base_lr, total_steps, warmup_steps, min_lr).
    base_lr, total, min_lr = 0.1, 17, 1e-3
    lrs = lr_sequence(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_lr),
                      total, base_lr)
    store("cosine", (base_lr, total, 0, min_lr), lrs)

    # Warmup then cosine, built from PyTorch parts: LinearLR from 1/w over w - 1
    # steps gives base * (s + 1) / w, then CosineAnnealingLR over total - w steps.
    base_lr, total, warmup, min_lr = 0.2, 19, 4, 0.0
    lrs = lr_sequence(
        lambda opt: torch.optim.lr_scheduler.SequentialLR(
            opt,
            [torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1),
             torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr)],
            milestones=[warmup]),
        total, base_lr)
    # The definition CosineLr documents; PyTorch's recursive updates agree to rounding.
    for s, lr in enumerate(lrs.tolist()):
        expected = (base_lr * (s + 1) / warmup if s < warmup else
                    min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))) / 2)
        assert abs(lr - expected) < 1e-12, (s, lr, expected)
    store("cosine_warmup", (base_lr, total, warmup, min_lr), lrs)

    # MultiStepLR with a repeated milestone (counted twice, as in PyTorch); args
    # (base_lr, gamma, milestones...). StepLR: args (base_lr, step_size, total_steps, gamma).
    base_lr, gamma, milestones, steps = 0.1, 0.2, [3, 7, 7, 12], 15
    lrs = lr_sequence(lambda opt: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=gamma),
                      steps, base_lr)
    store("multistep", (base_lr, gamma, *milestones), lrs)
    base_lr, step_size, steps, gamma = 0.3, 4, 13, 0.5
    lrs = lr_sequence(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma),
                      steps, base_lr)
    store("steplr", (base_lr, step_size, steps, gamma), lrs)
    return out


def main():
    metadata = {"generator": "tests/reference/gen_optim_fixtures.py", "torch": torch.__version__}
    for filename, tensors in (("optim_trajectories.safetensors", trajectories()),
                              ("optim_schedules.safetensors", schedules())):
        path = os.path.join(HERE, filename)
        write_safetensors(path, tensors, metadata)
        print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
