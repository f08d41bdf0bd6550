"""``numbnn export``, ``numbnn predict`` and ``numbnn bench model``: parse, call numbnn.inference (the
input files through numbnn.io.images, the timing in numbnn.bench.model), print.

(``numbnn eval`` on a packed file, or ``eval CKPT --packed``, dispatches to numbnn.evaluation.packed
from cli/commands_train.py.)
"""

from pathlib import Path

import typer

from numbnn.cli.common import app, bench_app, console, handle_errors, print_json


@app.command()
@handle_errors
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by `numbnn train`."),
    out: Path = typer.Option(..., "--out", "-o", help="Packed model file to write (HDF5)."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Compile a checkpoint into a packed inference model and write it.

    Binary weights are stored packed (1 bit each), batch norm, weight scales and RSign thresholds are
    folded into per-channel steps or integer thresholds, float layers stay float32. The compiled model
    is checked against the float model on random inputs before it is written.
    """
    from numbnn.inference.export import export_checkpoint  # deferred: keeps `numbnn --help` fast (start-up time)

    with console.status("compiling"):
        report = export_checkpoint(checkpoint, out)
    ops = ", ".join(f"{name} x{count}" for name, count in sorted(report["ops"].items()))
    typer.echo(f"{report['model']}: wrote {report['out']} ({report['file_bytes']:,} bytes; checkpoint "
               f"{report['checkpoint_bytes']:,} bytes; summary's packed size {report['packed_size_bytes']:,} bytes)")
    typer.echo(f"ops: {ops}")
    if json_output:
        print_json(report)


@app.command()
@handle_errors
def predict(
    model: Path = typer.Argument(..., help="Packed model file written by `numbnn export`."),
    input_file: Path = typer.Option(..., "--input", "-i", help="IDX file, .npy array, or picture (PNG, JPEG, BMP, GIF, WebP)."),
    top: int = typer.Option(1, "--top", min=1, help="List the K most likely classes per image."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Images per forward pass."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object as the last stdout line."),
):
    """Classify images with a packed model: one line per image with its classes and probabilities.

    Inputs: uint8 images as in FashionMNIST (28 x 28, light garment on black; IDX files as shipped,
    .npy arrays [N, 28, 28], pictures converted to gray), or a float32 .npy array [N, 28, 28, 1]
    that is already normalised. Nothing is resized.
    """
    from numbnn.inference.model import load  # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.io.images import read_images

    packed = load(model)
    probabilities = packed.predict_proba(read_images(input_file, size=packed.input_shape[:2]), batch_size)
    classes = packed.classes
    k = min(top, packed.num_classes)
    order = (-probabilities).argsort(axis=1, kind="stable")[:, :k]
    predictions = []
    for index, (row, ranked) in enumerate(zip(probabilities, order)):
        best = [{"class": int(c), "label": classes[c], "probability": round(float(row[c]), 6)} for c in ranked]
        predictions.append({"index": index, **best[0], "top": best})
        typer.echo(f"{index}: " + ", ".join(f"{b['label']} ({b['class']}) {100 * b['probability']:.1f}%" for b in best))
    if json_output:
        print_json({"model": str(model), "input": str(input_file), "predictions": predictions})


@bench_app.command("model")
@handle_errors
def bench_model(
    checkpoint: Path = typer.Argument(..., help="Checkpoint written by `numbnn train`."),
    repeats: int = typer.Option(5, min=1, help="Timed calls per measurement; the median is reported."),
    quick: bool = typer.Option(False, "--quick", help="Batches 1 and 8, no cold-start runs (a smoke test)."),
    no_cold: bool = typer.Option(False, "--no-cold", help="Skip the cold-start runs in fresh processes."),
    json_output: bool = typer.Option(False, "--json", help="Also print one JSON object as the last stdout line."),
):
    """Images/s and latency of the packed model against the float-simulated model, batch 1 and 256.

    Warm: median of repeated calls in this process. Cold: a fresh process loading the model and
    predicting one image, with Numba's on-disk cache and with an empty cache (everything compiles).
    Binary layers: each one's G binary MAC/s in the graph against the bare kernel on its shape.
    """
    from rich.table import Table  # deferred: keeps `numbnn --help` fast (start-up time)

    from numbnn.bench.model import run_model_benchmark  # deferred: keeps `numbnn --help` fast (start-up time)

    with console.status("benchmark") as status:
        results = run_model_benchmark(checkpoint, repeats=repeats, quick=quick, cold=not no_cold,
                                      progress=lambda text: status.update(text))
    table = Table(title=f"{results['model']}: packed vs float model, {results['threads']} threads, "
                        f"load average {results['load_average'][0]}")
    for column in ("batch", "packed img/s", "packed ms", "float img/s", "float ms", "speedup"):
        table.add_column(column, justify="right")
    for key, speedup in results["speedup"].items():
        packed, float_ = results["packed"][key], results["float"][key]
        table.add_row(key.removeprefix("batch_"), f"{packed['images_per_s']:,.0f}", f"{packed['latency_ms']:.2f}",
                      f"{float_['images_per_s']:,.0f}", f"{float_['latency_ms']:.2f}", f"{speedup}x")
    console.print(table)
    largest = max(int(key.removeprefix("batch_")) for key in results["speedup"])
    cache_runs = results["packed_cache_runs"]
    console.print(f"packed at batch {largest} in runs of {cache_runs['images_per_run']} sized to the CPU's cache "
                  f"(opt-in: PackedModel.cache_batch_size): {cache_runs[f'batch_{largest}']['images_per_s']:,.0f} img/s")
    console.print(f"packed time per op kind at batch {largest} (ms): "
                  + ", ".join(f"{name} {ms:.2f}" for name, ms in results["packed_op_ms"].items()))
    binary = results["binary_layers"]["total"]
    if binary.get("share_of_kernel") is not None:
        console.print(f"binary layers at batch {largest}: {binary['graph_gmacs']:,} G binary MAC/s in the graph, "
                      f"{binary['kernel_gmacs']:,} G for the bare kernel on the same shapes "
                      f"({100 * binary['share_of_kernel']:.0f}%; per layer in --json's binary_layers)")
    for kind, runs in results.get("cold", {}).items():
        for cache, run in runs.items():
            console.print(f"cold {kind}, {cache.replace('_', ' ')}: first call {run['first_call_s']:.2f} s, "
                          f"load {run['load_s']:.2f} s, process wall {run['process_wall_s']:.2f} s")
    if json_output:
        print_json(results)

