"""`numbnn sweep --scheduler` needs no shared disk, and a worker killed mid-run loses nothing.

A `dask scheduler`, two `dask worker` processes and the `numbnn sweep` client run as separate
processes, each in its own empty working directory. Runs train in a worker's temporary directory and
come back (record and checkpoint bytes) through Dask; only the client writes --out. While a run is
in progress, the worker running it is killed with SIGKILL: the scheduler gives the task to the other
worker and every run still ends up finished, with a checkpoint that matches its record.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


import distributed  # noqa: F401  (the test extra installs it: missing, these tests fail rather than skip)

import numbnn.io
from numbnn.sweep import load_spec, store
from numbnn.sweep.task import train_run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "fashion-mnist"
SPEC = """
name = "scattered"
[defaults]
model = "bnn-small"
epochs = 3
limit = 192
test_limit = 50
batch_size = 32
[defaults.model_args]
widths = [4, 4, 8]
[grid]
seed = [0, 1]
"""
DEADLINE_S = 50
NUMBNN = [sys.executable, "-c", "import sys; from numbnn.cli.main import run; sys.argv[0] = 'numbnn'; run()"]


def test_a_task_needs_no_output_directory(tmp_path, monkeypatch):
    """The task's whole interface: a run in, its record and checkpoint bytes out (no --out to write)."""
    monkeypatch.chdir(tmp_path)
    run = load_spec_text(tmp_path, SPEC.replace("epochs = 3", "epochs = 1")).runs[0].as_dict()
    result = train_run(run, data_dir=str(DATA))
    assert result["record"]["status"] == "finished" and result["record"]["key"] == run["key"]
    assert result["checkpoint"][:11] == b"numbnn-hdf5"
    assert list(tmp_path.iterdir()) == [tmp_path / "spec.toml"]  # nothing written where it ran


def load_spec_text(directory: Path, text: str):
    path = directory / "spec.toml"
    path.write_text(text)
    return load_spec(path)


def start(args, cwd: Path, env: dict, log: str) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    with open(cwd.parent / f"{log}.log", "wb") as output:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_for(condition, what: str, deadline: float, processes=()):
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for process in processes:
            assert process.poll() is None, f"a process exited while waiting for {what}"
        time.sleep(0.1)


def test_a_worker_killed_mid_run_loses_nothing_and_no_disk_is_shared(tmp_path):
    from distributed import Client

    deadline = time.monotonic() + DEADLINE_S
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    spec = load_spec_text(tmp_path, SPEC)
    scheduler_file = tmp_path / "scheduler" / "scheduler.json"
    processes = {}
    try:
        processes["scheduler"] = start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                        "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                       tmp_path / "scheduler", env, "scheduler")
        wait_for(lambda: scheduler_file.exists() and scheduler_file.read_text().strip(), "the scheduler", deadline,
                 [processes["scheduler"]])
        address = json.loads(scheduler_file.read_text())["address"]
        for name in ("worker-a", "worker-b"):
            processes[name] = start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                     "--no-nanny", "--no-dashboard"], tmp_path / name, env, name)
        with Client(address, timeout=DEADLINE_S) as client:
            client.wait_for_workers(2, timeout=DEADLINE_S)
            pids = {pid: addr for addr, pid in client.run(os.getpid).items()}
            out = tmp_path / "client" / "out"
            processes["sweep"] = start([*NUMBNN, "sweep", str(tmp_path / "spec.toml"), "--scheduler", address,
                                        "--out", str(out), "--data-dir", str(DATA), "--json"],
                                       tmp_path / "client", env, "sweep")

            def busy_worker():
                return next((addr for addr, keys in client.processing().items()
                             if any("numbnn-run-" in str(key) for key in keys)), None)

            wait_for(lambda: busy_worker() is not None, "a run to start", deadline, [processes["sweep"]])
            time.sleep(1.0)  # well inside the run (importing and compiling alone take longer)
            victim = busy_worker()
            assert victim is not None, "the run ended before the kill"
            victim_name = next(name for name, process in processes.items() if pids.get(process.pid) == victim)
            os.kill(processes[victim_name].pid, signal.SIGKILL)
            processes[victim_name].wait(timeout=10)
        remaining = max(1.0, deadline - time.monotonic())
        assert processes["sweep"].wait(timeout=remaining) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
    finally:
        for process in reversed(list(processes.values())):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    survivor = pids[processes[next(name for name in ("worker-a", "worker-b") if name != victim_name)].pid]
    summary = json.loads((tmp_path / "sweep.log").read_text().strip().splitlines()[-1])
    assert (summary["ran"], summary["failed"]) == (len(spec.runs), 0)
    for run in spec.runs:
        record = json.loads((out / run.key / store.METRICS_FILE).read_text())
        assert record["status"] == "finished" and record["epochs"] == 3
        assert record["worker"] == survivor  # the killed worker's run was done again by the other one
        checkpoint = numbnn.io.load_checkpoint(out / run.key / store.CHECKPOINT_FILE)
        assert checkpoint.epoch == 3 and checkpoint.history == record["history"]
    for name in ("worker-a", "worker-b", "scheduler"):  # nothing of the sweep was written where they ran
        written = [p for p in (tmp_path / name).rglob("*") if p.suffix in (".h5", ".json") and p != scheduler_file]
        assert written == [], (name, written)
