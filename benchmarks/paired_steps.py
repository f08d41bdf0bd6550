"""Training steps with one change switched on and off, alternating step by step in one process.

The machine's speed drifts by up to 1.4x within minutes, more than most changes measured here, so whole
runs of `numbnn bench train` before and after cannot resolve them. Here one training step (the model's
recipe, a batch of FashionMNIST-shaped data, as `numbnn bench train`) runs with the switch on and off,
the two alternating step by step (each pair in turned order); each pair's ratio on/off is taken and the
median reported. Switches (``--switch``):

- ``lookup-input-grad``: the binary convs' input gradient by table lookup
  (:mod:`numbnn.kernels.sign_conv_input_grad`) against the register-tiled kernel or BLAS + col2im;
- ``stem-depthwise``: convolutions of 1-channel inputs (the models' stems) by the per-pixel depthwise
  kernel (:mod:`numbnn.kernels.depthwise`, channel multiplier O) against im2col + BLAS;
- ``residual-copies``: bnn-small's growing blocks adding their repeated shortcut inside the fused block
  op (``residual_copies``) against concatenating the copies first;
- ``rsign-shift``: spatial binary convs adding their RSign's threshold as they pack (``shift``) against
  RSign writing x + b first;
- ``stem-3x3``: 1-channel 3x3 stems by their own kernels (``_stem_3x3``, ``_stem_3x3_weight_grads`` in
  :mod:`numbnn.kernels.depthwise`) against the general per-pixel depthwise kernels;
- ``threshold-backward``: a binary conv's input gradient under RSign's threshold with ApproxSign in one pass
  (``_threshold_backward`` in :mod:`numbnn.functional.binary`: the derivative, the threshold's sums and the
  shortcut's pending gradient), and a shortcut's average pool adding the conv's gradient in its adjoint
  (``Context.take_pending_grad``), against the derivative, the sums and the engine's additions as passes of their own;
- ``shuffle-in-conv``: FTBNN's binary convs taking their input's channel shuffle (``shuffle_groups`` of
  :func:`numbnn.functional.binary_conv2d`: x's gradient unshuffled in ApproxSign's gradient pass, the shortcut's
  gradient added there) against the shuffle as an op of its own (its backward and the engine's addition as passes);
- ``repeated-concat-grad``: the gradient of a concatenation of one tensor with itself (PokeBNN's and FTBNN's
  tiled shortcuts) summed in one pass that takes the gradient other readers sent
  (:func:`numbnn.functional.shape._repeated_input_grad`) against a slice per copy and the engine's additions;
- ``lookup-weight-grad-1x1``: pointwise binary convs' weight gradient by table lookup on packed signs from
  K = 32 columns (``LOOKUP_MIN_COLUMNS`` in :mod:`numbnn.functional.binary`) against BLAS on float signs
  below K = 288, the threshold before 2026-12-07 (late evening);
- ``lookup-input-grad-1x1``: pointwise binary convs with 128 or more input channels per group taking their
  input gradient by table lookup (``LOOKUP_INPUT_GRAD_MIN_POINTWISE_INPUTS``) against BLAS;
- ``permute-input-grad``: binary convs taking their input gradient by a permute of per-pixel sign tables
  (:mod:`numbnn.kernels.permute_conv_input_grad`, AVX-512; spatial ones with 16-256 outputs per group,
  pointwise ones from 64 inputs per group) against the table lookup, the register-tiled kernel or BLAS;
- ``conv-moments``: a training batch norm after a binary conv taking the moments the conv's scaling pass summed
  (``Context.output_moments``) against reading the map for them (the scaling pass still sums them: off pays
  both, so the ratio is an upper bound on the gain's complement; the scaling pass alone is probed in the docs).

    python3 benchmarks/paired_steps.py --switch lookup-input-grad --model reactnet-a --model bnn-small --pairs 30 --json
"""

import argparse
import contextlib
import json
import statistics
import time

import numpy as np

import numbnn.functional as F
from numbnn.autograd.function import Context, OutputMoments
from numbnn.bench.train import TrainStep
from numbnn.functional import binary, conv, shape
from numbnn.kernels import depthwise
from numbnn.kernels.platform import cpu_model
from numbnn.models import bnn_small
from numbnn.nn import ChannelShuffle, RSign, SignInput, norm_add_activation
from numbnn.threads import set_threads


@contextlib.contextmanager
def patched(*changes):
    """Inside the block, each (owner, name, value) of ``changes`` set as owner.name; restored after."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in changes]
    for owner, name, value in changes:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _conv2d_before_stem_depthwise(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """:func:`numbnn.functional.conv2d`'s routing before 2026-12-07: depthwise only when groups > 1."""
    depthwise = isinstance(groups, int) and groups > 1 and groups == x.shape[-1]
    fn = conv.DepthwiseConv2d if depthwise else conv.Conv2d
    return fn.apply(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)


def _bnn_small_block_with_concat(block, x):
    """:class:`numbnn.models.bnn_small.BinaryBlock`'s forward before 2026-12-07: the copies concatenated."""
    out = block.conv(block.threshold.before_sign(x))
    shortcut = block.shortcut(x)
    if block.repeat != 1:
        shortcut = F.concat([shortcut] * block.repeat, axis=-1)
    return norm_add_activation(block.norm, out, shortcut, block.activation)


def _stem_weight_grads_by_general_kernel(x, grad, sh, sw, ph, pw, dh, dw, dtaps):
    """The general wide kernel in place of ``_stem_3x3_weight_grads`` (its taps are not read without dx)."""
    no_dx = np.zeros((0, 0, 0, 0), x.dtype)
    depthwise._depthwise_wide_grads(x, np.zeros(dtaps.shape[1:], x.dtype), grad, sh, sw, ph, pw, dh, dw, False, no_dx, dtaps)


# Each switch's "off": the state before the change, as (owner, name, value) replacements.
SWITCHES = {
    # no conv has 2^40 outputs per group: the lookup is never taken
    "lookup-input-grad": lambda: patched((binary, "LOOKUP_INPUT_GRAD_MIN_OUTPUTS", 1 << 40)),
    # the layers call numbnn.functional.conv2d
    "stem-depthwise": lambda: patched((F, "conv2d", _conv2d_before_stem_depthwise)),
    "residual-copies": lambda: patched((bnn_small.BinaryBlock, "forward", _bnn_small_block_with_concat)),
    # RSign.before_sign as before 2026-12-07: x + b written, then passed on without a shift
    "rsign-shift": lambda: patched((RSign, "before_sign",
                                    lambda rsign, x: SignInput(x + rsign.bias, rsign.quantizer, rsign.clip))),
    "stem-3x3": lambda: patched((depthwise, "_stem_3x3", depthwise._depthwise_wide),
                                (depthwise, "_stem_3x3_weight_grads", _stem_weight_grads_by_general_kernel)),
    # the unfused branch of BinaryConv2d.backward, and nothing taken: the engine adds
    "threshold-backward": lambda: patched((binary, "sums_by_chunks", lambda grad: False),
                                          (Context, "take_pending_grad", lambda ctx, i, shape, dtype: None)),
    # ChannelShuffle.before_conv as before 2026-12-07: the shuffled map, its own op
    "shuffle-in-conv": lambda: patched((ChannelShuffle, "before_conv", ChannelShuffle.forward)),
    # Concat's backward slice by slice, the engine adding the slices
    "repeated-concat-grad": lambda: patched((shape, "_repeated_input_grad", lambda ctx, rows, shape_: None)),
    "lookup-weight-grad-1x1": lambda: patched((binary, "LOOKUP_MIN_COLUMNS", 288)),
    "lookup-input-grad-1x1": lambda: patched((binary, "LOOKUP_INPUT_GRAD_MIN_POINTWISE_INPUTS", 1 << 40)),
    "permute-input-grad": lambda: patched((binary, "PERMUTE_INPUT_GRAD_MAX_OUTPUTS", 0),
                                          (binary, "PERMUTE_INPUT_GRAD_MAX_OUTPUTS_POINTWISE", 0)),
    # the batch norm reads the map
    "conv-moments": lambda: patched((OutputMoments, "describe", lambda moments, values: False)),
}


def paired_steps(model: str, batch_size: int, pairs: int, switch: str, warmup: int = 6) -> dict:
    """Median step seconds with ``switch`` on and off, and the median and quartiles of the paired ratios."""
    trainer = TrainStep(model, batch_size, None)
    off = SWITCHES[switch]
    times = {"on": [], "off": []}

    def step(name, i):
        with off() if name == "off" else contextlib.nullcontext():
            start = time.perf_counter()
            trainer.run(i)
            return time.perf_counter() - start

    for i in range(warmup):  # compiles both paths
        step("on" if i % 2 else "off", i)
    for pair in range(pairs):
        for name in (("on", "off") if pair % 2 == 0 else ("off", "on")):
            times[name].append(step(name, warmup + pair))
    return {"model": model, "batch_size": batch_size, "switch": switch, "pairs": pairs,
            "step_ms_on": round(statistics.median(times["on"]) * 1e3, 1),
            "step_ms_off": round(statistics.median(times["off"]) * 1e3, 1), **paired_ratios(times["on"], times["off"])}


def paired_ratios(new: list, old: list) -> dict:
    """The median and quartiles of the ratios new[i] / old[i] of paired timings."""
    ratios = sorted(a / b for a, b in zip(new, old))
    quartiles = statistics.quantiles(ratios, n=4)
    return {"ratio_median": round(statistics.median(ratios), 3),
            "ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--switch", choices=sorted(SWITCHES), required=True, help="the change switched on and off")
    parser.add_argument("--model", action="append", help="a registered model (repeatable; default reactnet-a)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    set_threads(args.threads)
    rows = []
    for model in args.model or ["reactnet-a"]:
        rows.append(paired_steps(model, args.batch_size, args.pairs, args.switch))
        if not args.json:
            r = rows[-1]
            print(f"{model:12s} batch {r['batch_size']}: on {r['step_ms_on']:7.1f} ms  off {r['step_ms_off']:7.1f} ms  "
                  f"paired on/off {r['ratio_median']:.3f} (quartiles {r['ratio_quartiles'][0]:.3f}-"
                  f"{r['ratio_quartiles'][1]:.3f})", flush=True)
    if args.json:
        print(json.dumps({"cpu_model": cpu_model(), "threads": args.threads, "switch": args.switch, "rows": rows}))


if __name__ == "__main__":
    main()
