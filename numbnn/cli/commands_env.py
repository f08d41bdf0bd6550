"""``numbnn env``: the versions, CPU features and Numba threading setup, for bug reports."""

import typer

from numbnn.cli.common import app, handle_errors, print_json


@app.command()
@handle_errors
def env(json_output: bool = typer.Option(False, "--json", help="Print one JSON object instead of lines.")):
    """Show numbnn/numba/llvmlite/numpy versions, the CPU model and its vector flags (avx2, avx512f,
    avx512_vpopcntdq), whether generated code uses VPOPCNTQ, Numba's threading layer, thread count
    and kernel cache directory. Paste it into bug reports and benchmark records."""
    from numbnn.kernels.platform import environment  # deferred: keeps `numbnn --help` fast (start-up time)

    info = environment()
    if json_output:
        print_json(info)
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = " ".join(f"{name}={'yes' if flag else 'no'}" for name, flag in value.items())
        typer.echo(f"{key}: {value}")
