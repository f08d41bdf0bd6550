"""``numbnn bench kernels``: binary kernel MAC/s against float32 BLAS; logic in numbnn.kernels.bench."""

from typing import Optional

import typer
from rich.progress import Progress
from rich.table import Table

from cli.common import bench_app, console, handle_errors, print_json


@bench_app.command("kernels")
@handle_errors
def kernels(
    repeats: int = typer.Option(5, min=1, help="Timed calls per kernel; the median is reported."),
    quick: bool = typer.Option(False, "--quick", help="Tiny shapes (seconds, for smoke tests); ratios are meaningless."),
    threads: Optional[int] = typer.Option(None, help="Threads for the Numba kernels and BLAS alike [default: all cores]."),
    json_output: bool = typer.Option(False, "--json", help="Also print one JSON object as the last stdout line."),
):
    """Binary MAC/s of binary_matmul and binary_conv2d against numpy's float32 BLAS matmul and an
    im2col+BLAS float conv on the same shapes (conv GEMMs M=256*14*14 N=128 K=1152 and M=256*7*7
    N=256 K=2304, M=N=K=4096; 3x3 convs at stride 1 and 2), with ratios, share of the machine's
    popcount ceiling, warm medians and the cold first call (compile or on-disk cache load)."""
    from numbnn.kernels.bench import FULL_CONVS, FULL_MATMULS, QUICK_CONVS, QUICK_MATMULS, run_kernel_benchmarks
    from numbnn.train.threads import set_threads

    blas_threads = set_threads(threads)["blas"] if threads is not None else None

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
