"""Live Keras as the oracle, with the same call contract as a layer spec's reference.

Building a Keras layer and tracing its call costs tens of
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

import numpy as np

from .spec import SIMPLE_RNN, LayerSpec


def _keras():
    from .._tf import keras_and_tf  # noqa: PLC0415  (TensorFlow only when the oracle is used)

    return keras_and_tf()


def versions() -> dict:
    keras, tf = _keras()
    return {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__}


def as_batch(inputs, mask=None, initial_state=None):
    """Give one sequence (T, D) a batch axis, as a Keras layer needs (``initial_state``
    may be one array or a list of one per state).

    Returns ``(x (B, T, D), mask, initial_state, unbatched, dtype)``, dtype being
    the Keras dtype name of the computation (integers compute in float32)."""
    x = np.asarray(inputs)
    unbatched = x.ndim == 2
    if unbatched:
        x = x[None]
        mask = None if mask is None else np.asarray(mask)[None]
        if isinstance(initial_state, (list, tuple)):
            initial_state = [np.asarray(s)[None] for s in initial_state]
        elif initial_state is not None:
            initial_state = np.asarray(initial_state)[None]
    dtype = x.dtype.name if x.dtype.kind == "f" else "float32"
    return x, mask, initial_state, unbatched, dtype


class KerasOracle:
    """Callable like the spec's reference function, computed by a real Keras layer.

    Extra keyword ``unroll`` selects Keras's unrolled loop (it needs a fixed T,
    so each T gets its own build).
    """

    def __init__(self, spec: LayerSpec = SIMPLE_RNN):
        self.spec = spec
        self._cache: dict[tuple, tuple] = {}
        self.builds = 0
        self.calls = 0

    def _layer(self, key):
        if key in self._cache:
            return self._cache[key]
        keras, tf = _keras()
        D, U, options, unroll, dtype, has_mask, n_states, T = key
        layer = getattr(keras.layers, self.spec.keras_class)(U, **dict(options), unroll=unroll, dtype=dtype)
        layer.build((None, T, D))
        signature = [tf.TensorSpec((None, T, D), dtype)]
        if has_mask:
            signature.append(tf.TensorSpec((None, T), tf.bool))
        signature += [tf.TensorSpec((None, U), dtype)] * n_states

        def eager(x, *extra):
            extra = list(extra)
            mask = extra.pop(0) if has_mask else None
            return layer(x, mask=mask, initial_state=extra or None, training=False)

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

    def __call__(self, inputs, *weights, unroll=False, **kwargs):
        spec = self.spec
        kwargs.update(zip(spec.weights, weights))
        activation = kwargs.get("activation", "tanh")
        if not isinstance(activation, str) and activation is not None:
            raise TypeError("the Keras oracle takes activation names only")
        initial_state = kwargs.get("initial_state")
        if initial_state is not None and not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        x, mask, states, unbatched, dtype = as_batch(inputs, kwargs.get("mask"), initial_state)
        B, T, D = x.shape
        U = spec.units(kwargs)
        options = tuple(sorted((k, v if isinstance(v, str) or v is None else bool(v))
                               for k, v in spec.keras_kwargs(kwargs).items()))
        key = (D, U, options, bool(unroll), dtype, mask is not None, 0 if states is None else len(states),
               T if unroll else None)
        layer, run = self._layer(key)
        for var, value in zip(layer.weights, spec.weight_values(kwargs)):
            var.assign(np.asarray(value, dtype=dtype))
        args = [x.astype(dtype)]
        if mask is not None:
            args.append(np.asarray(mask).astype(bool))
        args += [np.asarray(s, dtype=dtype) for s in states or ()]
        self.calls += 1
        out = run(*args)
        parts = [o.numpy() for o in out] if kwargs.get("return_state") else [out.numpy()]
        parts = [p[0] for p in parts] if unbatched else parts
        return tuple(parts) if kwargs.get("return_state") else parts[0]

    def stateful_chunks(self, inputs, *weights, chunks, **options):
        """Feed ``inputs`` (B, T, D) to a stateful Keras layer (with the layer's
        ``options``) in chunks of the given lengths; return each call's outputs
        (B, t_i, U) and final states (B, U)."""
        keras, tf = _keras()
        spec = self.spec
        kwargs = dict(zip(spec.weights, weights), **options, return_sequences=True, return_state=True)
        x = np.asarray(inputs)
        B, T, D = x.shape
        layer = getattr(keras.layers, spec.keras_class)(
            spec.units(kwargs), **spec.keras_kwargs(kwargs), stateful=True, dtype=x.dtype.name)
        layer.build((B, None, D))
        layer.set_weights(spec.weight_values(kwargs))
        outputs, states, start = [], [], 0
        for n in chunks:
            out = layer(x[:, start:start + n])
            outputs.append(out[0].numpy())
            states.append(tuple(s.numpy() for s in out[1:]))
            start += n
        return outputs, states
