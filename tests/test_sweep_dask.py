"""`numbnn sweep` on real Dask clusters and `numbnn report` on its results.

One tiny spec (3 runs that train on 96 images for 1 epoch, 1 run whose model cannot be built) runs
1. on a LocalCluster of 2 single-threaded workers started by the command, then is restarted after a
   simulated interruption (a run's metrics.json deleted), and
2. on a separately started `dask scheduler` + `dask worker` (subprocesses on 127.0.0.1, a free port).
The report is drawn from the local sweep's results.
"""

import csv
import json
import os
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

import distributed  # noqa: F401  (the test extra installs it: missing, these tests fail rather than skip)

from numbnn.cli.main import app
from numbnn.sweep import load_spec, store
from numbnn.sweep.pareto import dominates

runner = CliRunner()
SPEC = """
name = "tiny"
[defaults]
model = "bnn-small"
epochs = 1
limit = 96
test_limit = 100
batch_size = 48
[defaults.model_args]
widths = [8, 8, 16]

[[runs]]
seed = 0
[[runs]]
seed = 1
[[runs]]
model_args = { widths = [8, 16] }
lr = 0.004
[[runs]]
label = "cannot build"
model_args = { widths = [8, 12] }
"""
PROCESS_TIMEOUT_S = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sweep(*args):
    result = runner.invoke(app, ["sweep", *map(str, args), "--json"])
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def _metrics_bytes(out, keys):
    return {key: (out / key / store.METRICS_FILE).read_bytes() for key in keys}


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "tiny.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def local_sweep(spec, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    result, summary = _sweep(spec, "--workers", 2, "--out", out)
    return out, result, summary


def _check_first_sweep(spec, out, result, summary):
    """3 runs trained, 1 failed with its error recorded, the command exits 1 and prints the table."""
    keys = [run.key for run in load_spec(spec).runs]
    assert result.exit_code == 1, result.output
    assert (summary["runs"], summary["ran"], summary["failed"], summary["skipped"]) == (4, 3, 1, 0)
    assert [r["key"] for r in summary["results"]] == keys
    assert [r["status"] for r in summary["results"]] == ["finished", "finished", "finished", "failed"]
    assert summary["results"][3]["error"] == "InputError: a block's width can only grow by a whole factor, got 8 -> 12"
    for key in keys[:3]:
        record = json.loads((out / key / store.METRICS_FILE).read_text())
        assert (out / key / store.CHECKPOINT_FILE).stat().st_size > 0
        assert record["epochs"] == 1 and 0.0 <= record["test_accuracy"] <= 1.0 and record["cost"]["ops"] > 0
        assert record["threads"]["numba"] == record["threads"]["numba_pool"] == 1  # one thread per worker
    failure = json.loads((out / keys[3] / store.ERROR_FILE).read_text())
    assert failure["error_type"] == "InputError" and not (out / keys[3] / store.METRICS_FILE).exists()
    assert "cannot build" in result.stdout and "failed" in result.stdout
    return keys


def test_local_cluster_sweep_records_results_and_failures_then_restarts_without_redoing(spec, local_sweep):
    out, result, summary = local_sweep
    assert summary["cluster"] == "local cluster, 2 single-threaded workers"
    keys = _check_first_sweep(spec, out, result, summary)

    # Interrupted sweep: the third run's metrics.json never got written. A restart trains that run again,
    # retries the failed one, and leaves the two finished runs alone (their files stay byte for byte).
    (out / keys[2] / store.METRICS_FILE).unlink()
    kept = _metrics_bytes(out, keys[:2])
    again, summary = _sweep(spec, "--workers", 2, "--out", out)
    assert again.exit_code == 1, again.output
    assert (summary["ran"], summary["failed"], summary["skipped"]) == (1, 1, 2)
    assert _metrics_bytes(out, keys[:2]) == kept
    assert json.loads((out / keys[2] / store.METRICS_FILE).read_text())["epochs"] == 1


def test_report_writes_table_csv_and_png_svg_plots(local_sweep, tmp_path):
    import matplotlib.image as matplotlib_image

    out, _, _ = local_sweep
    result = runner.invoke(app, ["report", str(out), "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "cannot build" in result.stdout and "front" in result.stdout

    with open(tmp_path / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["status"] for row in rows) == ["failed", "finished", "finished", "finished"]
    finished = [row for row in rows if row["status"] == "finished"]
    for axis in ("ops", "ace", "size_bytes"):  # the front is exactly the undominated runs
        points = {row["key"]: (float(row[axis]), float(row["test_accuracy"])) for row in finished}
        expected = [k for k, p in points.items() if not any(dominates(q, p) for q in points.values())]
        assert sorted(report["pareto"][axis]) == sorted(expected)
    assert (tmp_path / "results.md").read_text().count("\n| ") == 4

    sizes = {"accuracy_vs_ops": (750, 1050), "accuracy_vs_ace": (750, 1050), "accuracy_vs_size": (750, 1050),
             "training_curves": (825, 1650), "accuracy_vs_lr": (750, 1050)}  # lr differs between two runs
    for stem, (height, width) in sizes.items():
        png = tmp_path / f"{stem}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE and png.stat().st_size > 5000
        assert matplotlib_image.imread(png).shape[:2] == (height, width)  # decodes, at the figure's size
        svg = (tmp_path / f"{stem}.svg").read_text()
        assert svg.startswith("<?xml") and "<svg" in svg and len(svg) > 5000
    assert sorted(report["files"]) == sorted(str(p) for p in tmp_path.iterdir())


@pytest.fixture
def external_cluster(tmp_path):
    """A `dask scheduler` on 127.0.0.1 (port 0: the OS picks a free one) and one single-threaded `dask worker`."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    processes = []
    try:
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert time.monotonic() < deadline, "the dask scheduler did not start"
            assert processes[0].poll() is None, "the dask scheduler exited"
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
             "--no-dashboard"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=PROCESS_TIMEOUT_S) as client:
            client.wait_for_workers(1, timeout=PROCESS_TIMEOUT_S)
        yield address
    finally:
        for process in reversed(processes):  # worker first, then the scheduler
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def test_the_same_spec_runs_on_a_separately_started_scheduler(spec, external_cluster, tmp_path):
    assert external_cluster.startswith("tcp://127.0.0.1:")
    out = tmp_path / "out"
    result, summary = _sweep(spec, "--scheduler", external_cluster, "--out", out)
    assert summary["cluster"] == external_cluster
    _check_first_sweep(spec, out, result, summary)
