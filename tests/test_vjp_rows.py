"""A large batch's vjp split by rows over threads (``rnn_ref.backward.rows``) against
``tf.GradientTape`` on live Keras, and two joining bugs it must not hide.

Each layer's test module judges its vjp against Keras with the harness's budget
(``check_simple_rnn``, ``check_lstm``, ``check`` of tests/test_vjp*.py); here the same
checks run on a batch of 130 rows, which ``split_by_rows`` cuts into two blocks of 65 (two
threads are asked for, whatever the machine has), with every option that carries rows: a
mask with padded and fully padded rows, initial states, ``go_backwards``,
``return_sequences`` and ``return_state``. The forward output must equal the layer's own
(itself split the same way) bit for bit, as those checks require.

Mutants: the blocks' weight gradients not added (the first block's kept), and the
per-row gradients joined in the wrong order: both must be rejected by the same judgement.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("threadpoolctl")

import test_vjp  # noqa: E402  (tests/ is on sys.path)
import test_vjp_gru  # noqa: E402
import test_vjp_lstm  # noqa: E402
from rnn_ref.backward import rows  # noqa: E402
from rnn_ref.layers import parallel  # noqa: E402

B = 130  # two blocks of 65 rows (parallel.MIN_ROWS = 64)


def _mask(seed, T):
    rng = np.random.default_rng(seed)
    m = rng.random((B, T)) > 0.25
    m[0, :2] = False  # leading padding
    m[1, -2:] = False  # trailing padding
    m[B - 1] = False  # a fully padded row in the second block
    return tuple(tuple(int(v) for v in row) for row in m)


def _cases():
    T = 6
    common = dict(B=B, T=T, dtype="float32", return_sequences=True, return_state=True, go_backwards=True,
                  zero_output_for_mask=False, unbatched=False)
    return {
        "simple_rnn": (test_vjp.check_simple_rnn,
                       test_vjp.fixed_case(**common, mask=_mask(1, T), initial_state="array", seed=21)),
        "lstm": (test_vjp_lstm.check_lstm,
                 test_vjp_lstm.fixed_case(**common, mask=_mask(2, T), initial_state=True, seed=22)),
        "gru": (test_vjp_gru.check,
                test_vjp_gru.grid_case(1, "float32")._replace(**common, mask=_mask(3, T), initial_state="list",
                                                               reset_after=True, use_bias=True, seed=23)),
    }


@pytest.fixture
def two_threads():
    parallel.set_threads(2)
    assert len(parallel.blocks(B, parallel.threads())) == 2
    yield
    parallel.set_threads(None)


@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru"])
def test_split_vjp_matches_keras(layer, two_threads, monkeypatch):
    check, case = _cases()[layer]
    calls = []
    in_threads = parallel.in_threads
    monkeypatch.setattr(parallel, "in_threads", lambda fn, items: _count(calls, in_threads, fn, items))
    check(case)
    assert calls and all(n == 2 for n in calls), f"the vjp was not split in two blocks: {calls}"


def _count(calls, in_threads, fn, items):
    items = list(items)
    calls.append(len(items))
    return in_threads(fn, items)


def _first_block_weights(grads):
    """Bug: the weight gradients of the first block only (the sum over rows cut short)."""
    joined = rows_joined(grads)
    first = grads[0]
    return type(joined)(**{f: getattr(first, f) if f not in rows.PER_ROW and getattr(first, f) is not None
                           else getattr(joined, f) for f in first._fields})


def _blocks_swapped(grads):
    """Bug: the per-row gradients of the blocks joined in reverse order."""
    return rows_joined(grads[::-1])


rows_joined = rows._joined


@pytest.mark.parametrize("bug", [_first_block_weights, _blocks_swapped], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("layer", ["simple_rnn", "lstm", "gru"])
def test_joining_bugs_are_rejected(layer, bug, two_threads, monkeypatch):
    check, case = _cases()[layer]
    monkeypatch.setattr(rows, "_joined", bug)  # into the float64 truth too, as a real bug would be
    assert not check(case, raising=False).ok
