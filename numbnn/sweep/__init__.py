"""Accuracy-vs-cost sweeps: many training runs on Dask, one results directory, a report with Pareto fronts.

- :mod:`~numbnn.sweep.spec`: a TOML spec -> validated runs (grid and/or list, defaults, overrides);
- :mod:`~numbnn.sweep.runs`: one run's settings -> a normalised :class:`Run`, checked against the model and
  ``TrainConfig``;
- :mod:`~numbnn.sweep.hashing`: a run's key, the hash of its normalised configuration;
- :mod:`~numbnn.sweep.store`: ``<out>/<key>/{checkpoint.h5, metrics.json | error.json}``, written atomically;
- :mod:`~numbnn.sweep.task`: one run on a worker (``numbnn.train.run.train`` in-process, then ``summarize``);
- :mod:`~numbnn.sweep.cluster` / :mod:`~numbnn.sweep.runner`: a local or existing Dask cluster, skipping
  finished runs, one progress bar;
- :mod:`~numbnn.sweep.report` / :mod:`~numbnn.sweep.pareto` / :mod:`~numbnn.sweep.plots`: table, CSV, fronts,
  PNG and SVG plots;
- :mod:`~numbnn.sweep.arms` / :mod:`~numbnn.sweep.claims` / :mod:`~numbnn.sweep.claims_table`: runs grouped
  over seeds, the spec's ``[[claims]]`` and their verdicts (difference vs 2 standard errors), as Markdown.

Dask (``numbnn[sweep]``) and matplotlib (``numbnn[plot]``) are optional: they are imported only inside the
functions that need them, which raise :class:`~numbnn.errors.MissingDependencyError` when they are missing.
"""

from numbnn.sweep.hashing import config_hash
from numbnn.sweep.report import Report, build_report, write_report
from numbnn.sweep.runner import SweepOutcome, plan, run_sweep
from numbnn.sweep.runs import Run
from numbnn.sweep.spec import Sweep, load_spec, parse_overrides, parse_spec

__all__ = [
    "Report", "Run", "Sweep", "SweepOutcome", "build_report", "config_hash", "load_spec", "parse_overrides",
    "parse_spec", "plan", "run_sweep", "write_report",
]
