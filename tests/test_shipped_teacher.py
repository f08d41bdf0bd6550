"""The distillation teacher shipped in data/teachers/: its manifest matches the file, and the file
re-evaluates to the accuracy the manifest records."""

import hashlib
import json
from pathlib import Path

import pytest

from numbnn.train.run import evaluate_checkpoint

TEACHERS = Path(__file__).resolve().parents[1] / "data" / "teachers"
MANIFEST = json.loads((TEACHERS / "MANIFEST.json").read_text())["teachers"]


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_manifest_matches_the_shipped_file(name):
    entry, path = MANIFEST[name], TEACHERS / name
    data = path.read_bytes()
    assert len(data) == entry["size"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert entry["command"].startswith("numbnn train --model " + entry["model"])
    assert entry["test_accuracy"] >= 0.94  # issue 13's bar for a teacher


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_shipped_teacher_reevaluates_to_its_recorded_accuracy(name):
    result = evaluate_checkpoint(TEACHERS / name, limit=1000, progress=False)
    assert result.accuracy == MANIFEST[name]["test_accuracy_first_1000"]
