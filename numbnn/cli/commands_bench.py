"""``numbnn bench kernels`` (binary kernel MAC/s against float32 BLAS; logic in numbnn.bench.kernels) and
``numbnn bench train`` (seconds per training step; logic in numbnn.bench.train)."""

from typing import Optional

import typer
from rich.progress import Progress
from rich.table import Table

from numbnn.cli.common import bench_app, console, handle_errors, print_json


@bench_app.command("kernels")
@handle_errors
def kernels(
    repeats: int = typer.Option(5, min=1, help="Timed calls per kernel; the median is reported."),
    quick: bool = typer.Option(False, "--quick", help="Tiny shapes (seconds, for smoke tests); ratios are meaningless."),
    threads: Optional[int] = typer.Option(None, help="Threads for the Numba kernels and BLAS alike (default: all cores)."),
    json_output: bool = typer.Option(False, "--json", help="Also print one JSON object as the last stdout line."),
):
    """Binary MAC/s of binary_matmul and binary_conv2d against numpy's float32 BLAS matmul and an
    im2col+BLAS float conv on the same shapes (conv GEMMs `M=256*14*14 N=128 K=1152` and
    `M=256*7*7 N=256 K=2304`, `M=N=K=4096`; 3x3 convs at stride 1 and 2), with ratios, share of the machine's
    popcount ceiling, warm medians and the cold first call (compile or on-disk cache load)."""
    # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.bench.kernels import FULL_CONVS, FULL_MATMULS, QUICK_CONVS, QUICK_MATMULS, run_kernel_benchmarks
    from numbnn.threads import set_threads

    blas_threads = set_threads(threads, blas="native")["blas"] if threads is not None else None

    steps = 1 + (len(QUICK_MATMULS) + len(QUICK_CONVS) if quick else len(FULL_MATMULS) + len(FULL_CONVS))
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("benchmark", total=steps)

        started = []

        def advance(text: str) -> None:  # called as each step starts; the previous one is then done
            bar.update(task, description=text, advance=1 if started else 0)
            started.append(text)

        results = run_kernel_benchmarks(repeats=repeats, quick=quick, progress=advance)
    if threads is not None:
        results["machine"]["blas_threads"] = blas_threads
    console.print(_table(results))
    if json_output:
        print_json(results)


def _table(results: dict) -> Table:
    machine = results["machine"]
    table = Table(title=f"binary vs float32, {machine['ceiling_basis']}, popcount ceiling {machine['popcount_ceiling_gmacs']} GMAC/s")
    table.add_column("shape", no_wrap=True)
    for column in ("binary GMAC/s", "f32 GMAC/s", "ratio", "% ceiling", "cold ms", "pack %"):
        table.add_column(column, justify="right")
    for row in results["matmul"] + results["conv"]:
        float_key = "float_blas" if "float_blas_gmacs" in row else "float_im2col_blas"
        cold = "-" if row["binary_cold_ms"] is None else f"{row['binary_cold_ms']:.0f} {row['binary_cold_cache']}"
        pack = row.get("pack_share_of_binary_conv")
        table.add_row(
            row["label"], f"{row['binary_gmacs']}", f"{row[float_key + '_gmacs']}", f"{row['ratio']}x",
            f"{100 * row['share_of_popcount_ceiling']:.0f}", cold, "-" if pack is None else f"{100 * pack:.0f}",
        )
    return table


@bench_app.command("train")
@handle_errors
def train(
    model: str = typer.Option("reactnet-a", help="Registered model name (its recipe's optimizer and schedule)."),
    model_arg: Optional[list[str]] = typer.Option(
        None, "--model-arg", help="Model constructor argument KEY=VALUE, repeatable, as for `numbnn train` "
        "(e.g. --model-arg widths=48,96,192,192,384,384)."),
    batch_size: int = typer.Option(128, min=1, help="Images per step."),
    steps: int = typer.Option(20, min=1, help="Timed steps; the median is reported."),
    warmup: int = typer.Option(3, min=0, help="Untimed steps after the cold first one."),
    threads: Optional[int] = typer.Option(None, help="Threads for the Numba kernels and BLAS alike (default: all cores)."),
    profile: bool = typer.Option(False, "--profile", help="Also print the top functions and autograd ops of 3 profiled steps."),
    json_output: bool = typer.Option(False, "--json", help="Also print one JSON object as the last stdout line."),
):
    """Seconds per training step (forward, loss, backward, optimizer) on FashionMNIST-shaped data: median
    wall and process CPU time, images/s, projected seconds per 60,000-image epoch, the cold first step
    and the load average (wall times on a busy machine are not comparable)."""
    # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.bench.train import profile_train_step, time_train_steps
    from numbnn.models.model_args import parse_model_args

    model_args = parse_model_args(model, model_arg or [])
    with console.status(f"timing {model} training steps"):
        results = time_train_steps(model, batch_size, steps, warmup, threads, model_args)
        if profile:
            results["profile"] = profile_train_step(model, batch_size, threads=threads, model_args=model_args,
                                                    clock="cpu" if threads == 1 else "wall")
    table = Table(title=f"{model} training step, batch {batch_size}, threads {results['threads']['numba']}, "
                        f"load {results['load_average_1min'][0]}")
    for column in ("ms/step", "CPU ms/step", "images/s", "s/epoch", "cold first step s"):
        table.add_column(column, justify="right")
    table.add_row(f"{results['step_s'] * 1e3:.1f}", f"{results['step_cpu_s'] * 1e3:.1f}", f"{results['images_per_s']}",
                  f"{results['epoch_s']}", f"{results['cold_first_step_s']}")
    console.print(table)
    if profile:
        ops = Table(title=f"top autograd ops, ms per step ({results['profile']['clock']} clock, profiled)")
        for column in ("op", "ms", "calls"):
            ops.add_column(column, justify="right" if column != "op" else "left")
        for row in results["profile"]["top_ops"][:10]:
            ops.add_row(row["op"], f"{row['ms']:.1f}", str(row["calls"]))
        console.print(ops)
    if json_output:
        print_json(results)
