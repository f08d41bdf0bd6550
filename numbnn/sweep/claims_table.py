"""The claims table and the arms table of a report, as Markdown (the rules are in :mod:`numbnn.sweep.claims`).

Accuracies are shown in percent (mean ± sample std over seeds, the number of runs in brackets), their
differences in percentage points with ± 2 SE; costs with SI suffixes and as the ratio arm / baseline.
An arm trained for fewer epochs than its model's default recipe, or on part of the training set, says
so in its schedule ("3 of 7 epochs", "limit 20000"): the budget cut it short.
"""

from __future__ import annotations

import math

from numbnn.sweep.arms import COST_METRICS, Arm, summarize
from numbnn.sweep.claims import CLAIM_COSTS, COST_NAMES, ClaimResult
from numbnn.formatting import count as human


def show_value(summary: tuple[float, float, int] | None, metric: str) -> str:
    """'90.12 ± 0.21% (3)' for an accuracy, '10.4M (3)' for a cost."""
    if summary is None:
        return "no runs"
    mean, std, n = summary
    if metric in COST_METRICS:
        return f"{human(mean)} ({n})"
    spread = "" if math.isnan(std) else f" ± {100 * std:.2f}"
    return f"{100 * mean:.2f}{spread}% ({n})"


def show_difference(result: ClaimResult) -> str:
    """'+1.47 ± 0.40 pts' (± 2 SE) for accuracies; '-13M (0.444x)' for a cost."""
    if result.difference is None:
        return ""
    if result.claim.exact:
        ratio = result.arm[0] / result.baseline[0] if result.baseline[0] else math.nan
        return f"{'+' if result.difference >= 0 else '-'}{human(abs(result.difference))} ({ratio:.3g}x)"
    noise = "" if math.isnan(result.two_se) else f" ± {100 * result.two_se:.2f}"
    return f"{100 * result.difference:+.2f}{noise} pts"


def show_ratios(ratios: dict) -> str:
    """'BOPs 0.444x, FLOPs 1x, ...' for the costs both arms have."""
    return ", ".join(f"{COST_NAMES[cost]} {ratios[cost]:.3g}x" for cost in CLAIM_COSTS if ratios.get(cost) is not None)


def claims_markdown(results: list[ClaimResult]) -> str:
    lines = ["| claim | source | arm vs baseline (metric, expected) | arm | baseline | difference (± 2 SE) | verdict | cost arm / baseline |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for r in results:
        c = r.claim
        metric = c.metric if c.metric == c.baseline_metric else f"{c.metric} vs {c.baseline_metric}"
        lines.append(f"| {c.name} | {c.source} | {c.arm} vs {c.baseline} ({metric}, {c.expect}) "
                     f"| {show_value(r.arm, c.metric)} | {show_value(r.baseline, c.baseline_metric)} "
                     f"| {show_difference(r)} | **{r.verdict}** | {show_ratios(r.cost_ratios)} |")
    return "\n".join(lines) + "\n"


def schedule(arm: Arm, recipe_epochs: int | None) -> str:
    """'7 epochs', or '3 of 7 epochs' when shorter than the model's recipe; ', limit N' on part of the data."""
    train = arm.config["train"]
    epochs = train["epochs"]
    text = f"{epochs} of {recipe_epochs} epochs" if recipe_epochs and epochs < recipe_epochs else f"{epochs} epochs"
    return text + (f", limit {train['limit']}" if train.get("limit") else "")


def run_seconds(record: dict) -> float:
    """A run's wall seconds: its last task's, plus the epochs it continued from if it was resumed (those
    ran in an earlier task, perhaps an earlier sweep; each epoch's seconds are in the history)."""
    resumed = record.get("resumed_from_epoch") or 0
    return record.get("seconds", 0.0) + sum(epoch.get("seconds", 0.0) for epoch in record.get("history", [])[:resumed])


def run_minutes(arm: Arm) -> str:
    """Wall minutes of the arm's runs, summed over seeds, and the CPU(s) they ran on (when recorded)."""
    minutes = sum(run_seconds(record) for record in arm.records) / 60
    cpus = sorted({record["cpu_model"] for record in arm.records if record.get("cpu_model")})
    return f"{minutes:.1f}" + (f" ({'; '.join(cpus)})" if cpus else "")


def arms_markdown(arms: list[Arm], recipe_epochs: dict) -> str:
    """One row per arm: seeds, test accuracy mean ± std, schedule, every cost, and the minutes it took.

    When some arm has a second head (ReActXGB: test accuracy is the trees', and the same runs' FC head is
    ReActNet-A), an "FC head" column gives that head's mean ± std too."""
    fc_column = any(arm.values("fc_test_accuracy") for arm in arms)
    header = ["arm", "model", "seeds", "test acc."] + (["FC head"] if fc_column else []) + \
        ["schedule", "BOPs", "FLOPs", "OPs", "ACE", "size (KiB)", "minutes (CPU)"]
    lines = ["| " + " | ".join(header) + " |",
             "|---|---|---|---:|" + ("---:|" if fc_column else "") + "---|---:|---:|---:|---:|---:|---|"]
    for arm in arms:
        costs = [human(arm.cost(name)) for name in ("bops", "flops", "ops", "ace")]
        accuracies = [show_value(summarize(arm.values("test_accuracy")), "test_accuracy")]
        if fc_column:
            fc = summarize(arm.values("fc_test_accuracy"))
            accuracies.append(show_value(fc, "fc_test_accuracy") if fc else "")
        lines.append(f"| {arm.label} | {arm.model} | {', '.join(map(str, arm.seeds))} | {' | '.join(accuracies)} "
                     f"| {schedule(arm, recipe_epochs.get(arm.model))} "
                     f"| {' | '.join(costs)} | {arm.cost('size_bytes') / 1024:.1f} | {run_minutes(arm)} |")
    return "\n".join(lines) + "\n"
