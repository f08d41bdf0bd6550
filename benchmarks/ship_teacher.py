"""Ship a trained float model as the distillation teacher: weights only, in data/teachers/, with a manifest.

    python3 benchmarks/ship_teacher.py CHECKPOINT --command "numbnn train --model resnet-20 ..." [--name resnet-20]

Writes ``data/teachers/<name>.h5`` (the model alone: no optimizer, schedule or history, so a few hundred
KB instead of a training checkpoint's MBs) and ``data/teachers/MANIFEST.json``: the command that trained
it, its test accuracy on all 10,000 test images and on the first 1,000 (the slice the test suite
re-evaluates), the file's sha256 and size, the CPU and the date. ``tests/test_shipped_teacher.py``
checks the manifest against the file and the slice accuracy against ``numbnn eval``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

import numbnn.io
from numbnn.kernels.platform import cpu_model
from numbnn.train.run import evaluate_checkpoint

TEACHERS = Path(__file__).resolve().parents[1] / "data" / "teachers"
SLICE = 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="the training checkpoint `numbnn train` wrote")
    parser.add_argument("--command", required=True, help="the exact `numbnn train` command that produced it")
    parser.add_argument("--name", default="resnet-20", help="file name under data/teachers/ (default resnet-20)")
    args = parser.parse_args(argv)
    stored = numbnn.io.load_checkpoint(args.checkpoint)
    model = numbnn.io.load(args.checkpoint)
    TEACHERS.mkdir(parents=True, exist_ok=True)
    path = numbnn.io.save(model, TEACHERS / f"{args.name}.h5")
    full = evaluate_checkpoint(path, progress=False)
    part = evaluate_checkpoint(path, limit=SLICE, progress=False)
    manifest_path = TEACHERS / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"teachers": {}}
    manifest["teachers"][path.name] = {
        "model": model.config["name"],
        "model_args": model.config.get("args", {}),
        "command": args.command,
        "epochs": stored.epoch,
        "test_accuracy": full.accuracy,
        f"test_accuracy_first_{SLICE}": part.accuracy,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "cpu_model": cpu_model(),
        "date": datetime.date.today().isoformat(),
        "history": [{key: record[key] for key in ("epoch", "test_accuracy", "seconds")} for record in stored.history],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes): test accuracy {full.accuracy:.2%}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
