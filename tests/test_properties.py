"""The property catalogue applied to rnn_ref.simple_rnn, against live Keras.

`python -m rnn_ref check` runs the same catalogue on anyone's implementation;
this file is that checker applied to ourselves.
"""

import pytest
from hypothesis import example, given, note

import rnn_ref
from rnn_ref.harness.context import Context
from rnn_ref.harness.properties import PROPERTIES, case_of


@pytest.fixture(scope="module")
def ctx(tolerance_recorder):
    return Context(record=tolerance_recorder)


@pytest.mark.keras
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property(name, ctx):
    prop = PROPERTIES[name]

    @given(prop.strategy)
    def check(case):
        shown = case_of(case)
        note(f"{name}: {shown.describe()}\nreproduce with:\n{shown.snippet()}")
        ctx.property = name
        prop.check(ctx, rnn_ref.simple_rnn, case)

    for anchor in prop.anchors():  # the seed's size, T=250 D=32 U=100, as `check` runs it too
        check = example(anchor)(check)
    check()
