#!/usr/bin/python3
"""Writes the reference fixtures for basin's nn layer:

  nn_layers.safetensors    conv2d and batch_norm values and gradients (float64)
  nn_resnet20.safetensors  one training step of a CIFAR ResNet-20: weights,
                           a batch, logits, loss, every parameter gradient and
                           the BatchNorm running statistics after the step
  nn_models.safetensors    parameter counts, names and shapes of every model
                           basin's create_model() builds, from PyTorch twins

Run from anywhere with Debian's python3-torch:
    /usr/bin/python3 tests/reference/gen_nn_fixtures.py

The PyTorch models below are written to carry exactly the module names of
nn/models/models.cpp, so a state_dict maps one to one.
"""

import copy
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = "tests/reference/gen_nn_fixtures.py"

# ---------------------------------------------------------------- models
#
# Every ReLU call goes through relu() so that the ResNet-20 seed search can see
# its inputs (see resnet20_fixture).
RELU_INPUTS = None


def relu(x):
    if RELU_INPUTS is not None:
        RELU_INPUTS.append(x.detach())
    return F.relu(x)


def conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class ResNetBlock(nn.Module):
    """ResNet-18's block (kuangliu/pytorch-cifar): a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        return relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.conv1 = conv3x3(3, 64, 1)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for index, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            blocks = []
            for s in (stride, 1):
                blocks.append(ResNetBlock(cin, planes, s))
                cin = planes
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(512, classes)

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBlock(nn.Module):
    """Pre-activation block of xternalz/WideResNet-pytorch; convShortcut only when widths differ."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = conv3x3(cout, cout, 1)
        if cin != cout:
            self.convShortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)
        else:
            self.convShortcut = None

    def forward(self, x):
        activated = relu(self.bn1(x))
        out = self.conv2(relu(self.bn2(self.conv1(activated))))
        return (x if self.convShortcut is None else self.convShortcut(activated)) + out


class WideGroup(nn.Module):
    def __init__(self, blocks, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(blocks)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, widen, classes):
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = conv3x3(3, widths[0], 1)
        self.block1 = WideGroup(n, widths[0], widths[1], 1)
        self.block2 = WideGroup(n, widths[1], widths[2], 2)
        self.block3 = WideGroup(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], classes)

    def forward(self, x):
        out = relu(self.bn1(self.block3(self.block2(self.block1(self.conv1(x))))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class CifarBlock(nn.Module):
    """He et al.'s CIFAR block with the option-A shortcut (akamaster/pytorch_resnet_cifar10):
    take every other pixel and zero-pad planes // 4 channels on each side; no parameters."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or cin != planes) else None

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad is not None:
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return relu(out + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = conv3x3(3, 16, 1)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for index, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(CifarBlock(cin, planes, stride if i == 0 else 1))
                cin = planes
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, classes)
        # The reference initialization: He-normal (fan-in) for conv and linear weights.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class SmallCnn(nn.Module):
    """basin's cnn-small: four 3x3 conv-BN-ReLU stages (32, 64, 128, 256 wide), 2x2
    max-pools after the last three, global average pool, linear head; all under "net"."""

    def __init__(self, classes):
        super().__init__()
        layers = []
        cin = 3
        for width in (32, 64, 128, 256):
            layers += [conv3x3(cin, width, 1), nn.BatchNorm2d(width), nn.ReLU()]
            if width != 32:
                layers.append(nn.MaxPool2d(2, 2))
            cin = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


MODELS = {
    "resnet18": lambda classes: ResNet18(classes),
    "resnet20": lambda classes: CifarResNet(20, classes),
    "resnet32": lambda classes: CifarResNet(32, classes),
    "resnet44": lambda classes: CifarResNet(44, classes),
    "resnet56": lambda classes: CifarResNet(56, classes),
    "resnet110": lambda classes: CifarResNet(110, classes),
    "wrn16-8": lambda classes: WideResNet(16, 8, classes),
    "wrn28-10": lambda classes: WideResNet(28, 10, classes),
    "cnn-small": lambda classes: SmallCnn(classes),
}


def parameter_count(model):
    return sum(p.numel() for p in model.parameters())


def shape_str(t):
    # basin's shape_str(): "[64, 3, 3, 3]", "[]" for a scalar.
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


# ---------------------------------------------------------------- nn_models.safetensors

def models_fixture():
    tensors, metadata = {}, {}
    print("parameter counts (PyTorch twins):")
    for name, make in MODELS.items():
        for classes in (10, 100):
            model = make(classes)
            count = parameter_count(model)
            tensors[f"params.{name}.{classes}"] = torch.tensor(count, dtype=torch.int64)
            metadata[f"params.{name}.{classes}"] = str(count)
            if classes == 10:
                # Names in registration order, one "name [shape]" per line.
                metadata[f"parameters.{name}"] = "\n".join(f"{n} {shape_str(p)}" for n, p in model.named_parameters())
                metadata[f"buffers.{name}"] = "\n".join(f"{n} {shape_str(b)}" for n, b in model.named_buffers())
            print(f"  {name:10s} {classes:3d} classes: {count:>12,d}")
            del model
    return tensors, metadata


# ---------------------------------------------------------------- nn_layers.safetensors

# name, (N, C, H, W), (K, R, S), stride, padding, bias: odd sizes throughout.
CONV_CASES = [
    ("k3s1p1", (2, 3, 7, 9), (4, 3, 3), (1, 1), (1, 1), True),
    ("k3s2p1", (2, 3, 7, 9), (4, 3, 3), (2, 2), (1, 1), True),
    ("k1s2", (2, 3, 7, 9), (4, 1, 1), (2, 2), (0, 0), False),
    ("k3x2s21p01", (3, 5, 6, 5), (7, 3, 2), (2, 1), (0, 1), True),  # non-square kernel, stride and padding
]
BN_MOMENTUM = 0.1
BN_EPS = 1e-5


def conv_fixture(tensors):
    f64 = torch.float64
    for name, (n, c, h, w), (k, r, s), stride, padding, has_bias in CONV_CASES:
        prefix = f"conv.{name}."
        x = torch.randn(n, c, h, w, dtype=f64, requires_grad=True)
        weight = (torch.randn(k, c, r, s, dtype=f64) / (c * r * s) ** 0.5).requires_grad_(True)
        bias = torch.randn(k, dtype=f64, requires_grad=True) if has_bias else None
        out = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        upstream = torch.randn_like(out)  # the fixed weights of the scalar sum(out * upstream)
        inputs = [x, weight] + ([bias] if has_bias else [])
        grads = torch.autograd.grad((out * upstream).sum(), inputs)
        tensors[prefix + "input"] = x
        tensors[prefix + "weight"] = weight
        tensors[prefix + "stride"] = torch.tensor(stride, dtype=torch.int64)
        tensors[prefix + "padding"] = torch.tensor(padding, dtype=torch.int64)
        tensors[prefix + "output"] = out
        tensors[prefix + "upstream"] = upstream
        tensors[prefix + "grad_input"] = grads[0]
        tensors[prefix + "grad_weight"] = grads[1]
        if has_bias:
            tensors[prefix + "bias"] = bias
            tensors[prefix + "grad_bias"] = grads[2]


def batchnorm_fixture(tensors):
    f64 = torch.float64
    # Channels with different offsets and scales, so that a wrong mean or
    # variance (or one over the wrong axes) shows.
    shift = torch.tensor([3.0, -1.0, 0.5], dtype=f64).view(1, 3, 1, 1)
    scale = torch.tensor([2.0, 0.5, 1.0], dtype=f64).view(1, 3, 1, 1)
    x = torch.randn(4, 3, 5, 5, dtype=f64) * scale + shift
    weight = 1.0 + 0.3 * torch.randn(3, dtype=f64)
    bias = 0.2 * torch.randn(3, dtype=f64)
    running_mean = 0.1 * torch.randn(3, dtype=f64)
    running_var = 0.5 + torch.rand(3, dtype=f64)
    upstream = torch.randn(4, 3, 5, 5, dtype=f64)
    tensors.update({"bn.input": x, "bn.weight": weight, "bn.bias": bias, "bn.running_mean": running_mean,
                    "bn.running_var": running_var, "bn.upstream": upstream})

    for mode in ("train", "eval"):
        xi, wi, bi = (t.clone().requires_grad_(True) for t in (x, weight, bias))
        rm, rv = running_mean.clone(), running_var.clone()
        out = F.batch_norm(xi, rm, rv, wi, bi, training=(mode == "train"), momentum=BN_MOMENTUM, eps=BN_EPS)
        gx, gw, gb = torch.autograd.grad((out * upstream).sum(), (xi, wi, bi))
        tensors.update({f"bn.{mode}.output": out, f"bn.{mode}.grad_input": gx, f"bn.{mode}.grad_weight": gw,
                        f"bn.{mode}.grad_bias": gb})
        if mode == "train":
            tensors["bn.train.running_mean"] = rm
            tensors["bn.train.running_var"] = rv
        else:
            assert torch.equal(rm, running_mean) and torch.equal(rv, running_var)

    # Training without affine parameters and without running statistics.
    xi = x.clone().requires_grad_(True)
    out = F.batch_norm(xi, None, None, None, None, training=True, momentum=BN_MOMENTUM, eps=BN_EPS)
    (gx,) = torch.autograd.grad((out * upstream).sum(), (xi,))
    tensors["bn.noaffine.output"] = out
    tensors["bn.noaffine.grad_input"] = gx


# ---------------------------------------------------------------- nn_resnet20.safetensors

RESNET20_BASE_SEED = 20240620
# ReLU has a kink at 0: if float32 rounding moves a pre-activation across it,
# that unit's gradient switches on or off, and one such flip moves a whole
# weight gradient by 1e-3 or more (relative), far above the 1e-4 bar the test
# holds. float32 rounding of these pre-activations is ~3e-7 typically and
# ~1.5e-5 at worst over the 1.5M ReLU inputs of a batch, so the generator takes
# the first seed whose every ReLU input lies at least this far from zero (in
# float64). A few dozen seeds are tried.
RELU_MARGIN = 5e-6
LABEL_SMOOTHING = 0.1


def resnet20_setup(seed):
    """The float32 model (with non-trivial BN state) and the batch for one seed."""
    torch.manual_seed(seed)
    model = CifarResNet(20, 10)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                # Away from the defaults (1, 0, 0, 1), so that a layer that ignores one shows.
                m.weight.copy_(1.0 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
                m.num_batches_tracked.fill_(3)
    images = torch.randn(8, 3, 32, 32)
    labels = torch.randint(0, 10, (8,), dtype=torch.int64)
    return model, images, labels


def relu_margin(model, images):
    """The smallest |ReLU input| of a float64 training-mode forward pass."""
    global RELU_INPUTS
    RELU_INPUTS = []
    try:
        with torch.no_grad():
            copy.deepcopy(model).double().train()(images.double())
        return min(x.abs().min().item() for x in RELU_INPUTS)
    finally:
        RELU_INPUTS = None


def train_step(model, images, labels):
    model.train()
    model.zero_grad()
    logits = model(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def relative_error(x, reference):
    return ((x.double() - reference.double()).norm() / reference.double().norm()).item()


def resnet20_fixture():
    for attempt in range(2000):
        seed = RESNET20_BASE_SEED + attempt
        model, images, labels = resnet20_setup(seed)
        margin = relu_margin(model, images)
        if margin >= RELU_MARGIN:
            break
    else:
        raise RuntimeError("no seed keeps the ReLU inputs away from zero")
    print(f"resnet20: seed {seed} (after {attempt + 1} tries), smallest |ReLU input| {margin:.2e}")
    assert parameter_count(model) == 269722, parameter_count(model)

    tensors = {}
    for name, value in model.state_dict().items():
        tensors[name] = value.clone()
    tensors["images"] = images
    tensors["labels"] = labels

    # The reference is computed in float64 from the float32 weights and batch,
    # then rounded to float32: the exact answer, not one float32 rounding of it.
    model64 = copy.deepcopy(model).double()
    logits, loss, grads = train_step(model64, images.double(), labels)
    tensors["logits"] = logits.float()
    tensors["loss"] = loss.float()
    for name, grad in grads.items():
        tensors["grad." + name] = grad.float()
    for name, value in model64.named_buffers():
        tensors["after." + name] = value.float() if value.is_floating_point() else value.clone()

    # Sanity check: PyTorch's own float32 step (two convolution back ends) sits
    # well inside the bar the basin test holds.
    worst = 0.0
    for mkldnn in (True, False):
        torch.backends.mkldnn.enabled = mkldnn
        logits32, loss32, grads32 = train_step(copy.deepcopy(model), images, labels)
        torch.backends.mkldnn.enabled = True
        errors = [relative_error(logits32, logits), relative_error(loss32, loss)]
        errors += [relative_error(grads32[n], grads[n]) for n in grads]
        worst = max(worst, max(errors))
    print(f"resnet20: PyTorch float32 vs the float64 reference, worst relative error {worst:.2e}")
    assert worst < 1e-5, worst

    metadata = {
        "seed": str(seed),
        "relu_margin": f"{margin:.3e}",
        "label_smoothing": str(LABEL_SMOOTHING),
        "torch_float32_worst_relative_error": f"{worst:.3e}",
        "params.resnet20.10": str(parameter_count(model)),
    }
    return tensors, metadata


def main():
    torch.set_num_threads(1)  # one fixed summation order per run
    common = {"generator": GENERATOR, "torch": torch.__version__}

    torch.manual_seed(20240610)
    tensors = {}
    conv_fixture(tensors)
    batchnorm_fixture(tensors)
    metadata = dict(common, bn_momentum=str(BN_MOMENTUM), bn_eps=str(BN_EPS),
                    conv_cases=",".join(case[0] for case in CONV_CASES))
    write("nn_layers.safetensors", tensors, metadata)

    tensors, metadata = resnet20_fixture()
    write("nn_resnet20.safetensors", tensors, dict(common, **metadata))

    torch.manual_seed(0)
    tensors, metadata = models_fixture()
    write("nn_models.safetensors", tensors, dict(common, **metadata))


def write(name, tensors, metadata):
    path = os.path.join(HERE, name)
    write_safetensors(path, tensors, metadata)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
