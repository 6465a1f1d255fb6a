"""The hypothesis strategy of a layer's cases (``case.make_case`` builds them; ``cases`` exports it)."""

from __future__ import annotations

from hypothesis import strategies as st

from rnn_ref.layers.activations import BOUNDED, ELEMENTWISE
from rnn_ref.harness.case import GATE_ACTIVATIONS, Case, extra_options, make_case


@st.composite
def cases(
    draw,
    *,
    B=st.integers(1, 4),
    T=st.one_of(st.integers(1, 12), st.integers(13, 300)),
    D=st.integers(1, 24),
    U=st.integers(1, 24),
    dtype=st.sampled_from(["float32", "float64"]),
    activation=st.sampled_from(ELEMENTWISE),
    gain=st.one_of(st.floats(0.05, 1.0), st.floats(1.0, 3.0)),
    use_bias=st.booleans(),
    mask_pattern=st.just("none"),
    initial_state=st.booleans(),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    layer=st.just("SimpleRNN"),
    recurrent_activation=st.sampled_from(GATE_ACTIVATIONS),
    reset_after=st.booleans(),
) -> Case:
    """A random case of a recurrent layer (SimpleRNN unless ``layer`` draws another).
    Every argument is a strategy, to pin or widen a dimension.

    Defaults: shapes drawn independently (so D != U is common), T short most of
    the time and in the hundreds otherwise, both float dtypes, every
    elementwise activation, recurrent gain (spectral radius) in [0.05, 1]
    half of the time (contracting) and in [1, 3] otherwise, where tanh-like
    recurrences turn chaotic and float32 loses every digit after ~100 steps:
    the condition-aware budget must tell rounding from bugs there too.
    Unbounded activations are kept at gain <= 0.5 so they stay finite.
    An LSTM or a GRU also draws its gate activation (bounded ones) and a GRU
    ``reset_after``; a SimpleRNN draws neither.
    """
    name = draw(layer, label="layer")
    extras = {}
    if "recurrent_activation" in extra_options(name):
        extras["recurrent_activation"] = draw(recurrent_activation, label="recurrent_activation")
    if "reset_after" in extra_options(name):
        extras["reset_after"] = draw(reset_after, label="reset_after")
    act = draw(activation, label="activation")
    g = draw(gain, label="gain")
    if act not in BOUNDED:
        # Unbounded activations can overflow through the recurrence; keep the
        # gain contractive so float32 stays finite over hundreds of steps.
        g = min(g, 0.5)
    return make_case(
        B=draw(B, label="B"), T=draw(T, label="T"), D=draw(D, label="D"), U=draw(U, label="U"),
        dtype=draw(dtype, label="dtype"),
        seed=draw(st.integers(0, 2**32 - 1), label="seed"),
        gain=g, activation=act,
        use_bias=draw(use_bias, label="use_bias"),
        mask_pattern=draw(mask_pattern, label="mask_pattern"),
        initial_state=draw(initial_state, label="initial_state"),
        return_sequences=draw(return_sequences, label="return_sequences"),
        return_state=draw(return_state, label="return_state"),
        go_backwards=draw(go_backwards, label="go_backwards"),
        zero_output_for_mask=draw(zero_output_for_mask, label="zero_output_for_mask"),
        layer=name, **extras,
    )
