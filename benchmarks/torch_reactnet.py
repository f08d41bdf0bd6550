"""Packed numbnn inference against a float32 PyTorch CPU eval of the same ReActNet-A, in one process.

Usage::

    python3 benchmarks/torch_reactnet.py [CHECKPOINT] [--threads 2] [--repeats 7] [--json]

PyTorch (``pip install torch``; a benchmark-only extra, numbnn never imports it) runs the architecture
of numbnn's ``reactnet-a`` the way a PyTorch user simulates a BNN: float32 ``conv2d`` of sign(x - b)
with sign(W), times alpha = mean|W_o|, batch norm, RPReLU, the 2x2 average-pool shortcut and the
duplicated 1x1 branches. The weights are copied from the numbnn model (a checkpoint, or a freshly built
model with trained-looking batch-norm statistics), and the script first checks that PyTorch's logits
agree with numbnn's on a few images, so both really compute the same network. Then, on the same
uint8 images at batch 256 and 1: images/s of PyTorch (``inference_mode``, ``--threads`` intra-op
threads), of numbnn's packed model and of numbnn's float-simulated model (the eval-mode forward pass):
three rounds of each one's median of ``--repeats`` warm calls, interleaved so a change in machine load
hits all three alike; the median of the rounds is reported.
The machine's load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

# Both PyTorch and Numba run OpenMP thread pools here; threads that spin-wait after a parallel region
# steal the cores from the other pool. Passive waiting (numbnn's default) for both, set before either loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as TF  # noqa: E402

import numbnn.io  # noqa: E402
from numbnn.autograd import Tensor, no_grad  # noqa: E402
from numbnn.inference import compile  # noqa: E402
from numbnn.models import build_model  # noqa: E402
from numbnn.train.data import normalize  # noqa: E402


def sign(x):
    return torch.where(x < 0, -1.0, 1.0)


class TorchReActNet(torch.nn.Module):
    """numbnn's ReActNet-A (numbnn/models/reactnet.py) in PyTorch float32, weights taken from ``model``.

    Everything that depends on weights only is prepared once (sign(W) in OIHW, alpha, per-channel
    parameters shaped for broadcasting), as a deployment of the float simulation would; the forward pass
    does the per-image work: sign of the activations, float convolutions, BN, RPReLU, shortcuts.
    """

    def __init__(self, model):
        super().__init__()
        state = {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
        self.p = {}
        for name, value in state.items():
            if value.ndim == 4:  # OHWI -> OIHW
                value = value.permute(0, 3, 1, 2).contiguous()
                if name != "stem.weight":
                    self.p[name.replace(".weight", ".alpha")] = value.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
                    value = sign(value)
            elif value.ndim == 1 and not name.startswith(("stem_norm", "classifier")) and "norm" not in name:
                value = value.view(1, -1, 1, 1)
            self.p[name] = value
        self.stem_stride = model.stem.stride
        self.blocks = [(b.stride, len(b.pointwise)) for b in model.blocks]

    def batch_norm(self, x, prefix):
        p = self.p
        return TF.batch_norm(x, p[prefix + ".running_mean"], p[prefix + ".running_var"], p[prefix + ".gamma"],
                             p[prefix + ".beta"], False, 0.0, 1e-5)

    def binary_conv(self, x, prefix, bias_prefix, stride, padding):
        a = sign(x + self.p[bias_prefix + ".bias"])
        return TF.conv2d(a, self.p[prefix + ".weight"], stride=stride, padding=padding) * self.p[prefix + ".alpha"]

    def rprelu(self, x, prefix):
        return TF.prelu(x - self.p[prefix + ".gamma"], self.p[prefix + ".slope"].flatten()) + self.p[prefix + ".zeta"]

    def forward(self, x):  # NCHW
        x = TF.conv2d(x, self.p["stem.weight"], stride=self.stem_stride, padding=1)
        x = self.batch_norm(x, "stem_norm")
        for i, (stride, copies) in enumerate(self.blocks):
            b = f"blocks.{i}"
            out1 = self.batch_norm(self.binary_conv(x, f"{b}.conv_3x3", f"{b}.threshold_3x3", stride, 1), f"{b}.norm_3x3")
            shortcut = TF.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False) if stride == 2 else x
            out1 = self.rprelu(out1 + shortcut, f"{b}.act_3x3")
            branches = [self.batch_norm(self.binary_conv(out1, f"{b}.pointwise.{j}.conv", f"{b}.threshold_1x1", 1, 0),
                                        f"{b}.pointwise.{j}.norm") + out1 for j in range(copies)]
            x = self.rprelu(torch.cat(branches, dim=1), f"{b}.act_1x1")
        pooled = x.mean(dim=(2, 3))
        return TF.linear(pooled, self.p["classifier.weight"], self.p["classifier.bias"])


def reference_model(checkpoint):
    if checkpoint:
        model = numbnn.io.load(checkpoint)
    else:  # untrained weights; give the batch norms and thresholds non-trivial values
        model = build_model("reactnet-a")
        rng = np.random.default_rng(0)
        for name, array in model.state_dict().items():
            target = dict(model.named_buffers()).get(name)
            if target is not None:
                target[...] = rng.uniform(0.5, 1.5, target.shape) if name.endswith("var") else rng.normal(0, 0.2, target.shape)
        for name, param in model.named_parameters():
            if name.endswith(("bias", "beta", "gamma", "zeta")) and param.data.ndim == 1:
                param.data[...] += rng.normal(0, 0.1, param.data.shape).astype(np.float32)
    model.eval()
    if model.config["name"] not in ("reactnet-a", "reactxgb") or getattr(model, "has_trees", False):
        raise SystemExit("this benchmark needs a reactnet-a checkpoint (or none: a default reactnet-a is built)")
    return model


def median_seconds(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="a reactnet-a checkpoint (default: a freshly built reactnet-a)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    model = reference_model(args.checkpoint)
    packed = compile(model)
    net = TorchReActNet(model).eval()
    images = np.random.default_rng(1).integers(0, 256, (256, 28, 28), dtype=np.uint8)

    def torch_logits(batch):
        x = torch.from_numpy(normalize(batch)).permute(0, 3, 1, 2).contiguous()
        with torch.inference_mode():
            return net(x).numpy()

    def float_logits(batch):
        with no_grad():
            return model(Tensor(normalize(batch))).data

    check = images[:64]
    reference = float_logits(check)
    agreement = {"torch_vs_float_max_abs": float(np.abs(torch_logits(check) - reference).max()),
                 "packed_vs_float_max_abs": float(np.abs(packed.predict(check) - reference).max()),
                 "torch_same_class": float((torch_logits(check).argmax(1) == reference.argmax(1)).mean())}

    load_before = os.getloadavg()[0]
    results = {"threads": args.threads, "agreement": agreement}
    for batch in (256, 1):
        x = images[:batch]
        runs = {"packed": lambda: packed.predict(x), "torch": lambda: torch_logits(x), "float": lambda: float_logits(x)}
        seconds = {name: [] for name in runs}
        for _ in range(3):  # rounds of each framework's median, interleaved: load changes hit all three
            for name, call in runs.items():
                seconds[name].append(median_seconds(call, args.repeats))
        rates = {name: batch / float(np.median(s)) for name, s in seconds.items()}
        results[f"batch_{batch}"] = {
            **{f"{name}_images_per_s": round(rate, 1) for name, rate in rates.items()},
            "packed_over_torch": round(rates["packed"] / rates["torch"], 2),
            "packed_over_float": round(rates["packed"] / rates["float"], 2),
        }
    results["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    for key in ("batch_256", "batch_1"):
        row = results[key]
        print(f"{key}: packed {row['packed_images_per_s']:,.0f} img/s, torch {row['torch_images_per_s']:,.0f} img/s, "
              f"numbnn float {row['float_images_per_s']:,.0f} img/s -> packed/torch {row['packed_over_torch']}x, "
              f"packed/float {row['packed_over_float']}x")
    print(f"agreement on 64 images: {agreement}; threads {args.threads}; load average {results['load_average']}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
