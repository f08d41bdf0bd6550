"""``numbnn sweep`` and ``numbnn report``: parse, call :mod:`numbnn.sweep`, print tables."""

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from numbnn.cli.common import app, handle_errors, print_json

PIPED_WIDTH = 200  # a table piped to a file or a test keeps its rows on one line each


def _print(table: Table) -> None:
    """Tables are the commands' output: stdout (progress bars go to stderr)."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=PIPED_WIDTH)
    console.print(table)


@app.command(
    epilog=(
        "Existing cluster: `dask scheduler --port 8786` on one machine; on every machine "
        "`NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 dask worker tcp://HOST:8786 "
        "--nworkers CORES --nthreads 1`; then `numbnn sweep SPEC --scheduler tcp://HOST:8786 --out DIR`. "
        "Workers need numbnn and FashionMNIST ($NUMBNN_DATA or --data-dir), not --out: results and checkpoints "
        "come back through Dask and only this command writes DIR."
    )
)
@handle_errors
def sweep(
    spec: Path = typer.Argument(..., help="Sweep spec (TOML): \\[defaults], \\[grid] and/or \\[\\[runs]]; see examples/sweep_*.toml."),
    scheduler: Optional[str] = typer.Option(
        None, help="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786) \\[default: start a local cluster]."
    ),
    workers: Optional[int] = typer.Option(
        None, help="Local cluster: worker processes, one single-threaded run each \\[default: one per core]."
    ),
    out: Optional[Path] = typer.Option(None, help="Results directory \\[default: runs/sweeps/<the spec's name>]."),
    set_: Optional[list[str]] = typer.Option(
        None, "--set", help="Override KEY=VALUE for every run, repeatable: a training setting (--set epochs=1 "
        "--set limit=2000) or a model argument (--set model_args.clip=2). Overrides change the runs' keys."
    ),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Directory holding FashionMNIST, as every worker sees it."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs, their keys and states; train nothing."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Train every configuration of a sweep spec as Dask tasks and record accuracy and cost per run.

    Each run writes `OUT/<key>/checkpoint.h5` and `metrics.json` (config, test accuracy, epochs, seconds, history,
    params/size/FLOPs/BOPs/OPs/ACE); `<key>` is a hash of the run's full configuration. Started again, the sweep
    skips runs whose metrics.json exists and retries failed ones. A failing run writes error.json and does not
    stop the others; the command then exits with status 1. Then: `numbnn report OUT`.
    """
    # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.sweep import load_spec, parse_overrides, plan, run_sweep

    loaded = load_spec(spec, parse_overrides(set_ or []))
    out = out if out is not None else Path("runs") / "sweeps" / loaded.name
    if dry_run:
        states = plan(loaded, out)
        table = Table(title=f"{loaded.name}: {len(states)} runs in {out}")
        for column in ("run", "model", "epochs", "key", "state"):
            table.add_column(column)
        for run, state in states:
            table.add_row(run.label, run.model, str(run.train["epochs"]), run.key, state)
        _print(table)
        if json_output:
            print_json({"name": loaded.name, "out": str(out),
                        "runs": [{"key": run.key, "label": run.label, "state": state, **run.config} for run, state in states]})
        return
    outcome = run_sweep(loaded, out, scheduler=scheduler, workers=workers, data_dir=data_dir)
    _print(_results_table(f"{loaded.name}: {len(outcome.records)} runs", outcome.records))
    typer.echo(
        f"{outcome.sweep.name}: {len(outcome.ran)} run(s) trained, {len(outcome.skipped)} already finished, "
        f"{len(outcome.failed)} failed, in {outcome.wall_seconds:.1f} s on {outcome.cluster}; results in {outcome.out}"
    )
    if json_output:
        print_json(outcome.as_dict())
    if any(record["status"] != "finished" for record in outcome.records):
        raise typer.Exit(1)


@app.command()
@handle_errors
def report(
    sweep_dir: Path = typer.Argument(..., help="Results directory of `numbnn sweep` (its --out)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the report \\[default: SWEEP_DIR/report]."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the PNG and SVG plots (needs matplotlib)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Tabulate a sweep and plot accuracy against cost with the Pareto fronts marked.

    Writes results.csv and results.md (a Markdown table), and as PNG and SVG: accuracy_vs_ops, accuracy_vs_ace,
    accuracy_vs_size (a point per run, the Pareto front of runs no other run beats on both accuracy and cost
    drawn as a step line) and training_curves (training loss and test accuracy per epoch, a line per run).
    A spec with \\[\\[claims]] adds claims.md (each claim's arms over their seeds and its verdict: holds when the
    difference points the expected way by more than 2 standard errors, within noise inside them). A sweep with
    claims or with seeds (runs equal but for the seed) adds arms.md (mean ± std per arm) and
    arms_accuracy_vs_ops, arms_accuracy_vs_ace (error bars over seeds) and arms_test_accuracy.
    """
    from numbnn.sweep import write_report  # deferred: keeps `numbnn --help` fast (start-up time)

    result = write_report(sweep_dir, out, plots=plots)
    _print(_results_table(result.title, result.records, result.fronts))
    if result.claims:
        _print(_claims_table(result.title, result.claims))
    typer.echo(f"wrote {len(result.files)} file(s) to {result.files[0].parent}")
    if json_output:
        print_json(result.as_dict())


def _results_table(title: str, records: list[dict], fronts: Optional[dict] = None) -> Table:
    """One row per run; a failed run shows its status, its error goes in the caption."""
    from numbnn.sweep.report import fronts_of, human  # deferred: keeps `numbnn --help` fast (start-up time)

    table = Table(title=title)
    for column in ("run", "model", "acc.", "epochs", "min", "params", "KiB", "OPs", "ACE"):
        table.add_column(column, justify="left" if column in ("run", "model") else "right")
    if fronts is not None:
        table.add_column("front")
    table.add_column("key", no_wrap=True)
    errors = []
    for record in records:
        model = record.get("config", {}).get("model", "")
        if record["status"] != "finished":
            cells = [record["label"], model, f"[red]{record['status']}[/red]"] + [""] * 6
            if record["status"] == "failed":
                errors.append(f"{record['key']}: {record['error_type']}: {record['error']}")
        else:
            cost = record["cost"]
            cells = [record["label"], model, f"{record['test_accuracy']:.2%}", str(record["epochs"]),
                     f"{record['seconds'] / 60:.1f}", f"{cost['params']:,}", f"{cost['size_bytes'] / 1024:.1f}",
                     human(cost["ops"]), human(cost["ace"])]
        if fronts is not None:
            cells.append(fronts_of(record["key"], fronts))
        table.add_row(*cells, record["key"])
    if errors:
        table.caption = "\n".join(errors)
    return table


def _claims_table(title: str, claims: list) -> Table:
    """One row per claim: the two arms measured, their difference (± 2 SE), the verdict and the cost ratios."""
    # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.sweep.claims_table import show_difference, show_ratios, show_value

    table = Table(title=f"{title}: claims (verdict: difference vs 2 standard errors)")
    for column in ("claim", "arm vs baseline", "arm", "baseline", "difference", "verdict", "cost arm/baseline"):
        table.add_column(column, justify="right" if column in ("arm", "baseline", "difference") else "left")
    for result in claims:
        claim = result.claim
        table.add_row(claim.name, f"{claim.arm} vs {claim.baseline} ({claim.metric}, {claim.expect})",
                      show_value(result.arm, claim.metric), show_value(result.baseline, claim.baseline_metric),
                      show_difference(result), result.verdict, show_ratios(result.cost_ratios))
    return table
