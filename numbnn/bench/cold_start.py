"""One cold start, run in a fresh process by :mod:`numbnn.bench.model`: prints one JSON line.

``python -m numbnn.bench.cold_start packed MODEL.h5`` times importing numbnn.inference, loading the
packed file and predicting one image; ``... float CKPT`` times importing numbnn, loading the checkpoint
and one eval-mode forward pass of the float model. The first call includes Numba's JIT compilation, or
loading it from the on-disk cache (``NUMBA_CACHE_DIR``).
"""

import json
import sys
import time


def main(kind: str, path: str) -> dict:
    started = time.perf_counter()
    import numpy as np  # imported here on purpose: the import is part of what is timed

    image = np.zeros((1, 28, 28), np.uint8)
    if kind == "packed":
        import numbnn.inference  # imported here on purpose: the import is part of what is timed

        imported = time.perf_counter()
        model = numbnn.inference.load(path)
        loaded = time.perf_counter()
        model.predict(image[:, : model.input_shape[0], : model.input_shape[1]])
    elif kind == "float":
        import numbnn.io  # imported here on purpose: the import is part of what is timed
        from numbnn.autograd import Tensor, no_grad

        imported = time.perf_counter()
        model = numbnn.io.load(path)
        model.eval()
        loaded = time.perf_counter()
        with no_grad():
            model(Tensor(np.zeros((1, 28, 28, 1), np.float32)))
    else:
        raise SystemExit(f"unknown kind {kind!r}: packed or float")
    done = time.perf_counter()
    return {"import_s": round(imported - started, 3), "load_s": round(loaded - imported, 3),
            "first_call_s": round(done - loaded, 3), "total_in_process_s": round(done - started, 3)}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
