"""Live Keras as the oracle, with the same call contract as ``rnn_ref.simple_rnn``.

Building a ``SimpleRNN`` layer and tracing its call costs tens of
milliseconds, so each configuration (units, input size, dtype, options) is
built once, and compiled once with unknown batch and time sizes when it is
used a second time (a configuration met once runs eagerly, as tracing costs
2-3 eager calls); an example then only copies its weights into the layer's
variables and runs: about 1 ms, against 27 ms for a fresh layer.

Eager and compiled Keras may differ in the last bit for a few activations
(measured: hard_sigmoid, silu, hard_silu, mish, sparse_plus), so Keras's
figures in a run depend slightly on which configurations came before; both
are Keras, and the budget of ``tolerance.judge`` is far wider than one ulp.
"""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _keras():
    from .._tf import keras_and_tf  # noqa: PLC0415  (TensorFlow only when the oracle is used)

    return keras_and_tf()


def versions() -> dict:
    keras, tf = _keras()
    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


def as_batch(inputs, mask=None, initial_state=None):
    """Give one sequence (T, D) a batch axis, as a Keras layer needs.

    Returns ``(x (B, T, D), mask, initial_state, unbatched, dtype)``, dtype being
    the Keras dtype name of the computation (integers compute in float32)."""
    x = np.asarray(inputs)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
        mask = None if mask is None else np.asarray(mask)[None]
        initial_state = None if initial_state is None else np.asarray(initial_state)[None]
    dtype = x.dtype.name if x.dtype.kind == "f" else "float32"
    return x, mask, initial_state, unbatched, dtype


class KerasSimpleRNN:
    """Callable like ``rnn_ref.simple_rnn``, computed by a real Keras layer.

    Extra keyword ``unroll`` selects Keras's unrolled loop (it needs a fixed T,
    so each T gets its own build).
    """

    def __init__(self):
        self._cache: dict[tuple, tuple] = {}
        self.builds = 0
        self.calls = 0

    def _layer(self, key):
        if key in self._cache:
            return self._cache[key]
        keras, tf = _keras()
        (D, U, activation, use_bias, return_sequences, return_state, go_backwards,
         zero_output_for_mask, unroll, dtype, has_mask, has_state, T) = key
        layer = keras.layers.SimpleRNN(
            U,
            activation=activation,
            use_bias=use_bias,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            zero_output_for_mask=zero_output_for_mask,
            unroll=unroll,
            dtype=dtype,
        )
        layer.build((None, T, D))
        signature = [tf.TensorSpec((None, T, D), dtype)]
        if has_mask:
            signature.append(tf.TensorSpec((None, T), tf.bool))
        if has_state:
            signature.append(tf.TensorSpec((None, U), dtype))

        def eager(x, *extra):
            extra = list(extra)
            mask = extra.pop(0) if has_mask else None
            state = [extra.pop(0)] if has_state else None
            return layer(x, mask=mask, initial_state=state, training=False)

        compiled = tf.function(eager, input_signature=signature, reduce_retracing=True)
        uses = [0]

        def run(*args):
            # Tracing costs 2-3 eager calls, so a configuration seen once is run
            # eagerly and only one seen again is compiled.
            uses[0] += 1
            return (eager if uses[0] == 1 else compiled)(*args)

        self._cache[key] = (layer, run)
        self.builds += 1
        return layer, run

    def __call__(
        self,
        inputs,
        kernel,
        recurrent_kernel,
        bias=None,
        *,
        activation="tanh",
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        mask=None,
        initial_state=None,
        zero_output_for_mask=False,
        unroll=False,
    ):
        if not isinstance(activation, str) and activation is not None:
            raise TypeError("the Keras oracle takes activation names only")
        x, mask, initial_state, unbatched, dtype = as_batch(inputs, mask, initial_state)
        B, T, D = x.shape
        U = np.shape(recurrent_kernel)[0]
        key = (D, U, activation, bias is not None, bool(return_sequences), bool(return_state),
               bool(go_backwards), bool(zero_output_for_mask), bool(unroll), dtype,
               mask is not None, initial_state is not None, T if unroll else None)
        layer, run = self._layer(key)
        weights = [kernel, recurrent_kernel] + ([bias] if bias is not None else [])
        for var, value in zip(layer.weights, weights):
            var.assign(np.asarray(value, dtype=dtype))
        args = [x.astype(dtype)]
        if mask is not None:
            args.append(np.asarray(mask).astype(bool))
        if initial_state is not None:
            args.append(np.asarray(initial_state, dtype=dtype))
        self.calls += 1
        out = run(*args)
        if return_state:
            output, state = (o.numpy() for o in out)
            return (output[0], state[0]) if unbatched else (output, state)
        output = out.numpy()
        return output[0] if unbatched else output

    def stateful_chunks(self, inputs, kernel, recurrent_kernel, bias, chunks, *, activation="tanh"):
        """Feed ``inputs`` (B, T, D) to a stateful Keras layer in chunks of the given
        lengths; return each call's outputs (B, t_i, U) and states (B, U)."""
        keras, tf = _keras()
        x = np.asarray(inputs)
        B, T, D = x.shape
        U = np.shape(recurrent_kernel)[0]
        layer = keras.layers.SimpleRNN(
            U, activation=activation, use_bias=bias is not None, stateful=True,
            return_sequences=True, return_state=True, dtype=x.dtype.name,
        )
        layer.build((B, None, D))
        layer.set_weights([kernel, recurrent_kernel] + ([bias] if bias is not None else []))
        outputs, states, start = [], [], 0
        for n in chunks:
            out, state = layer(x[:, start:start + n])
            outputs.append(out.numpy())
            states.append(state.numpy())
            start += n
        return outputs, states
