"""Arms: the runs of a sweep that differ only in their seed, grouped, with mean and spread over the seeds.

An arm is named by its runs' label with the ``seed=N`` a grid adds taken out ("rbnet 3x3 seed=1" ->
"rbnet 3x3"); its identity is the run's configuration without the seed, so two runs with one label
but different settings are two arms. Claims (:mod:`numbnn.sweep.claims`) compare arms by these names.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

SEED_WORD = re.compile(r"\s*\bseed=-?\d+\b")
ACCURACY_METRICS = ("test_accuracy", "fc_test_accuracy", "tree_test_accuracy")  # vary from seed to seed
COST_METRICS = ("bops", "flops", "ops", "ace", "size_bytes", "params")  # fixed by the configuration


def arm_label(label: str) -> str:
    """The run label without its ``seed=N`` word."""
    return SEED_WORD.sub("", label).strip()


def arm_key(config: dict) -> str:
    """The run configuration without the seed, as canonical JSON (the arm's identity)."""
    train = {name: value for name, value in config.get("train", {}).items() if name != "seed"}
    return json.dumps({**config, "train": train}, sort_keys=True, separators=(",", ":"))


@dataclass
class Arm:
    label: str
    config: dict  # the first run's configuration (seed included)
    records: list[dict] = field(default_factory=list)  # finished runs, by seed

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def seeds(self) -> list:
        return [r["config"]["train"].get("seed") for r in self.records]

    def values(self, metric: str) -> list[float]:
        """``metric`` of every run that has it (:func:`record_value`)."""
        found = [record_value(r, metric) for r in self.records]
        return [v for v in found if v is not None]

    def cost(self, metric: str) -> float | None:
        values = self.values(metric)
        return values[0] if values else None


def record_value(record: dict, metric: str) -> float | None:
    """An accuracy of a run record, or a cost from its ``cost`` table; None if the run has no such value."""
    value = record.get("cost", {}).get(metric) if metric in COST_METRICS else record.get(metric)
    return None if value is None else float(value)


def group_arms(records: list[dict]) -> list[Arm]:
    """Finished runs grouped into arms, in the order their first run appears, each arm's runs by seed."""
    arms: dict[str, Arm] = {}
    for record in records:
        if record.get("status") != "finished" or record.get("test_accuracy") is None:
            continue
        key = arm_key(record["config"])
        arms.setdefault(key, Arm(arm_label(record["label"]), record["config"])).records.append(record)
    for arm in arms.values():
        arm.records.sort(key=lambda r: str(r["config"]["train"].get("seed")))
    return list(arms.values())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; NaN for one value, as one run says nothing of its spread)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std


def summarize(values: list[float]) -> tuple[float, float, int] | None:
    """(mean, std, n) of ``values``, None if there are none."""
    return (*mean_std(values), len(values)) if values else None
