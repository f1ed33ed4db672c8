#!/usr/bin/python3
"""Writes sam_trajectories.safetensors: five training steps of SAM and ASAM
over a small convolutional network in PyTorch, with basin's SAM conventions,
so that the C++ tests can check basin's trajectories step by step.

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_sam_fixtures.py

The network is torch.nn.Sequential(Conv2d(3, 4, 3, padding=1, bias=False),
BatchNorm2d(4), ReLU, AdaptiveAvgPool2d(1), Flatten, Linear(4, 3)); its
parameter names ("0.weight", "1.weight", "1.bias", "5.weight", "5.bias") are
those of the same basin nn::Sequential. The loss is the mean cross-entropy of
one fixed batch; the base optimizer is torch.optim.SGD(lr=0.1, momentum=0.9,
weight_decay=5e-4), Nesterov in one run. Everything is float32 except the
gradient norm, which the reference accumulates in float64 as basin's fused
kernel does.

The reference SAM below follows davda54/sam (a wrapper over the base
optimizer, perturbation e = rho * T^2 g / (||T g|| + eps)) with basin's
documented conventions:
  - eps = 1e-12;
  - the second step restores w exactly from a copy saved by the first step;
  - BatchNorm running statistics move in the first forward pass only: the
    second pass runs with momentum 0, as davda54's disable_running_stats does.
    PyTorch still increments num_batches_tracked in that pass while basin
    leaves it alone, so only running_mean and running_var are stored;
  - ASAM "weights only": T = |w| + eta on tensors whose name contains
    "weight", T = 1 elsewhere; ASAM "all tensors" (davda54): T = |w| everywhere.

Keys: "input" [6, 3, 5, 5], "labels" [6] (int64), "init/<name>" the initial
state_dict (parameters and buffers), and for each run R in RUNS:
  R/step<k>/<name>    parameters after step k = 1..5
  R/step<k>/1.running_mean, R/step<k>/1.running_var
  R/loss<k>           the first-pass loss of step k (float32, 0-dim)
  R/grad_norm         ||T g|| in the first step (float64, 0-dim)
  R/e/<name>          the first step's perturbation e (float32)
  R/perturbed/<name>  the weights w + e at which the first step's second pass ran
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_writer import write_safetensors  # noqa: E402

OUTPUT = os.path.join(HERE, "sam_trajectories.safetensors")
STEPS = 5
EPS = 1e-12

# The runs: rho, ASAM (adaptive), eta, whether T applies to "weight" tensors only, Nesterov momentum.
RUNS = {
    "sam": dict(rho=0.05, adaptive=False, eta=0.0, weights_only=False, nesterov=False),
    "asam": dict(rho=0.5, adaptive=True, eta=0.01, weights_only=True, nesterov=False),
    "asam_all": dict(rho=0.5, adaptive=True, eta=0.0, weights_only=False, nesterov=False),
    "sam_nesterov": dict(rho=0.05, adaptive=False, eta=0.0, weights_only=False, nesterov=True),
}


def make_model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 3),
    )


class ReferenceSAM:
    """SAM/ASAM over a base optimizer, written out plainly."""

    def __init__(self, named_params, base, rho, adaptive, eta, weights_only):
        self.named_params = list(named_params)
        self.base = base
        self.rho = rho
        self.adaptive = adaptive
        self.eta = eta
        self.weights_only = weights_only
        self.saved = {}

    def _t(self, name, p):
        """ASAM's T for one tensor, or None for T = 1."""
        if not self.adaptive or (self.weights_only and "weight" not in name):
            return None
        return p.abs() + self.eta

    @torch.no_grad()
    def first_step(self):
        squares = torch.zeros((), dtype=torch.float64)
        for name, p in self.named_params:
            t = self._t(name, p)
            tg = p.grad if t is None else t * p.grad
            squares += tg.double().pow(2).sum()
        norm = squares.sqrt()
        scale = self.rho / (norm + EPS)
        perturbation = {}
        for name, p in self.named_params:
            t = self._t(name, p)  # from w before it moves
            t2g = p.grad.double() if t is None else (t * t).double() * p.grad.double()
            e = (scale * t2g).float()
            self.saved[name] = p.detach().clone()
            p.add_(e)
            perturbation[name] = e
        return norm, perturbation

    @torch.no_grad()
    def second_step(self):
        for name, p in self.named_params:
            p.copy_(self.saved[name])
        self.base.step()


class FrozenRunningStats:
    """Momentum 0 on every BatchNorm: batch statistics normalize, running ones stay."""

    def __init__(self, model):
        self.layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    def __enter__(self):
        self.saved = [m.momentum for m in self.layers]
        for m in self.layers:
            m.momentum = 0.0

    def __exit__(self, *exc):
        for m, momentum in zip(self.layers, self.saved):
            m.momentum = momentum


def initial_state():
    torch.manual_seed(20240617)
    model = make_model()
    with torch.no_grad():
        # Move BatchNorm away from its trivial 1/0 start so that ASAM's T on
        # the BN scale and the running-statistics update are exercised.
        bn = model[1]
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_(0.0, 0.2)
        bn.running_mean.normal_(0.0, 0.1)
        bn.running_var.uniform_(0.5, 1.5)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(6, 3, 5, 5) * 1.5 + 0.3
    labels = torch.tensor([0, 2, 1, 1, 0, 2], dtype=torch.int64)
    return state, x, labels


def run(name, config, state, x, labels, out):
    model = make_model()
    model.load_state_dict(state)
    model.train()
    params = list(model.named_parameters())
    base = torch.optim.SGD(
        [p for _, p in params], lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=config["nesterov"]
    )
    sam = ReferenceSAM(params, base, config["rho"], config["adaptive"], config["eta"], config["weights_only"])

    def loss_of_batch():
        return torch.nn.functional.cross_entropy(model(x), labels)

    for step in range(1, STEPS + 1):
        base.zero_grad()
        loss = loss_of_batch()
        loss.backward()
        norm, e = sam.first_step()
        if step == 1:
            out[f"{name}/grad_norm"] = norm
            for pname, p in params:
                out[f"{name}/e/{pname}"] = e[pname]
                out[f"{name}/perturbed/{pname}"] = p.detach().clone()
        base.zero_grad()
        with FrozenRunningStats(model):
            loss_of_batch().backward()
        sam.second_step()

        out[f"{name}/loss{step}"] = loss.detach().clone()
        for pname, p in params:
            out[f"{name}/step{step}/{pname}"] = p.detach().clone()
        out[f"{name}/step{step}/1.running_mean"] = model[1].running_mean.clone()
        out[f"{name}/step{step}/1.running_var"] = model[1].running_var.clone()


def main():
    torch.use_deterministic_algorithms(True)
    state, x, labels = initial_state()
    tensors = {"input": x, "labels": labels}
    for key, value in state.items():
        tensors[f"init/{key}"] = value
    for name, config in RUNS.items():
        run(name, config, state, x, labels, tensors)

    metadata = {
        "generator": "tests/reference/gen_sam_fixtures.py",
        "torch": torch.__version__,
        "steps": str(STEPS),
        "base": "SGD(lr=0.1, momentum=0.9, weight_decay=5e-4)",
    }
    for name, config in RUNS.items():
        metadata[f"run/{name}"] = ", ".join(f"{k}={v}" for k, v in config.items())
    write_safetensors(OUTPUT, tensors, metadata)
    print(f"wrote {OUTPUT} ({os.path.getsize(OUTPUT)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
