"""Where a report's tasks run: in this process, on a Dask ``LocalCluster``
started over this machine's cores, or on an existing cluster
(``--scheduler tcp://HOST:PORT``; docs/scale.md).

The workers are processes with one thread each: TensorFlow and hypothesis
are not thread-friendly here, and a process keeps its Keras layers
(``harness.oracle``'s LayerCache) from one task to the next. Dask is imported
only when a cluster is asked for, so ``--workers 0`` and ``report compare``
run without it.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Callable, Iterator

from rnn_ref.commands.report.tasks import Task, run_task

#: Environment of the local workers: one thread per worker for TensorFlow's own
#: pools, as for BLAS and OpenMP (Dask's nanny already sets OMP_NUM_THREADS,
#: MKL_NUM_THREADS and OPENBLAS_NUM_THREADS to 1), so that N workers use N cores.
WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}

#: Seconds to wait for an external scheduler to answer, and for its first worker.
CONNECT_TIMEOUT = 30

_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def check_scheduler(address: str) -> str:
    """``address`` if it looks like tcp://HOST:PORT; a ValueError saying so otherwise."""
    m = _ADDRESS.fullmatch(address or "")
    if not m or not 0 < int(m[2]) < 65536:
        raise ValueError(f"--scheduler must look like tcp://HOST:PORT, got {address!r}")
    return address


@contextmanager
def dask_client(workers: int, scheduler: str | None = None) -> Iterator:
    """A ``dask.distributed.Client``: on the cluster at ``scheduler``, or on a
    LocalCluster of ``workers`` processes of one thread each (closed on exit)."""
    from dask.distributed import Client, LocalCluster  # Dask only when a cluster is asked for

    if scheduler:
        try:
            client = Client(check_scheduler(scheduler), timeout=CONNECT_TIMEOUT)
        except OSError as e:
            raise ConnectionError(f"no Dask scheduler answered at {scheduler} within {CONNECT_TIMEOUT} s: {e}") from e
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError as e:
            client.close()
            raise ConnectionError(f"the scheduler at {scheduler} has no worker after {CONNECT_TIMEOUT} s") from e
        try:
            yield client
        finally:
            client.close()
        return
    # memory_limit=0: no worker is paused or restarted for its memory (a worker
    # holding TensorFlow and its built layers uses 1-2.5 GB; a restart would
    # drop the layers it has built).
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0, silence_logs=logging.ERROR, env=WORKER_ENV) as cluster, \
            Client(cluster) as client:
        yield client


def worker_threads(client) -> int:
    """The threads of the cluster's workers, all together (how many tasks run at once)."""
    return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1


def run_on_cluster(client, tasks: list[Task], estimate: Callable[[Task], float],
                   on_done: Callable[[Task, object], None]) -> dict:
    """Submit every task of ``tasks`` (the longest by ``estimate`` first) and
    return {task key: result}; ``on_done(task, result)`` is called as each
    one finishes, in the order they finish. A task that fails cancels the rest
    and raises here."""
    from dask.distributed import as_completed  # Dask only when a cluster is asked for

    futures = {client.submit(run_task, t, pure=False, priority=round(estimate(t) * 1000)): t for t in tasks}
    results = {}
    try:
        for future in as_completed(futures):
            task = futures[future]
            results[task.key] = future.result()
            on_done(task, results[task.key])
    finally:
        client.cancel([f for f in futures if not f.done()])
    return results


def run_in_process(tasks: list[Task], on_done: Callable[[Task, object], None], on_example=None) -> dict:
    """Run ``tasks`` one after the other in this process; {task key: result}."""
    results = {}
    for task in tasks:
        results[task.key] = run_task(task, on_example)
        on_done(task, results[task.key])
    return results


def environment_of(client):
    """The versions report.json records, read where the tasks ran: on a worker
    of ``client``, or here when it is None."""
    from rnn_ref.commands.report.results import environment

    return environment() if client is None else client.submit(environment, pure=False).result()
