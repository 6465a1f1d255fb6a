"""Live Keras as the oracle, with the same call contract as a layer spec's reference.

Building a Keras layer and tracing its call costs tens of
milliseconds, so each configuration (units, input size, dtype, options) is
built once, and compiled once with unknown batch and time sizes when it is
used a second time or on a sequence longer than ``EAGER_MAX_T`` (a short
configuration met once runs eagerly, as tracing costs 2-3 eager calls); an example then only copies its weights into the layer's
variables and runs: about 1 ms, against 27 ms for a fresh layer. The built layers
are shared by the oracles of a process (``SHARED_MAX``), as property after property
and test module after test module meet the same small configurations.

Eager and compiled Keras may differ in the last bit for a few activations
(measured: hard_sigmoid, silu, hard_silu, mish, sparse_plus), so Keras's
figures in a run depend slightly on which configurations came before; both
are Keras, and the budget of ``tolerance.judge`` is far wider than one ulp.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from rnn_ref.models.registry import SIMPLE_RNN, LayerSpec


#: The longest sequence a configuration's first call runs eagerly (measured on
#: 2 cores: an eager LSTM or GRU step costs about 4 ms, tracing the loop about
#: as much as 16 to 24 eager steps).
EAGER_MAX_T = 16


#: Built layers are shared by every oracle of a process (a property, the next property
#: and the next test module meet the same small configurations), up to this many per
#: layer and kind (single layers, Bidirectional, gradients), the least recently used
#: dropped first. ``KerasOracle(spec, private=True)`` keeps its own, unbounded.
SHARED_MAX = 256
_SHARED: dict[tuple, "LayerCache"] = {}


class LayerCache(OrderedDict):
    """Built layers by configuration, the least recently used dropped beyond ``limit``."""

    def __init__(self, limit=None):
        super().__init__()
        self.limit = limit

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if self.limit is not None and len(self) > self.limit:
            self.popitem(last=False)


def _keras():
    from rnn_ref._tf import keras_and_tf  # noqa: PLC0415  (TensorFlow only when the oracle is used)

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


def _runner(layer, D, U, T, dtype, has_mask, n_states):
    """A function running the built ``layer`` on ``(x, [mask], *initial_states)``.

    Tracing costs 2-3 eager calls of a short sequence, so a configuration's
    first call runs eagerly when its sequence is short and the function is
    compiled otherwise (an eager call costs a Python step per time step)."""
    _, tf = _keras()
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
        uses[0] += 1
        short = np.shape(args[0])[1] <= EAGER_MAX_T
        return (eager if uses[0] == 1 and short else compiled)(*args)

    return run


def _assign(layer, values, dtype) -> None:
    """Copy ``values`` into the built ``layer``'s variables, in its weights' order."""
    for var, value in zip(layer.weights, values):
        var.assign(np.asarray(value, dtype=dtype))


def _run_on(run, x, mask, states, dtype):
    """``run`` (from ``_runner``) on x (B, T, D), the mask (B, T) and the initial states."""
    args = [x.astype(dtype)]
    if mask is not None:
        args.append(np.asarray(mask).astype(bool))
    args += [np.asarray(s, dtype=dtype) for s in states or ()]
    return run(*args)


class KerasOracle:
    """Callable like the spec's reference function, computed by a real Keras layer.

    Extra keyword ``unroll`` selects Keras's unrolled loop (it needs a fixed T,
    so each T gets its own build). ``bidirectional`` runs Keras's Bidirectional
    wrapper around the layer, called like ``rnn_ref.bidirectional``.
    """

    def __init__(self, spec: LayerSpec = SIMPLE_RNN, *, private: bool = False):
        self.spec = spec

        def built(kind):
            return LayerCache() if private else _SHARED.setdefault((spec.name, kind), LayerCache(SHARED_MAX))

        self._cache, self._bidirectional_cache, self._gradient_cache = built("layer"), built("bidirectional"), \
            built("gradients")
        self.builds = 0
        self.calls = 0

    def _layer(self, key):
        found = self._cache.get(key)
        if found is not None:
            return found
        keras, _ = _keras()
        D, U, options, unroll, dtype, has_mask, n_states, T = key
        layer = getattr(keras.layers, self.spec.keras_class)(U, **dict(options), unroll=unroll, dtype=dtype)
        layer.build((None, T, D))
        run = _runner(layer, D, U, T, dtype, has_mask, n_states)
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
        _assign(layer, spec.weight_values(kwargs), dtype)
        self.calls += 1
        out = _run_on(run, x, mask, states, dtype)
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

    # -- Bidirectional ------------------------------------------------------------------
    def bidirectional(self, inputs, forward, backward, *, merge_mode="concat", unroll=False, **options):
        """Keras ``Bidirectional(Layer(...), merge_mode=merge_mode)`` around the spec's
        layer, called like ``rnn_ref.bidirectional(spec.reference, ...)``: ``forward``
        and ``backward`` are each direction's weights in the reference's order
        (kernel, recurrent_kernel[, bias]); ``options`` are the layer's keyword
        options (activation, return_sequences, mask, ...) except go_backwards and
        zero_output_for_mask, which Bidirectional sets itself; ``initial_state``
        lists the forward states, then the backward ones.

        Returns what Keras returns, as NumPy: the merged output, or the pair
        (y, y_rev) with merge_mode None; with return_state the flat tuple
        (output(s), *forward_states, *backward_states)."""
        spec = self.spec
        for name in ("go_backwards", "zero_output_for_mask"):
            if name in options:
                raise TypeError(f"{name} is not an option of Bidirectional: it sets it on the inner layers itself")
        fwd, bwd = dict(zip(spec.weights, forward)), dict(zip(spec.weights, backward))
        if (fwd.get("bias") is None) != (bwd.get("bias") is None):
            raise ValueError("the forward and backward layers must both have a bias or both have none")
        kwargs = {**options, **fwd}
        initial_state = options.get("initial_state")
        if initial_state is not None:
            initial_state = list(initial_state)
            if len(initial_state) != 2 * len(spec.states):
                raise ValueError(f"initial_state must list {2 * len(spec.states)} arrays, the forward "
                                 f"states then the backward ones, got {len(initial_state)}")
        x, mask, states, unbatched, dtype = as_batch(inputs, options.get("mask"), initial_state)
        B, T, D = x.shape
        U = spec.units(kwargs)
        layer_options = tuple(sorted((k, v if isinstance(v, str) or v is None else bool(v))
                                     for k, v in spec.keras_kwargs(kwargs).items()))
        key = (D, U, layer_options, merge_mode, bool(unroll), dtype, mask is not None,
               0 if states is None else len(states), T if unroll else None)
        layer, run = self._bidirectional_layer(key)
        for inner, weights in ((layer.forward_layer, fwd), (layer.backward_layer, bwd)):
            _assign(inner, spec.weight_values(weights), dtype)
        self.calls += 1
        out = _run_on(run, x, mask, states, dtype)
        several = bool(kwargs.get("return_state")) or merge_mode is None
        parts = [o.numpy() for o in out] if several else [out.numpy()]
        parts = [p[0] for p in parts] if unbatched else parts
        return tuple(parts) if several else parts[0]

    def _bidirectional_layer(self, key):
        """A built ``Bidirectional`` layer for ``key`` and a function running it (eager
        on a short sequence the first time, compiled otherwise, as ``_layer`` does)."""
        cache = self._bidirectional_cache
        found = cache.get(key)
        if found is not None:
            return found
        keras, _ = _keras()
        D, U, options, merge_mode, unroll, dtype, has_mask, n_states, T = key
        inner = getattr(keras.layers, self.spec.keras_class)(U, **dict(options), unroll=unroll, dtype=dtype)
        layer = keras.layers.Bidirectional(inner, merge_mode=merge_mode, dtype=dtype)
        layer.build((None, T, D))
        run = _runner(layer, D, U, T, dtype, has_mask, n_states)
        cache[key] = (layer, run)
        self.builds += 1
        return layer, run


# -- gradients ---------------------------------------------------------------------------

#: The longest sequence whose gradients run eagerly, every time (measured on 2 cores:
#: tracing a gradient loop and its first compiled run cost 0.3 to 0.5 s, then 5 to
#: 30 ms a call; an eager call 1.3 to 4 ms a step, so 0.05 to 0.1 s at 30 steps; the
#: gradient properties meet most configurations once or twice).
GRADIENT_EAGER_MAX_T = 32


def _gradient_runner(layer, D, U, T, dtype, has_mask, n_states, return_sequences):
    """A function of ``(x, d_output, [mask], *initial_states)`` giving GradientTape's
    gradients of ``sum(layer(x) * d_output)`` with respect to x, the layer's weights
    (in ``layer.weights`` order) and the initial states: eager on sequences of at most
    ``GRADIENT_EAGER_MAX_T`` steps, compiled on longer ones."""
    _, tf = _keras()
    signature = [tf.TensorSpec((None, T, D), dtype),
                 tf.TensorSpec((None, T, U) if return_sequences else (None, U), dtype)]
    if has_mask:
        signature.append(tf.TensorSpec((None, T), tf.bool))
    signature += [tf.TensorSpec((None, U), dtype)] * n_states

    def eager(x, d_output, *extra):
        x, d_output, *extra = (tf.convert_to_tensor(a) for a in (x, d_output, *extra))
        mask = extra.pop(0) if has_mask else None
        with tf.GradientTape() as tape:
            tape.watch(x)
            for s in extra:
                tape.watch(s)
            out = layer(x, mask=mask, initial_state=extra or None, training=False)
            loss = tf.reduce_sum(out * d_output)
        return tape.gradient(loss, [x, *layer.trainable_variables, *extra],
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)

    compiled = tf.function(eager, input_signature=signature, reduce_retracing=True)

    def run(*args):
        return (eager if np.shape(args[0])[1] <= GRADIENT_EAGER_MAX_T else compiled)(*args)

    return run


def keras_gradients(oracle: KerasOracle, inputs, *weights, d_output, **kwargs) -> dict:
    """GradientTape on ``oracle``'s Keras layer: the gradients of ``sum(output * d_output)``
    as a dict named like the reference's arguments (``inputs``, the weights, and
    ``initial_state`` when one is given: an array, or a list for several states),
    each shaped like its argument, in the case's dtype. ``return_state`` is refused:
    the backward pass takes the output's cotangent only."""
    spec = oracle.spec
    if kwargs.get("return_state"):
        raise ValueError("keras_gradients takes the output's cotangent only: return_state must be False")
    kwargs.update(zip(spec.weights, weights))
    given_state = kwargs.get("initial_state")
    several = isinstance(given_state, (list, tuple))
    states = None if given_state is None else list(given_state) if several else [given_state]
    x, mask, states, unbatched, dtype = as_batch(inputs, kwargs.get("mask"), states)
    d = np.asarray(d_output)[None] if unbatched else np.asarray(d_output)
    B, T, D = x.shape
    U = spec.units(kwargs)
    options = tuple(sorted((k, v if isinstance(v, str) or v is None else bool(v))
                           for k, v in spec.keras_kwargs(kwargs).items()))
    key = (D, U, options, dtype, mask is not None, 0 if states is None else len(states))
    cache = oracle._gradient_cache
    found = cache.get(key)
    if found is None:
        keras, _ = _keras()
        layer = getattr(keras.layers, spec.keras_class)(U, **dict(options), dtype=dtype)
        layer.build((None, None, D))
        found = cache[key] = (layer, _gradient_runner(layer, D, U, None, dtype, mask is not None,
                                                      0 if states is None else len(states),
                                                      bool(kwargs.get("return_sequences"))))
        oracle.builds += 1
    layer, run = found
    values = spec.weight_values(kwargs)
    _assign(layer, values, dtype)
    oracle.calls += 1
    args = [x.astype(dtype), d.astype(dtype)]
    if mask is not None:
        args.append(np.asarray(mask).astype(bool))
    args += [np.asarray(s, dtype=dtype) for s in states or ()]
    grads = [np.asarray(g) for g in run(*args)]
    unbatch = (lambda a: a[0]) if unbatched else (lambda a: a)  # noqa: E731
    result = {"inputs": unbatch(grads[0])}
    present = [w for w in spec.weights if kwargs.get(w) is not None]
    result.update(zip(present, grads[1:1 + len(present)]))
    if states is not None:
        ds = [unbatch(g) for g in grads[1 + len(present):]]
        result["initial_state"] = ds if several else ds[0]
    return result
