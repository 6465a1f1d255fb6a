"""The machine: cores, BLAS, thread pools and versions (``machine_info``), and the least time
it allows for the pipeline's recurrent loop (``machine_limit``)."""

from __future__ import annotations

import os
import platform
import threading
import time

import numpy as np

from rnn_ref.layers import parallel
from rnn_ref._tf import keras_and_tf
from rnn_ref.commands.bench.timing import limit_blas_threads


def machine_info() -> dict:
    """Cores, BLAS, thread pools and versions."""
    keras, tf = keras_and_tf()
    info = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        cores_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
        tensorflow=tf.__version__,
        keras=keras.__version__,
        keras_backend=keras.backend.backend(),
        tf_intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads(),  # 0: TF's choice
        tf_inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "TF_ENABLE_ONEDNN_OPTS") if k in os.environ},
    )
    try:
        build = np.show_config(mode="dicts").get("Build Dependencies", {})
        info["numpy_blas"] = {k: build.get(k, {}) for k in ("blas", "lapack")}
    except Exception as exc:  # older NumPy: no mode="dicts"
        info["numpy_blas"] = f"unavailable ({exc})"
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415  (optional: reported when installed)

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "architecture",
                                   "threading_layer", "filepath")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


def machine_limit(B, T, E, U, repeats, gates=1) -> dict:
    """The least time this machine allows for the loop of a recurrent layer of U units and ``gates``
    blocks (SimpleRNN 1, GRU 3, LSTM 4) over T steps at batch B,
    split as ``rnn_ref.layers.parallel`` splits it: T times the recurrent product (rows, U) @ (U, G U) of
    the largest block at the measured sgemm rate, plus T times one activation pass over its gates
    (tanh on (rows, G U)) at the measured elementwise rate, each rate measured with every block's thread running the
    same kernel at once (one BLAS thread each), as NumPy calls deliver it (its call overhead
    included). The input projection, the add of each step, the embedding and the Dense layer
    are left out: the limit is below what any implementation of these formulas could reach.
    """
    split = B >= parallel.MIN_ROWS and parallel.threads() > 1  # rnn_ref.layers.parallel.run_loop's rule
    blocks = parallel.blocks(B, parallel.threads()) if split else [slice(0, B)]
    rows, n = max(r.stop - r.start for r in blocks), len(blocks)
    rng = np.random.default_rng(5)
    G = gates
    R = (0.1 * rng.standard_normal((U, G * U))).astype(np.float32)

    def kernel_seconds(kernel):
        """Seconds for T calls of kernel, every block's thread at once; median over repeats."""
        def work(out, i):
            h = rng.standard_normal((rows, U)).astype(np.float32)
            a = rng.standard_normal((rows, G * U)).astype(np.float32)
            z = np.empty_like(a)
            kernel(h, a, z)  # warm
            t = time.perf_counter()
            for _ in range(T):
                kernel(h, a, z)
            out[i] = time.perf_counter() - t

        per_repeat = []
        with limit_blas_threads(1 if split else None):
            for _ in range(max(3, repeats)):
                out = [0.0] * n
                threads = [threading.Thread(target=work, args=(out, i)) for i in range(n)]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                per_repeat.append(max(out))
        return float(np.median(per_repeat))

    mm = kernel_seconds(lambda h, a, z: np.dot(h, R, out=z))
    act = kernel_seconds(lambda h, a, z: np.tanh(a, out=z))
    flops = 2.0 * rows * U * G * U * T
    return dict(seconds=mm + act, recurrent_products_s=mm, activation_s=act, threads=n, rows_per_thread=rows,
                sgemm_gflops_per_thread=flops / mm / 1e9, tanh_gelems_per_thread=rows * G * U * T / act / 1e9)


def limit_goal(limit_over_numpy: float, goal_limit: float) -> dict:
    """The goal on the machine's limit: rnn_ref's time within ``goal_limit`` times the limit's."""
    return dict(limit_goal=f"within {goal_limit:g}x of the machine's limit",
                limit_goal_met=bool(limit_over_numpy * goal_limit >= 1))
