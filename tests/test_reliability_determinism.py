"""Determinism: the same seed and thread count give bit-identical training, in fresh processes too.

- Two fresh ``numbnn train`` processes with the same seed and ``--threads 2`` (multi-threaded BLAS and
  Numba), started with different ``PYTHONHASHSEED``s, end with identical weights, optimizer state and
  history. (Same-seed runs inside one process are in tests/test_train_loop.py; --threads 1 across
  processes, through a kill and a resume, in tests/test_reliability_crash.py.)
- Numba's thread count alone changes nothing: the kernels and fused loops reduce in a fixed order
  (integer popcounts, fixed row chunks), so logits, loss, every gradient and the packed model's outputs
  are bit-identical with 1 and 2 Numba threads. BLAS's thread count does change float sums; see
  docs/reliability.md for what was measured.
"""

import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import numbnn.functional as F
import numbnn.io
from numbnn.autograd import Tensor
from numbnn.inference import compile
from numbnn.models import build_model
from numbnn.nn import init
from numbnn.threads import set_threads

NUMBNN = [sys.executable, "-c", "import sys; from numbnn.cli.main import run; sys.argv[0] = 'numbnn'; run()"]
TRAIN = ["train", "--model", "bnn-small", "--model-arg", "widths=[8,8,16]", "--limit", "96", "--test-limit", "50",
         "--batch-size", "32", "--epochs", "1", "--seed", "11", "--threads", "2"]
needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 Numba threads")


def _flatten(tree, prefix=""):
    """Nested optimizer state -> {dotted path: value}."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    if isinstance(tree, list | tuple):
        return {k: v for i, value in enumerate(tree) for k, v in _flatten(value, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): tree}


@needs_two_threads
def test_fresh_processes_with_the_same_seed_and_threads_train_identically(tmp_path):
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run-{hash_seed}.h5"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        runs.append((out, subprocess.Popen([*NUMBNN, *TRAIN, "--out", str(out)], env=env,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    for out, process in runs:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    a, b = (numbnn.io.load_checkpoint(out) for out, _ in runs)
    assert a.state.keys() == b.state.keys()
    for name in a.state:
        assert np.array_equal(a.state[name], b.state[name]), name
    left, right = _flatten(a.optimizer_state), _flatten(b.optimizer_state)
    assert left.keys() == right.keys()
    for name in left:
        assert np.array_equal(np.asarray(left[name]), np.asarray(right[name])), name
    for key in ("train_loss", "test_accuracy", "test_loss"):
        assert [h[key] for h in a.history] == [h[key] for h in b.history]
    assert a.rng_state == b.rng_state


def _one_step_and_prediction(name, args, x, y):
    """A freshly seeded model: logits, loss and gradients of one training batch, then its packed
    model's logits in eval mode."""
    init.seed(5)
    model = build_model(name, **args)
    logits = model(Tensor(x))
    loss = F.cross_entropy(logits, y)
    loss.backward()
    grads = {key: p.grad.copy() for key, p in model.named_parameters()}
    model.eval()
    return logits.data.copy(), float(loss.data), grads, compile(model).predict(x)


@needs_two_threads
@pytest.mark.parametrize("name, args", [("bnn-small", {"widths": (8, 16, 32)}),
                                        ("reactnet-a", {"widths": (8, 16, 16, 32)})])
def test_numba_thread_count_changes_no_result(name, args):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 24)
    before = numba.get_num_threads()
    results = {}
    try:
        set_threads(1)  # BLAS on one thread, products unsplit, in both runs: only Numba's count changes below
        for threads in (1, 2):
            numba.set_num_threads(threads)
            results[threads] = _one_step_and_prediction(name, args, x, y)
    finally:
        set_threads(before)
    (logits1, loss1, grads1, packed1), (logits2, loss2, grads2, packed2) = results[1], results[2]
    assert np.array_equal(logits1, logits2) and loss1 == loss2
    assert grads1.keys() == grads2.keys()
    for key in grads1:
        assert np.array_equal(grads1[key], grads2[key]), key
    assert np.array_equal(packed1, packed2)
