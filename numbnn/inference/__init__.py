"""Packed inference: compile a trained model into XNOR-popcount layers, save, load and predict.

    packed = numbnn.inference.compile(model)        # trace, lower, fuse, verify (numbnn.inference.compiler)
    logits = packed.predict(uint8_images)           # numpy + Numba only, batched
    packed.save("model.h5"); packed = numbnn.inference.load("model.h5")

``numbnn export`` is :func:`numbnn.inference.export.export_checkpoint`: a checkpoint compiled and written,
with the sizes that matter. Timing (``numbnn bench model``) lives in :mod:`numbnn.bench`, the test-split
evaluation of a packed model in :mod:`numbnn.evaluation.packed`, the input files of ``numbnn predict``
in :mod:`numbnn.io.images`.

Names resolve lazily so that ``load`` + ``predict`` never import the autograd (fast start-up).
"""

from numbnn._lazy import lazy_getattr

_LAZY = {
    "compile": ("numbnn.inference.compiler", "compile"),
    "PackedModel": ("numbnn.inference.model", "PackedModel"),
    "load": ("numbnn.inference.model", "load"),
    "save": ("numbnn.inference.model", "save"),
    "is_packed_model": ("numbnn.inference.format", "is_packed_model"),
}


__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = list(_LAZY)
