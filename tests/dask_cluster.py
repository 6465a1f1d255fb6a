"""A Dask cluster started as a user starts one (docs/scale.md), for the tests that run on it:
a scheduler on a free port of 127.0.0.1 and two ``dask worker`` processes; stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from rnn_ref.commands.report import cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def external_cluster():
    """A scheduler on a free port of 127.0.0.1 and two ``dask worker`` processes
    of one thread each, started as a user would (docs/scale.md); stopped after."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, **cluster.WORKER_ENV}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            # no nanny: one process a worker, quicker to start and to stop than docs/scale.md's default
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--no-dashboard", "--memory-limit", "0",
                                           "--no-nanny"], env=env, stderr=subprocess.DEVNULL))
        yield address
    finally:
        for p in reversed(procs):  # the workers first: they leave a scheduler that still answers
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=1)
            except subprocess.TimeoutExpired:  # a worker holding TensorFlow may hang in its exit
                p.kill()
                p.wait()
