"""PyTorch reference for the training-step benchmark: numbnn's default ``reactnet-a``, binarization simulated in float.

The network mirrors :mod:`numbnn.models.reactnet` layer for layer (stem 3x3 stride 2 1->32 + BN; blocks
32-64 s1, 64-128 s2, 128-128 s1, 128-256 s2, 256-256 s1; global average pool; Linear 256->10). A binary
conv is a float conv of sign(x) with alpha_o * sign(W_o), alpha_o = mean|W_o| without gradient, zero
padding; the activation sign has ApproxSign's gradient max(0, 2 - 2|x|) and the weight sign the clipped
STE 1{|W| <= 1}, each an ``autograd.Function``. The strided shortcut is a 2x2 average pool with
``ceil_mode=True``, which on a 7x7 map averages only the real pixels of the last window, as numbnn's
TensorFlow-"same" pooling does. Adam with the lr and weight decay of numbnn's reactnet-a config.

Timing: ``--steps`` optimizer steps on FashionMNIST-shaped data (random uint8 28x28 images normalised as
numbnn does, random labels, a few pre-built batches reused) after ``--warmup`` steps, each timed alone;
the median step gives seconds per epoch as median * 60000 / batch. Every configuration torch offers
here runs in the same process (NCHW and channels_last, eager; optionally ``torch.compile``), and
``best`` names the fastest, which is the figure to compare with. ``--check`` first copies the weights
of a numbnn ``reactnet-a`` into this model and compares the logits, to show both are one network.
Prints one JSON object.

    python benchmarks/torch_train_reactnet.py --threads 2 --batch-size 128 --steps 20
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

EPOCH_IMAGES = 60000
WIDTHS = (32, 64, 128, 128, 256, 256)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860406, 0.3530242


class ApproxSign(torch.autograd.Function):
    """sign(x) (sign(0) = +1); backward multiplies by max(0, 2 - 2|x|) (Bi-Real Net, ReActNet)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x < 0, -1.0, 1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


class ClippedSign(torch.autograd.Function):
    """sign(w) with the clipped straight-through gradient 1{|w| <= 1} (the gradient of clamp(w, -1, 1))."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w < 0, -1.0, 1.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1.0).to(grad.dtype)


class BinaryConv(nn.Module):
    """alpha_o * conv(sign(x), sign(W_o)), alpha_o = mean|W_o| as a constant; kernel k, padding k // 2."""

    def __init__(self, channels_in, channels_out, kernel, stride):
        super().__init__()
        self.stride, self.padding = stride, kernel // 2
        self.weight = nn.Parameter(torch.empty(channels_out, channels_in, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        alpha = self.weight.detach().abs().mean(dim=(1, 2, 3), keepdim=True)
        weight = ClippedSign.apply(self.weight) * alpha
        return F.conv2d(ApproxSign.apply(x), weight, stride=self.stride, padding=self.padding)


class LearnableBias(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return x + self.bias


class RPReLU(nn.Module):
    """PReLU_beta(x - gamma_c) + zeta_c, beta initialised to 0.25."""

    def __init__(self, channels):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.slope = nn.Parameter(torch.full((channels,), 0.25))
        self.zeta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return F.prelu(x - self.gamma, self.slope) + self.zeta


class PointwiseBranch(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = BinaryConv(channels, channels, 1, 1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, z, shortcut):
        return self.norm(self.conv(z)) + shortcut


class BasicBlock(nn.Module):
    """numbnn.models.reactnet.BasicBlock: binary 3x3 (stride s) + shortcut, then one or two binary 1x1 branches."""

    def __init__(self, channels_in, channels_out, stride):
        super().__init__()
        self.stride = stride
        self.threshold_3x3 = LearnableBias(channels_in)
        self.conv_3x3 = BinaryConv(channels_in, channels_in, 3, stride)
        self.norm_3x3 = nn.BatchNorm2d(channels_in)
        self.act_3x3 = RPReLU(channels_in)
        self.threshold_1x1 = LearnableBias(channels_in)
        self.pointwise = nn.ModuleList(PointwiseBranch(channels_in) for _ in range(channels_out // channels_in))
        self.act_1x1 = RPReLU(channels_out)

    def forward(self, x):
        shortcut = F.avg_pool2d(x, 2, 2, ceil_mode=True) if self.stride == 2 else x
        out1 = self.act_3x3(self.norm_3x3(self.conv_3x3(self.threshold_3x3(x))) + shortcut)
        z = self.threshold_1x1(out1)
        branches = [branch(z, out1) for branch in self.pointwise]
        out2 = branches[0] if len(branches) == 1 else torch.cat(branches, dim=1)
        return self.act_1x1(out2)


class ReActNetA(nn.Module):
    def __init__(self, widths=WIDTHS, stem_stride=2, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, widths[0], 3, stride=stem_stride, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(widths[0])
        strides = [1 if i == 0 or c_out == c_in else 2 for i, (c_in, c_out) in enumerate(zip(widths, widths[1:]))]
        self.blocks = nn.Sequential(*(BasicBlock(c_in, c_out, s) for (c_in, c_out), s in zip(zip(widths, widths[1:]), strides)))
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.blocks(self.stem_norm(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))


def fashion_shaped_batches(batch_size, count=4, seed=0):
    """``count`` batches of random uint8 28x28 images normalised like numbnn's loader, NCHW float32, with labels."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        images = rng.integers(0, 256, size=(batch_size, 1, 28, 28), dtype=np.uint8)
        x = (images.astype(np.float32) / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
        batches.append((torch.from_numpy(x), torch.from_numpy(rng.integers(0, 10, batch_size))))
    return batches


def check_against_numbnn(widths, batch_size=32) -> dict:
    """Copy a numbnn reactnet-a's weights into this model and compare training-mode logits on one batch.

    Both compute the same float32 network, so the logits agree up to rounding, except where a value
    sits so close to 0 that rounding flips its sign; the fraction of matching predictions shows that.
    """
    from numbnn.autograd import Tensor as NumbnnTensor
    from numbnn.models import build_model

    reference = build_model("reactnet-a", widths=list(widths))
    reference.train()
    model = ReActNetA(widths)
    model.train()
    torch_params = dict(model.named_parameters())
    for name, value in reference.state_dict().items():
        module, _, leaf = name.rpartition(".")
        if module.split(".")[-1].endswith("norm"):
            leaf = {"gamma": "weight", "beta": "bias"}.get(leaf, leaf)
        target = torch_params.get(f"{module}.{leaf}")
        if target is None:
            continue  # batch-norm running statistics: unused in training mode
        array = np.asarray(value, dtype=np.float32)
        if array.ndim == 4:
            array = array.transpose(0, 3, 1, 2)  # OHWI -> OIHW
        with torch.no_grad():
            target.copy_(torch.from_numpy(array.reshape(target.shape)))
    x, _ = fashion_shaped_batches(batch_size, count=1, seed=1)[0]
    with torch.no_grad():
        ours = model(x).numpy()
    theirs = reference(NumbnnTensor(np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)))).data
    return {
        "max_abs_logit_difference": float(np.abs(ours - theirs).max()),
        "max_abs_logit": float(np.abs(theirs).max()),
        "same_prediction_fraction": float((ours.argmax(1) == theirs.argmax(1)).mean()),
    }


def make_step(memory_format, compiled, batch_size, lr, weight_decay, widths):
    """A function step(i): one training step (forward, loss, backward, Adam) on batch i mod 4; returns the loss."""
    torch.manual_seed(0)
    model = ReActNetA(widths).to(memory_format=memory_format)
    model.train()
    decay = [p for name, p in model.named_parameters() if p.ndim == 4]  # numbnn's "conv_only" rule
    rest = [p for name, p in model.named_parameters() if p.ndim != 4]
    optimizer = torch.optim.Adam([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}], lr=lr)
    forward = torch.compile(model) if compiled else model
    batches = [(x.contiguous(memory_format=memory_format), y) for x, y in fashion_shaped_batches(batch_size)]

    def step(i):
        x, y = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def config_name(memory_format, compiled) -> str:
    return ("channels_last" if memory_format == torch.channels_last else "contiguous") + (" compiled" if compiled else "")


def time_training(memory_format, compiled, batch_size, steps, warmup, lr, weight_decay, widths):
    """Median wall and process-CPU seconds of one training step (forward, loss, backward, Adam step)."""
    step = make_step(memory_format, compiled, batch_size, lr, weight_decay, widths)
    started = time.perf_counter()
    for i in range(warmup):
        step(i)
    warmup_s = time.perf_counter() - started
    walls, cpus = [], []
    for i in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        loss = step(i)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    if not torch.isfinite(loss):
        raise RuntimeError("the loss is not finite")
    step_s = statistics.median(walls)
    return {
        "memory_format": "channels_last" if memory_format == torch.channels_last else "contiguous",
        "compiled": compiled,
        "warmup_s": round(warmup_s, 3),
        "step_s": round(step_s, 5),
        "step_s_min": round(min(walls), 5),
        "step_cpu_s": round(statistics.median(cpus), 5),
        "epoch_s": round(step_s * EPOCH_IMAGES / batch_size, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="on conv kernels only, as numbnn's conv_only rule")
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--formats", default="channels_last,contiguous", help="comma-separated memory formats to time")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (needs a C++ compiler; slow warm-up)")
    parser.add_argument("--check", action="store_true", help="first compare logits with numbnn's reactnet-a (weights copied)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    torch.set_num_threads(args.threads)
    widths = tuple(max(1, round(w * args.width_multiplier)) for w in WIDTHS)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    check = check_against_numbnn(widths) if args.check else None
    runs = []
    for name in args.formats.split(","):
        for compiled in (False, True) if args.compile else (False,):
            runs.append(time_training(formats[name], compiled, args.batch_size, args.steps, args.warmup,
                                      args.lr, args.weight_decay, widths))
    best = min(runs, key=lambda run: run["step_s"])
    result = {
        "framework": f"torch {torch.__version__}",
        "model": "reactnet-a (float-simulated binarization)",
        "widths": list(widths),
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "warmup": args.warmup,
        "runs": runs,
        "best": best,
        "check_against_numbnn": check,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
