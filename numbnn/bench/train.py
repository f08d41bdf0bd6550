"""Training-step benchmark behind ``numbnn bench train``: seconds per optimizer step, and where they go.

A step is exactly the training loop's (:func:`numbnn.train.loop.train_step`: forward, loss, backward,
gradient clipping if configured, optimizer step) plus the schedule step, on FashionMNIST-shaped data:
random uint8 28x28 images normalised as the loader does and random labels, a few batches built up
front and reused, so data preparation is not timed. The model, optimizer and schedule come from the
model's registered recipe (:func:`numbnn.train.config.make_config`).

Timing: the first step ("cold": Numba compile or on-disk cache load included) and ``warmup`` more
are run untimed, then ``steps`` steps are timed one by one; the median is reported. Two clocks:

- wall time (``time.perf_counter``), what a user waits for; on a machine shared with other jobs
  it also counts the time the process was descheduled;
- process CPU time (``time.process_time``, every thread of the process): with one thread it is
  what the step costs a core, whatever the load; with several it also counts time threads spend
  waiting at barriers, so it is an upper bound.

The 1-minute load average before and after is recorded: wall figures taken at a load above the
core count are not comparable. ``epoch_s`` projects the median step to 60,000 images.

:func:`profile_train_step` breaks steps down by function (cProfile) and by autograd op (forward and
backward of each :class:`~numbnn.autograd.Function` subclass).
"""

import cProfile
import os
import pstats
import statistics
import time

import numba
import numpy as np

from numbnn.autograd import Function
from numbnn.checks import check_int
from numbnn.errors import InputError
from numbnn.kernels.platform import cpu_model
from numbnn.models import build_model
from numbnn.train.config import make_config
from numbnn.train.data import normalize
from numbnn.train.loop import train_step
from numbnn.memory import retain_freed_memory
from numbnn.train.optimizers import build_optimizer
from numbnn.threads import default_threads, set_threads

EPOCH_IMAGES = 60000  # FashionMNIST's training set
IMAGE_SIZE = 28


def synthetic_batches(batch_size: int, count: int = 4, seed: int = 0) -> list:
    """``count`` (x [B, 28, 28, 1] float32, y [B] int64) batches of random FashionMNIST-shaped images."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        images = rng.integers(0, 256, size=(batch_size, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        batches.append((normalize(images), rng.integers(0, 10, size=batch_size, dtype=np.int64)))
    return batches


def median_step_seconds(call, steps: int, warmup: int) -> dict:
    """``call(i)`` untimed for i < warmup + 1 (the first may compile), then timed one by one for ``steps``
    more: the median wall and process-CPU seconds (the benchmarks' contenders all time this way)."""
    for i in range(warmup + 1):
        call(i)
    walls, cpus = [], []
    for i in range(warmup + 1, warmup + 1 + steps):
        wall, cpu = time.perf_counter(), time.process_time()
        call(i)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"step_s": statistics.median(walls), "step_cpu_s": statistics.median(cpus)}


class TrainStep:
    """A model with its recipe's optimizer and schedule; ``run(i)`` does one step on batch i (mod count)."""

    def __init__(self, model_name: str, batch_size: int, model_args: dict | None = None, seed: int = 0):
        check_int(batch_size, "batch_size")
        retain_freed_memory()  # as fit() does
        default_threads()
        self.model = build_model(model_name, **(model_args or {}))
        self.model.train()
        steps_per_epoch = -(-EPOCH_IMAGES // batch_size)
        # A long schedule keeps the learning rate near its start for every step timed here.
        self.config = make_config(model_name, batch_size=batch_size, epochs=1000, seed=seed)
        self.optimizer, self.scheduler = build_optimizer(self.model, self.config, steps_per_epoch)
        self.batches = synthetic_batches(batch_size, seed=seed)
        self.steps_per_epoch = steps_per_epoch

    def run(self, i: int) -> float:
        x, y = self.batches[i % len(self.batches)]
        loss, _ = train_step(self.model, x, y, None, self.config, self.optimizer, 0, i, self.steps_per_epoch)
        self.scheduler.step()
        return loss


def time_train_steps(model_name: str = "reactnet-a", batch_size: int = 128, steps: int = 20, warmup: int = 3,
                     threads: int | None = None, model_args: dict | None = None) -> dict:
    """Median wall and CPU seconds of one training step; a JSON-ready dict (see the module docstring)."""
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0)):
        check_int(value, name, low)
    thread_info = set_threads(threads) if threads is not None else None
    load_before = os.getloadavg()[0]
    trainer = TrainStep(model_name, batch_size, model_args)
    start = time.perf_counter()
    trainer.run(0)
    cold_s = time.perf_counter() - start
    for i in range(1, warmup + 1):
        trainer.run(i)
    walls, cpus = [], []
    for i in range(warmup + 1, warmup + 1 + steps):
        wall, cpu = time.perf_counter(), time.process_time()
        loss = trainer.run(i)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    step_s, step_cpu_s = statistics.median(walls), statistics.median(cpus)
    return {
        "model": model_name,
        "model_args": model_args or {},
        "cpu_model": cpu_model(),
        "batch_size": batch_size,
        "threads": {"numba": numba.get_num_threads(), "blas": thread_info["blas"] if thread_info else None},
        "steps": steps,
        "warmup": warmup,
        "cold_first_step_s": round(cold_s, 3),
        "step_s": round(step_s, 5),
        "step_s_min": round(min(walls), 5),
        "step_cpu_s": round(step_cpu_s, 5),
        "epoch_s": round(step_s * EPOCH_IMAGES / batch_size, 2),
        "epoch_cpu_s": round(step_cpu_s * EPOCH_IMAGES / batch_size, 2),
        "images_per_s": round(batch_size / step_s, 1),
        "final_loss": round(float(loss), 4),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def profile_train_step(model_name: str = "reactnet-a", batch_size: int = 128, steps: int = 3, warmup: int = 2,
                       threads: int | None = None, model_args: dict | None = None, clock: str = "cpu",
                       top: int = 20) -> dict:
    """cProfile of ``steps`` warm steps: per-step milliseconds of the top functions (own time) and the
    top autograd ops (forward/backward including callees). ``clock`` "cpu" (process CPU time; exact
    attribution with one thread) or "wall"."""
    if clock not in ("cpu", "wall"):
        raise InputError(f"clock must be 'cpu' or 'wall', got {clock!r}")
    if threads is not None:
        set_threads(threads)
    trainer = TrainStep(model_name, batch_size, model_args)
    for i in range(warmup + 1):
        trainer.run(i)
    timer = time.process_time if clock == "cpu" else time.perf_counter
    profiler = cProfile.Profile(timer)
    start = timer()
    profiler.enable()
    for i in range(steps):
        trainer.run(i)
    profiler.disable()
    total = (timer() - start) / steps
    stats = pstats.Stats(profiler).stats
    op_names = _autograd_method_names()
    functions, ops = [], []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.items():
        where = f"{_short_path(filename)}:{line}({name})"
        functions.append({"function": where, "own_ms": own / steps * 1e3, "calls": calls // steps})
        op = op_names.get((filename, line))
        if op is not None:
            ops.append({"op": op, "ms": cumulative / steps * 1e3, "calls": calls // steps})
    functions.sort(key=lambda row: -row["own_ms"])
    ops.sort(key=lambda row: -row["ms"])
    rounded = lambda rows, key: [row | {key: round(row[key], 2)} for row in rows[:top]]  # noqa: E731
    return {
        "model": model_name,
        "batch_size": batch_size,
        "clock": clock,
        "step_ms": round(total * 1e3, 1),
        "top_functions": rounded(functions, "own_ms"),
        "top_ops": rounded(ops, "ms"),
        "note": "profiled steps run slower than unprofiled ones (cProfile overhead per Python call)",
    }


def _autograd_method_names() -> dict:
    """(source file, first line) of every Function subclass's forward/backward -> 'Class.method'."""
    names, pending = {}, list(Function.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for method in ("forward", "backward"):
            code = getattr(vars(cls).get(method), "__func__", vars(cls).get(method))
            code = getattr(code, "__code__", None)
            if code is not None:
                names[(code.co_filename, code.co_firstlineno)] = f"{cls.__name__}.{method}"
    return names


def _short_path(filename: str) -> str:
    marker = "numbnn" + os.sep
    return filename[filename.rindex(marker):] if marker in filename else os.path.basename(filename)
