"""The report's figures (matplotlib, the optional extra ``numbnn[plot]``), saved as PNG and SVG.

Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so no GUI backend or
global state is touched: PNG files are rendered by the Agg backend, SVG files by the SVG backend, in
any process (a notebook keeps its own backend). Sizes are fixed (no tight bounding box), so a figure's
pixel size is ``FIGSIZE x DPI``.
"""

from __future__ import annotations

import math
from pathlib import Path

from numbnn._atomic import atomic_path
from numbnn.errors import MissingDependencyError
from numbnn.sweep.arms import mean_std

DPI = 150
TRADEOFF_FIGSIZE = (7.0, 5.0)  # inches: 1050 x 750 pixels
CURVES_FIGSIZE = (11.0, 5.5)  # inches: 1650 x 825 pixels
FORMATS = ("png", "svg")
LOG_AXIS_SPAN = 10
TREE_MARKER = "*"  # a tree head's accuracy, drawn beside its network's curve
MAX_POINT_LABELS = 30  # above this many runs, points are not labelled (the legend still names the models)


def _matplotlib():
    try:
        import matplotlib  # optional dependency (numbnn[plot]), slow to import (start-up time)
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("numbnn report needs matplotlib for its plots: pip install 'numbnn[plot]'") from None
    return matplotlib, Figure


def save_figure(figure, stem: Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` atomically; return both paths.

    Reproducible: no creation date in the files and a fixed salt for the SVG's element ids, so the same
    records give the same bytes and a re-made report changes in git only where a figure changed.
    """
    matplotlib, _ = _matplotlib()
    paths = []
    with matplotlib.rc_context({"svg.hashsalt": "numbnn"}):
        for fmt in FORMATS:
            path = stem.with_suffix(f".{fmt}")
            with atomic_path(path) as tmp:
                figure.savefig(tmp, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
    return paths


def model_colors(records: list[dict]) -> dict[str, tuple]:
    """One colour per model name (matplotlib's tab10 cycle, models in sorted order)."""
    matplotlib, _ = _matplotlib()
    palette = matplotlib.colormaps["tab10"]
    models = sorted({r["config"]["model"] for r in records})
    return {model: palette(i % 10) for i, model in enumerate(models)}


def tradeoff_figure(records: list[dict], cost_key: str, axis_title: str, front: list[str], title: str):
    """Test accuracy against one cost, a point per run coloured by model, the Pareto front as a step line.

    The step line holds each front point's accuracy until the next front point's cost: the best accuracy
    reachable at or below a given cost. Costs spanning a factor of ``LOG_AXIS_SPAN`` or more are drawn on a
    log axis.
    """
    _, Figure = _matplotlib()
    figure = Figure(figsize=TRADEOFF_FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    colors = model_colors(records)
    by_key = {r["key"]: r for r in records}
    for model, color in colors.items():
        points = [r for r in records if r["config"]["model"] == model]
        axes.scatter([r["cost"][cost_key] for r in points], [100 * r["test_accuracy"] for r in points],
                     color=color, s=36, alpha=0.85, label=model, zorder=3)
    front_points = [by_key[key] for key in front]
    axes.plot([r["cost"][cost_key] for r in front_points], [100 * r["test_accuracy"] for r in front_points],
              drawstyle="steps-post", color="black", linewidth=1.2, zorder=2, label="Pareto front")
    axes.scatter([r["cost"][cost_key] for r in front_points], [100 * r["test_accuracy"] for r in front_points],
                 s=110, facecolors="none", edgecolors="black", linewidths=1.4, zorder=4)
    if len(records) <= MAX_POINT_LABELS:
        for r in records:
            axes.annotate(r["label"], (r["cost"][cost_key], 100 * r["test_accuracy"]), fontsize=7,
                          xytext=(4, 4), textcoords="offset points", zorder=5)
    costs = [r["cost"][cost_key] for r in records]
    if min(costs) > 0 and max(costs) >= LOG_AXIS_SPAN * min(costs):
        axes.set_xscale("log")
    axes.set_xlabel(axis_title)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"{title}: accuracy vs {axis_title.split(' (')[0].split(' per ')[0]}")
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.12, y=0.08)  # room for the point labels
    axes.legend(fontsize=8, loc="best")
    return figure


def parameter_figure(records: list[dict], section: str, name: str, title: str):
    """Test accuracy against one swept setting (e.g. PokeBNN's clip bound B): a point per run, and per model
    a line through the mean accuracy at each value (the mean over seeds when a value was run several times)."""
    _, Figure = _matplotlib()
    figure = Figure(figsize=TRADEOFF_FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    for model, color in model_colors(records).items():
        points = [(r["config"][section][name], 100 * r["test_accuracy"]) for r in records
                  if r["config"]["model"] == model and r["config"][section].get(name) is not None]
        if not points:
            continue
        axes.scatter(*zip(*points), color=color, s=30, alpha=0.7, zorder=3)
        values = sorted({x for x, _ in points})
        means = [sum(y for x, y in points if x == value) / sum(1 for x, _ in points if x == value) for value in values]
        axes.plot(values, means, color=color, marker="o", linewidth=1.4, label=model, zorder=2)
    xs = [r["config"][section][name] for r in records if r["config"][section].get(name) is not None]
    if min(xs) > 0 and max(xs) >= LOG_AXIS_SPAN * min(xs):
        axes.set_xscale("log")
    kind = "model argument" if section == "model_args" else "training setting"
    axes.set(xlabel=f"{name} ({kind})", ylabel="test accuracy (%)", title=f"{title}: accuracy vs {name}")
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.08, y=0.1)
    axes.legend(fontsize=8, loc="best")
    return figure


def curves_figure(records: list[dict], title: str):
    """Training curves, one line per run: training loss and test accuracy after each epoch."""
    matplotlib, Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator  # optional dependency (numbnn[plot]), slow to import (start-up time)

    figure = Figure(figsize=CURVES_FIGSIZE, layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    palette = matplotlib.colormaps["tab20"]
    for i, record in enumerate(sorted(records, key=lambda r: r["label"])):
        history = record["history"]
        epochs = [h["epoch"] for h in history]
        style = {"color": palette(i % 20), "marker": "o", "markersize": 3, "linewidth": 1.2}
        loss_axes.plot(epochs, [h["train_loss"] for h in history], label=record["label"], **style)
        accuracy = [100 * a if (a := network_accuracy(h)) is not None else math.nan for h in history]
        accuracy_axes.plot(epochs, accuracy, **style)
        for epoch, tree_accuracy in tree_accuracies(history):
            accuracy_axes.plot([epoch], [100 * tree_accuracy], color=style["color"], marker=TREE_MARKER, markersize=9,
                               linestyle="none")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="training loss")
    accuracy_axes.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy after each epoch")
    last_epoch = max(h["epoch"] for r in records for h in r["history"])
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, alpha=0.3)
        axes.set_xlim(0.5, last_epoch + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"{title}: training curves")
    figure.legend(loc="outside right upper", fontsize=7)
    return figure


def arms_tradeoff_figure(arms: list, cost_key: str, axis_title: str, title: str):
    """Mean test accuracy of each arm (runs equal but for the seed) against one cost, error bars one std."""
    _, Figure = _matplotlib()
    figure = Figure(figsize=TRADEOFF_FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    colors = model_colors([{"config": arm.config} for arm in arms])
    shown = set()
    for arm in arms:
        accuracy = [100 * v for v in arm.values("test_accuracy")]
        mean, spread = _mean_spread(accuracy)
        axes.errorbar(arm.cost(cost_key), mean, yerr=spread, fmt="o", color=colors[arm.model], capsize=4, markersize=6,
                      label=None if arm.model in shown else arm.model, zorder=3)
        shown.add(arm.model)
        axes.annotate(f"{arm.label} (n={len(accuracy)})", (arm.cost(cost_key), mean), fontsize=7,
                      xytext=(5, 4), textcoords="offset points")
    costs = [arm.cost(cost_key) for arm in arms]
    if min(costs) > 0 and max(costs) >= LOG_AXIS_SPAN * min(costs):
        axes.set_xscale("log")
    axes.set(xlabel=axis_title, ylabel="test accuracy (%), mean ± std over seeds",
             title=f"{title}: accuracy vs {axis_title.split(' ')[0]}, per arm")
    axes.grid(True, which="both", alpha=0.3)
    axes.margins(x=0.15, y=0.1)
    axes.legend(fontsize=8, loc="best")
    return figure


def arms_curves_figure(arms: list, title: str):
    """Test accuracy after each epoch, one line per arm: the mean over its seeds, a band of one std."""
    matplotlib, Figure = _matplotlib()
    from matplotlib.ticker import MaxNLocator  # optional dependency (numbnn[plot]), slow to import (start-up time)

    figure = Figure(figsize=CURVES_FIGSIZE, layout="constrained")
    axes = figure.add_subplot()
    palette = matplotlib.colormaps["tab20"]
    for i, arm in enumerate(arms):
        by_epoch: dict[int, list[float]] = {}
        trees: dict[int, list[float]] = {}
        for record in arm.records:
            for h in record["history"]:
                if (accuracy := network_accuracy(h)) is not None:
                    by_epoch.setdefault(h["epoch"], []).append(100 * accuracy)
            for epoch, tree_accuracy in tree_accuracies(record["history"]):
                trees.setdefault(epoch, []).append(100 * tree_accuracy)
        epochs = sorted(by_epoch)
        means, spreads = zip(*(_mean_spread(by_epoch[e]) for e in epochs)) if epochs else ((), ())
        color = palette(i % 20)
        axes.plot(epochs, means, color=color, marker="o", markersize=3, linewidth=1.3, label=f"{arm.label} (n={len(arm.records)})")
        axes.fill_between(epochs, [m - s for m, s in zip(means, spreads)], [m + s for m, s in zip(means, spreads)],
                          color=color, alpha=0.15, linewidth=0)
        for epoch, values in sorted(trees.items()):
            mean, spread = _mean_spread(values)
            axes.errorbar([epoch], [mean], yerr=[spread], color=color, marker=TREE_MARKER, markersize=9,
                          linestyle="none", label=f"{arm.label}: tree head")
    axes.set(xlabel="epoch", ylabel="test accuracy (%), mean ± std over seeds",
             title=f"{title}: test accuracy after each epoch, per arm")
    axes.grid(True, alpha=0.3)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.legend(loc="outside right upper", fontsize=7)
    return figure


def network_accuracy(record: dict) -> float | None:
    """The test accuracy of the trained network after an epoch: its FC head's where a tree head replaced it
    (ReActXGB's last epoch records both, and ``test_accuracy`` is then the trees'), so a curve stays one head."""
    return record.get("fc_test_accuracy", record.get("test_accuracy"))


def tree_accuracies(history: list[dict]) -> list[tuple[int, float]]:
    """(epoch, test accuracy) of every tree head fitted in a run's history (ReActXGB: its last epoch)."""
    return [(h["epoch"], h["tree_test_accuracy"]) for h in history if "tree_test_accuracy" in h]


def _mean_spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (0 for a single value: no bar rather than none at all)."""
    mean, std = mean_std(values)
    return mean, 0.0 if math.isnan(std) else std
