"""``PackedModel``: a compiled model that predicts from images with packed binary layers.

It holds a checked :class:`~numbnn.inference.graph.Graph` and a little metadata (the source model's
config, the input shape, the input normalisation and the class names). Prediction uses numpy and the
Numba kernels only; nothing here imports the autograd.
"""

from __future__ import annotations

import numpy as np

from numbnn.checks import check_int
from numbnn.errors import CheckpointError, InputError, NumbnnError
from numbnn.inference.format import read_graph, write_graph
from numbnn.inference.graph import Graph, Program
from numbnn.inference.runs import images_per_run
from numbnn.memory import retain_freed_memory
from numbnn.threads import default_threads

DEFAULT_BATCH = 256


class PackedModel:
    """Predict with ``predict`` (logits) or ``predict_proba``; write with ``save`` (see :mod:`numbnn.inference.format`).

    ``meta`` keys: ``config`` (the source model's {"name", "args"}), ``input_shape`` [H, W, C],
    ``mean``/``std`` (uint8 images are scaled to [0, 1] and standardised with them, as in training),
    ``classes`` (one name per output), ``report`` (what the compiler did; informative only).
    """

    def __init__(self, graph: Graph, meta: dict):
        self.program = Program(graph)
        self.graph = graph
        self.meta = meta
        out = self.program.specs[graph.output]
        if out.dtype != "float32" or len(out.shape) != 1:
            raise InputError(f"packed model output must be float32 [classes], got {out}")
        self.num_classes = out.shape[0]

    @property
    def input_shape(self) -> tuple:
        return tuple(self.meta["input_shape"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [str(i) for i in range(self.num_classes)])

    def prepare(self, images) -> np.ndarray:
        """float32 NHWC input: uint8 [N, H, W] or [N, H, W, C] is normalised as in training; float NHWC is
        taken as already normalised and must be finite."""
        images = np.asarray(images)
        h, w, c = self.input_shape
        if images.dtype == np.uint8:
            if images.ndim == 3 and c == 1:
                images = images[..., None]
            if images.ndim != 4 or images.shape[1:] != (h, w, c):
                raise InputError(f"images: expected uint8 [N, {h}, {w}]" + (f" or [N, {h}, {w}, {c}]" if c == 1 else
                                 f", {c}]") + f", got shape {images.shape}")
            scale = np.float32(1.0 / (255.0 * self.meta["std"]))
            shift = np.float32(self.meta["mean"] / self.meta["std"])
            return (images.astype(np.float32) * scale - shift).astype(np.float32, copy=False)
        if images.dtype.kind != "f" or images.ndim != 4 or images.shape[1:] != (h, w, c):
            raise InputError(f"images: expected uint8 [N, {h}, {w}] or float NHWC [N, {h}, {w}, {c}], "
                             f"got {images.dtype} {images.shape}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused below
            images = np.ascontiguousarray(images, dtype=np.float32)
        if not np.isfinite(images).all():  # a NaN would silently become a "probability" of nan
            raise InputError("images: contain NaN or inf values")
        return images

    @property
    def cache_batch_size(self) -> int:
        """A ``batch_size`` for :meth:`predict` whose runs keep the largest node's maps in the CPU's cache
        (:mod:`numbnn.inference.runs`): 0.86-0.96 of the time of runs of 256 on an otherwise idle machine, but
        1.1-2.2x under another busy process (more runs, more parallel regions waiting on a descheduled
        thread), so not the default."""
        return images_per_run(self.program.bytes_per_image)

    def predict(self, images, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Logits float32 [N, classes] (for ReActXGB: the trees' margins), computed ``batch_size`` images at a
        time (see :attr:`cache_batch_size`). The logits do not depend on it.

        Unless :func:`numbnn.threads.set_threads` was called, the first call applies numbnn's thread
        default, as training does: all of Numba's threads, BLAS on one thread, float products split
        over the threads (process-wide; see :mod:`numbnn.threads`). It also keeps freed large arrays in
        the process for the next batch (:mod:`numbnn.memory`)."""
        check_int(batch_size, "batch_size")
        x = self.prepare(images)
        if len(x) == 0:
            return np.empty((0, self.num_classes), np.float32)
        if len(x) <= batch_size:
            return self._run(x)
        return np.concatenate([self._run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def _run(self, x: np.ndarray) -> np.ndarray:
        """The program's output; a failure of a checked graph (a crafted file validation let through) is
        reported as a bad model file, not as a traceback."""
        retain_freed_memory()
        default_threads()
        try:
            return self.program.run(x)
        except NumbnnError:
            raise
        except Exception as error:  # the graph was validated: anything here means the file is inconsistent
            raise CheckpointError(f"the packed model fails at predict ({type(error).__name__}: {error})") from None

    def predict_proba(self, images, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
        """Class probabilities float32 [N, classes]: the softmax of :meth:`predict`."""
        logits = self.predict(images, batch_size).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        return probabilities.astype(np.float32)

    def save(self, path):
        """Write the model to ``path`` (HDF5, atomically: :mod:`numbnn.inference.format`); returns the path."""
        return write_graph(path, self.graph, self.meta)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.graph.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def __repr__(self) -> str:
        ops = ", ".join(f"{op} x{n}" for op, n in sorted(self.op_counts().items()))
        return f"PackedModel({self.meta['config'].get('name', '?')}, input {self.input_shape}, {ops})"


def save(model: PackedModel, path):
    """Write ``model`` to ``path`` (:meth:`PackedModel.save`); returns the path."""
    if not isinstance(model, PackedModel):
        raise InputError(f"model must be a PackedModel, got {type(model).__name__}")
    return model.save(path)


def load(path) -> PackedModel:
    """Read, validate and build a packed model file (layout and checks: :mod:`numbnn.inference.format`)."""
    graph, meta = read_graph(path)
    try:
        model = PackedModel(graph, meta)
    except (CheckpointError, InputError) as error:
        raise CheckpointError(f"{path}: {error}") from None
    if meta.get("classes") is not None and len(meta["classes"]) != model.num_classes:
        raise CheckpointError(f"{path}: meta names {len(meta['classes'])} classes, the graph outputs {model.num_classes}")
    return model
