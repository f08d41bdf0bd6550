"""Where a sweep runs: a Dask ``LocalCluster`` on this machine, or an existing Dask cluster.

Local default: one worker *process* per core, each with one thread, and the thread pools of Numba,
OpenMP, OpenBLAS and MKL limited to 1 in every worker (environment variables set before the worker
imports anything). Runs are independent, so N single-threaded runs side by side use N cores with no
synchronisation at all, which beats one N-threaded run at a time on small networks.

Existing cluster: start a scheduler and workers, then pass the scheduler's address::

    dask scheduler --host 0.0.0.0 --port 8786                      # on one machine
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        dask worker tcp://SCHEDULER:8786 --nworkers 8 --nthreads 1  # on every machine (8 = its cores)
    numbnn sweep spec.toml --scheduler tcp://SCHEDULER:8786 --out results/sweep

Every worker needs numbnn (the same version) and FashionMNIST (``$NUMBNN_DATA`` or ``--data-dir``). No
shared filesystem: each run trains in a temporary directory of its worker and returns its record and
checkpoint bytes through Dask; only the client writes ``--out``.
Each run also limits its own Numba/BLAS threads to 1, so a worker started with more threads still
runs one thread per task.
"""

from __future__ import annotations

import contextlib
import logging
import os

from numbnn.checks import check_int
from numbnn.errors import InputError, MissingDependencyError

WORKER_ENV = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
CONNECT_TIMEOUT_S = 20


def import_distributed():
    """``dask.distributed``, or a MissingDependencyError saying how to install it."""
    try:
        import distributed  # optional dependency (numbnn[sweep]), slow to import (start-up time)
    except ImportError:
        raise MissingDependencyError(
            "numbnn sweep needs dask.distributed: pip install 'numbnn[sweep]' (or: pip install 'dask[distributed]')"
        ) from None
    return distributed


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None):
    """Yield a ``distributed.Client``: connected to ``scheduler``, else to a fresh local cluster of
    ``workers`` single-threaded worker processes (default: one per core), shut down on exit."""
    distributed = import_distributed()
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers applies to the local cluster only; with --scheduler the cluster's workers run the sweep")
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as error:
            raise InputError(f"--scheduler {scheduler}: cannot connect ({error})") from None
        with client:
            yield client
        return
    workers = default_workers() if workers is None else workers
    check_int(workers, "--workers")
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, env=dict(WORKER_ENV),
        dashboard_address=None, silence_logs=logging.CRITICAL,  # shutdown races log tracebacks; failures surface through the tasks
    )
    with cluster, distributed.Client(cluster) as client:
        yield client
