"""``numbnn summary``: the cost model of a registered model or a checkpoint, as a table or JSON."""

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from numbnn.cli.common import app, handle_errors, print_json
from numbnn.errors import InputError
from numbnn.formatting import byte_size, count


@app.command()
@handle_errors
def summary(
    checkpoint: Optional[Path] = typer.Argument(None, help="Checkpoint written by `numbnn train` (or use --model)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Registered model name (see `numbnn models`)."),
    model_arg: Optional[list[str]] = typer.Option(
        None, "--model-arg", help="Constructor argument KEY=VALUE for --model, read as the argument's type (repeatable)."),
    input_size: int = typer.Option(28, "--input-size", help="Height and width of the dummy input image."),
    json_output: bool = typer.Option(
        False, "--json", help="Print one JSON object (layers, total, conventions) instead of the table."),
):
    """Per-layer and total cost: parameters (binary/real), size, packed size, FLOPs, BOPs, OPs, ACE.

    Counts come from one eval-mode forward pass on a zero image. BOPs are 1-bit x 1-bit MACs, FLOPs all
    other MACs, OPs = BOPs/64 + FLOPs, ACE = sum over MACs of weight bits x activation bits (a float
    operand priced at 16 bits). Size: binary weights at 1 bit, real parameters at 32 bits.
    """
    # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.models.cost import default_input_shape, summarize

    network = _load_model(checkpoint, model, model_arg or [])
    report = summarize(network, default_input_shape(network, input_size))
    if json_output:
        print_json(report.as_dict())
        return
    console = Console()  # the table is the output: stdout
    if not console.is_terminal:
        console = Console(width=max(console.width, 160))  # piped: do not squeeze the columns to 80
    console.print(_table(report))


def _load_model(checkpoint, model, model_args):
    if (checkpoint is None) == (model is None):
        raise InputError("give exactly one of a checkpoint path or --model NAME")
    if checkpoint is not None:
        if model_args:
            raise InputError("--model-arg only applies to --model")
        if not checkpoint.is_file():
            raise InputError(f"checkpoint: no such file {str(checkpoint)!r}")
        import numbnn.io  # deferred: keeps `numbnn --help` fast (start-up time)

        return numbnn.io.load(checkpoint)
    from numbnn.models import build_model  # deferred: keeps `numbnn --help` fast (start-up time)
    from numbnn.models.model_args import parse_model_args  # deferred likewise

    return build_model(model, **parse_model_args(model, model_args))


def _table(report) -> Table:
    from numbnn.models.cost import CONVENTIONS  # deferred: keeps `numbnn --help` fast (start-up time)

    table = Table(title=f"{report.model}: cost per image of {'x'.join(map(str, report.input_shape[1:]))}",
                  caption="\n".join(report.notes + list(CONVENTIONS)), caption_justify="left")
    for column in ("layer", "kind", "output", "w x a bits", "binary params", "real params", "size", "packed size",
                   "FLOPs", "BOPs", "OPs", "ACE"):
        table.add_column(column, justify="left" if column in ("layer", "kind") else "right", no_wrap=True)
    for row in report.layers:
        table.add_row(*_cells(row, note=row.note))
    table.add_section()
    table.add_row(*_cells(report.total), style="bold")
    return table


def _cells(row, note: str = "") -> list[str]:
    bits = f"{row.weight_bits} x {row.act_bits}" if row.weight_bits is not None else ""
    shape = "x".join(map(str, row.output_shape[1:])) if row.output_shape else note
    return [row.name, row.kind, shape, bits, count(row.binary_params), count(row.real_params),
            byte_size(row.size_bytes), byte_size(row.packed_size_bytes), count(row.flops), count(row.bops),
            count(row.ops), count(row.ace)]


