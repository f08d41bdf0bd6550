"""A sweep's report: one row per run (CSV and Markdown), the Pareto fronts, and the plots.

Costs come from each run's ``metrics.json`` (:func:`numbnn.models.cost.summarize` of the trained
checkpoint; conventions in :mod:`numbnn.models.cost`): OPs = BOPs/64 + FLOPs, ACE (a float MAC costs 256, a binary MAC 1),
model size with binary weights at 1 bit. Accuracy is the test accuracy after the run's last epoch
(for ReActXGB the tree head's). A run is on the front of a cost axis when no other finished run is
both cheaper and more accurate (:mod:`numbnn.sweep.pareto`).

Besides the cost plots, every numeric setting the sweep varies *within* one model (a model argument such
as PokeBNN's clip bound B, or a training setting such as ``lr``; seeds excepted) gets its own plot of
accuracy against that setting: a clip-bound study has one cost for all its runs, so this is its figure.

A sweep that declares claims (``[[claims]]``, :mod:`numbnn.sweep.claims`) also gets ``claims.md`` (each
claim, its two arms measured over their seeds, the verdict). One with claims or with seeds (some arm, runs
equal but for the seed, has two or more finished runs) gets ``arms.md`` (the arms, mean ± std over their
seeds) and three figures over the arms: accuracy vs OPs and vs ACE with error bars, and every arm's mean
test accuracy per epoch on one chart.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from numbnn._atomic import atomic_path
from numbnn.errors import InputError, UnknownModelError
from numbnn.sweep import store
from numbnn.sweep.arms import Arm, group_arms
from numbnn.sweep.claims import Claim, ClaimResult, evaluate
from numbnn.sweep.claims_table import arms_markdown, claims_markdown
from numbnn.formatting import count as human
from numbnn.sweep.pareto import pareto_front

# (row key, axis title, file stem) of every accuracy-vs-cost plot.
COST_AXES = (
    ("ops", "OPs per image (BOPs/64 + FLOPs)", "accuracy_vs_ops"),
    ("ace", "ACE per image (sum of weight bits x activation bits)", "accuracy_vs_ace"),
    ("size_bytes", "model size in bytes (binary weights at 1 bit)", "accuracy_vs_size"),
)
FRONT_NAMES = {"ops": "OPs", "ace": "ACE", "size_bytes": "size"}
COST_KEYS = ("params", "binary_params", "size_bytes", "packed_size_bytes", "flops", "bops", "ops", "ace")
CSV_COLUMNS = ("label", "model", "status", "test_accuracy", "epochs", "seconds", "train_seconds", *COST_KEYS,
               "pareto", "key", "model_args", "error")
CURVES_STEM = "training_curves"
ARM_COST_AXES = (("ops", "OPs per image (BOPs/64 + FLOPs)", "arms_accuracy_vs_ops"),
                 ("ace", "ACE per image (sum of weight bits x activation bits)", "arms_accuracy_vs_ace"))
ARM_CURVES_STEM = "arms_test_accuracy"


@dataclass
class Report:
    title: str
    rows: list[dict]  # finished runs by decreasing accuracy, then failed runs
    fronts: dict[str, list[str]]  # cost key -> keys of the runs on its Pareto front, by increasing cost
    files: list[Path] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    arms: list[Arm] = field(default_factory=list)
    claims: list[ClaimResult] = field(default_factory=list)  # the spec's claims, evaluated

    def as_dict(self) -> dict:
        return {"title": self.title, "runs": self.rows, "pareto": self.fronts, "files": [str(p) for p in self.files],
                "claims": [c.as_dict() for c in self.claims]}


def build_report(sweep_dir) -> Report:
    """Read every run record under ``sweep_dir`` and compute the rows and fronts (no files written)."""
    records = store.load_records(sweep_dir)
    if not records:
        raise InputError(f"{sweep_dir}: no finished or failed runs (no <key>/metrics.json or error.json)")
    sweep = store.load_sweep_file(sweep_dir) or {}
    title = sweep.get("name") or Path(sweep_dir).name
    finished = [r for r in records if r.get("status") == "finished" and r.get("test_accuracy") is not None]
    finished.sort(key=lambda r: (-r["test_accuracy"], r["cost"]["ops"], r["label"]))
    finished_keys = {r["key"] for r in finished}
    others = sorted((r for r in records if r["key"] not in finished_keys), key=lambda r: r["label"])
    fronts = {}
    for key, _, _ in COST_AXES:
        points = [(r["cost"][key], r["test_accuracy"]) for r in finished]
        fronts[key] = [finished[i]["key"] for i in pareto_front(points)]
    rows = [result_row(r, fronts) for r in finished + others]
    arms = group_arms(records)
    claims = [evaluate(claim, arms) for claim in _claims(sweep, sweep_dir)]
    return Report(title, rows, fronts, records=finished + others, arms=arms, claims=claims)


def _claims(sweep: dict, sweep_dir) -> list[Claim]:
    """The claims ``numbnn sweep`` stored in ``sweep.json`` (validated when the spec was read)."""
    try:
        return [Claim(**entry) for entry in sweep.get("claims", [])]
    except TypeError as error:
        raise InputError(f"{Path(sweep_dir) / store.SWEEP_FILE}: unreadable claims ({error})") from None


def write_report(sweep_dir, out=None, *, plots: bool = True) -> Report:
    """Write ``results.csv``, ``results.md`` and (``plots``) PNG + SVG plots into ``out``
    (default ``<sweep_dir>/report``); returns the :class:`Report` with the files written."""
    report = build_report(sweep_dir)
    out = Path(out) if out is not None else Path(sweep_dir) / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"--out: cannot create the directory {str(out)!r}: {error.strerror}") from None
    report.files.append(_write_csv(report.rows, out / "results.csv"))
    report.files.append(_write_text(markdown_table(report.rows), out / "results.md"))
    by_arms = bool(report.claims) or any(len(arm.records) > 1 for arm in report.arms)
    if report.claims:
        report.files.append(_write_text(claims_markdown(report.claims), out / "claims.md"))
    if by_arms:
        report.files.append(_write_text(arms_markdown(report.arms, _recipe_epochs(report.arms)), out / "arms.md"))
    finished = [r for r in report.records if r.get("status") == "finished"]
    if plots and finished:
        from numbnn.sweep import plots as plotting  # matplotlib: optional, slow to import (start-up time)

        for key, axis_title, stem in COST_AXES:
            figure = plotting.tradeoff_figure(finished, key, axis_title, report.fronts[key], report.title)
            report.files += plotting.save_figure(figure, out / stem)
        report.files += plotting.save_figure(plotting.curves_figure(finished, report.title), out / CURVES_STEM)
        for section, name in swept_parameters(finished):
            figure = plotting.parameter_figure(finished, section, name, report.title)
            report.files += plotting.save_figure(figure, out / f"accuracy_vs_{name}")
        if by_arms:
            for key, axis_title, stem in ARM_COST_AXES:
                report.files += plotting.save_figure(plotting.arms_tradeoff_figure(report.arms, key, axis_title, report.title), out / stem)
            report.files += plotting.save_figure(plotting.arms_curves_figure(report.arms, report.title), out / ARM_CURVES_STEM)
    return report


def _recipe_epochs(arms: list[Arm]) -> dict:
    """Each model's default-recipe epochs, where the model is still registered (for "3 of 7 epochs")."""
    from numbnn.train.config import model_recipe  # deferred: the training stack is slow to import (start-up time)

    epochs = {}
    for model in {arm.model for arm in arms}:
        try:
            epochs[model] = model_recipe(model).get("epochs")
        except UnknownModelError:
            continue
    return epochs


def swept_parameters(records: list[dict]) -> list[tuple[str, str]]:
    """``(section, name)`` of each numeric setting that differs between two runs of the same model.

    ``section`` is "model_args" or "train"; the seed is not a parameter. A name that would overwrite a
    cost plot (``ops``, ``ace``, ``size``) or appears in both sections is plotted once, as a model argument.
    """
    found, taken = [], {stem.removeprefix("accuracy_vs_") for _, _, stem in COST_AXES}
    for section in ("model_args", "train"):
        for name in sorted({name for r in records for name in r["config"][section]}):
            values_by_model = defaultdict(set)
            for record in records:
                value = record["config"][section].get(name)
                if value is not None:
                    values_by_model[record["config"]["model"]].add(value if _is_number(value) else repr(value))
            numeric = all(_is_number(v) for values in values_by_model.values() for v in values)
            varies = any(len(values) > 1 for values in values_by_model.values())
            if numeric and varies and name not in taken and (section, name) != ("train", "seed"):
                found.append((section, name))
                taken.add(name)
    return found


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def result_row(record: dict, fronts: dict) -> dict:
    """One flat row of the table: label, model, status, accuracy, time, costs, fronts, key, arguments, error."""
    config = record.get("config", {})
    row = {
        "label": record.get("label"),
        "model": config.get("model"),
        "status": record.get("status"),
        "test_accuracy": record.get("test_accuracy"),
        "epochs": record.get("epochs"),
        "seconds": record.get("seconds"),
        "train_seconds": record.get("train_seconds"),
        **{key: record.get("cost", {}).get(key) for key in COST_KEYS},
        "pareto": fronts_of(record["key"], fronts),
        "key": record["key"],
        "model_args": json.dumps(config.get("model_args", {}), sort_keys=True, separators=(",", ":")),
        "error": f"{record['error_type']}: {record['error']}" if record.get("status") == "failed" else "",
    }
    for name, value in sorted(config.get("train", {}).items()):
        row[f"train.{name}"] = value
    return row


def fronts_of(key: str, fronts: dict) -> str:
    """The cost axes whose Pareto front the run ``key`` is on, e.g. "OPs ACE"."""
    return " ".join(FRONT_NAMES[name] for name, keys in fronts.items() if key in keys)


def markdown_table(rows: list[dict]) -> str:
    """The table for a README: label, model, accuracy, epochs, minutes, params, size, BOPs, FLOPs, OPs, ACE, front.

    Minutes are the run's training and evaluation epochs (``train_seconds``), which stay right for a run
    an interrupted sweep resumed; ``seconds`` (this call's wall time) is the fallback for older records.
    """
    lines = ["| run | model | test acc. | epochs | train min | params | size (KiB) | BOPs | FLOPs | OPs | ACE | Pareto front |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        if row["status"] != "finished":
            lines.append(f"| {row['label']} | {row['model']} | {row['status']}: {row['error']} |  |  |  |  |  |  |  |  |  |")
            continue
        lines.append(
            f"| {row['label']} | {row['model']} | {row['test_accuracy']:.2%} | {row['epochs']} | {(row['train_seconds'] or row['seconds']) / 60:.1f} "
            f"| {row['params']:,} | {row['size_bytes'] / 1024:.1f} | {human(row['bops'])} | {human(row['flops'])} "
            f"| {human(row['ops'])} | {human(row['ace'])} | {row['pareto']} |"
        )
    return "\n".join(lines) + "\n"


def _write_csv(rows: list[dict], path: Path) -> Path:
    columns = list(CSV_COLUMNS) + sorted({name for row in rows for name in row if name.startswith("train.")})
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return path


def _write_text(text: str, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
