"""A paper's claim as two arms of a sweep and an expected direction, and its verdict from the runs.

Declared in the spec (``[[claims]]``, see ``docs/sweep.md``)::

    [[claims]]
    name = "RPC needs 2.25x fewer BOPs than a binary 3x3 conv"
    source = "RB-Net, IEEE TCSVT 32(9):6414-6424, 2022, abstract"
    arm = "rbnet rpc"            # the paper's idea (an arm label: run label without seed=N)
    baseline = "rbnet 3x3"       # what it is compared with
    metric = "bops"              # default test_accuracy; baseline_metric defaults to metric
    expect = "lower"             # "higher" or "lower": arm's metric against the baseline's

The verdict rule: d = mean(arm) - mean(baseline), SE its standard error. The claim **holds** if d points
the expected way by more than 2 SE, is **within noise** if |d| <= 2 SE (SE > 0), and **does not hold**
otherwise. SE is Welch's sqrt(s_a^2/n_a + s_b^2/n_b) over the seeds of two arms; std(d_i)/sqrt(n) of the
per-run differences when both sides are the same runs (ReActXGB's tree head against its own FC head);
0 for costs, which the configuration fixes. An accuracy claim with fewer than 2 seeds on a side, or
with no finished run, gets no verdict ("too few seeds", "no runs").
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from numbnn.errors import InputError
from numbnn.sweep.arms import ACCURACY_METRICS, COST_METRICS, Arm, mean_std, record_value, summarize

CLAIM_KEYS = ("name", "source", "arm", "baseline", "metric", "baseline_metric", "expect")
EXPECTATIONS = ("higher", "lower")
CLAIM_COSTS = ("bops", "flops", "ops", "ace", "size_bytes")
COST_NAMES = {"bops": "BOPs", "flops": "FLOPs", "ops": "OPs", "ace": "ACE", "size_bytes": "size", "params": "params"}


@dataclass(frozen=True)
class Claim:
    name: str
    source: str
    arm: str
    baseline: str
    metric: str = "test_accuracy"
    baseline_metric: str = "test_accuracy"
    expect: str = "higher"

    @property
    def exact(self) -> bool:
        """A cost claim: the configuration fixes both values, so there is no noise."""
        return self.metric in COST_METRICS


@dataclass
class ClaimResult:
    claim: Claim
    arm: tuple[float, float, int] | None  # mean, std, runs
    baseline: tuple[float, float, int] | None
    difference: float | None
    two_se: float | None
    verdict: str
    cost_ratios: dict  # cost -> arm / baseline

    def as_dict(self) -> dict:
        return {"name": self.claim.name, "source": self.claim.source, "arm": self.claim.arm,
                "baseline": self.claim.baseline, "metric": self.claim.metric,
                "baseline_metric": self.claim.baseline_metric, "expect": self.claim.expect,
                "arm_value": self.arm, "baseline_value": self.baseline, "difference": self.difference,
                "two_se": self.two_se, "verdict": self.verdict, "cost_ratios": self.cost_ratios}


def parse_claims(entries, arm_labels: list[str]) -> list[Claim]:
    """Validate the spec's ``[[claims]]`` against the sweep's arm labels (each must name exactly one arm)."""
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError("claims: must be an array of tables ([[claims]] sections)")
    claims = []
    for i, entry in enumerate(entries):
        where = f"claims[{i}]"
        for key in entry:
            if key not in CLAIM_KEYS:
                close = difflib.get_close_matches(key, CLAIM_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(CLAIM_KEYS)})"
                raise InputError(f"{where}: unknown key {key!r}{hint}")
        for key in ("name", "source", "arm", "baseline"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise InputError(f"{where}.{key}: required, a non-empty string")
        for key in ("arm", "baseline"):
            _check_label(entry[key], arm_labels, f"{where}.{key}")
        metric = entry.get("metric", "test_accuracy")
        baseline_metric = entry.get("baseline_metric", metric)
        for key, value in (("metric", metric), ("baseline_metric", baseline_metric)):
            if value not in ACCURACY_METRICS + COST_METRICS:
                raise InputError(f"{where}.{key}: unknown metric {value!r} (known: {', '.join(ACCURACY_METRICS + COST_METRICS)})")
        if (metric in COST_METRICS) != (baseline_metric in COST_METRICS):
            raise InputError(f"{where}: metric {metric!r} and baseline_metric {baseline_metric!r} must both be accuracies or both costs")
        if entry["arm"] == entry["baseline"] and metric == baseline_metric:
            raise InputError(f"{where}: compares {entry['arm']!r} with itself; give another baseline or baseline_metric")
        expect = entry.get("expect", "higher")
        if expect not in EXPECTATIONS:
            raise InputError(f"{where}.expect: must be 'higher' or 'lower', got {expect!r}")
        claims.append(Claim(entry["name"], entry["source"], entry["arm"], entry["baseline"], metric, baseline_metric, expect))
    return claims


def _check_label(label: str, arm_labels: list[str], where: str) -> None:
    count = arm_labels.count(label)
    if count == 1:
        return
    if count > 1:
        raise InputError(f"{where}: {label!r} names {count} arms with different settings; give their runs distinct labels")
    close = difflib.get_close_matches(label, arm_labels, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (arms: {', '.join(sorted(set(arm_labels)))})"
    raise InputError(f"{where}: no arm labelled {label!r}{hint}")


def evaluate(claim: Claim, arms: list[Arm]) -> ClaimResult:
    """The claim's measurement and verdict from the finished runs of its two arms (module docstring)."""
    by_label = {arm.label: arm for arm in arms}
    arm, baseline = by_label.get(claim.arm), by_label.get(claim.baseline)
    ratios = {}
    if arm is not None and baseline is not None:
        for cost in CLAIM_COSTS:
            a, b = arm.cost(cost), baseline.cost(cost)
            ratios[cost] = a / b if a is not None and b else None
    a_values = arm.values(claim.metric) if arm is not None else []
    b_values = baseline.values(claim.baseline_metric) if baseline is not None else []
    if not a_values or not b_values:  # a sweep still running: show the side that has runs
        shown = [summarize(values) if values else None for values in (a_values, b_values)]
        return ClaimResult(claim, *shown, None, None, "no runs", ratios)
    a, b = summarize(a_values), summarize(b_values)
    difference = a[0] - b[0]
    if claim.exact:
        se = 0.0
    elif arm is baseline:
        pairs = [(record_value(r, claim.metric), record_value(r, claim.baseline_metric)) for r in arm.records]
        paired = [x - y for x, y in pairs if x is not None and y is not None]
        se = mean_std(paired)[1] / math.sqrt(len(paired)) if len(paired) > 1 else math.nan
    else:
        se = math.sqrt(a[1] ** 2 / a[2] + b[1] ** 2 / b[2]) if a[2] > 1 and b[2] > 1 else math.nan
    return ClaimResult(claim, a, b, difference, 2 * se, verdict(difference, 2 * se, claim.expect), ratios)


def verdict(difference: float, two_se: float, expect: str) -> str:
    """"holds", "within noise" or "does not hold" for ``difference`` = arm - baseline (module docstring)."""
    if math.isnan(two_se):
        return "too few seeds"
    signed = difference if expect == "higher" else -difference
    if signed > two_se:
        return "holds"
    if two_se > 0 and abs(difference) <= two_se:
        return "within noise"
    return "does not hold"
