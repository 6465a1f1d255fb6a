"""What a candidate handles, found on tiny cases, and what a run covered.

``probe(candidate)`` calls an adapted candidate (``adapter.Adapted``,
``AdaptedBidirectional`` or ``backward_candidate.AdaptedGradients``) on tiny
cases, one feature at a time (each activation, float64, ``bias=None``, each
option, each mask pattern, one sequence), and returns the ``Support`` the
properties then draw inside. A feature is declined when the call raises
(NotImplementedError or anything else): a correct function that does not
handle ``bias=None`` is not a wrong one. When the first call fails,
``_layout_hint`` tries the other layouts and layers and suggests the one that
runs. ``coverage`` says what the checked calls covered, for check's summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rnn_ref.layers.activations import ACTIVATIONS
from rnn_ref.layers.bidirectional import MERGE_MODES
from rnn_ref.harness.adapter import LAYOUT_NAMES, PROBE_SHAPE, AdaptError, Adapted, AdaptedBidirectional
from rnn_ref.harness.cases import DEFAULTS, GATE_ACTIVATIONS, MASK_PATTERNS, Support, feature, make_case
from rnn_ref.harness.context import CandidateError
from rnn_ref.harness.guard import CandidateRaised, CaseTimeout, guarded
from rnn_ref.models.registry import RECURRENT, SIMPLE_RNN, LayerSpec


@dataclass
class Probe:
    """What a candidate handles, found on tiny cases."""

    support: Support
    declined: dict = field(default_factory=dict)  # feature -> why ("NotImplementedError: ...")
    problem: str | None = None  # why the default configuration cannot be run (nothing can be checked)
    hint: str = ""  # e.g. "did you mean --layout textbook?"

    def declined_lines(self) -> list[str]:
        """The declined features, those with the same reason on one line."""
        by_reason: dict[str, list[str]] = {}
        for feat, why in self.declined.items():
            by_reason.setdefault(why, []).append(feat)
        lines = []
        for why, feats in by_reason.items():
            acts = [f.split("=", 1)[1].strip("'") for f in feats if f.startswith("activation=")]
            if len(acts) > 4:
                feats = [f for f in feats if not f.startswith("activation=")]
                feats.insert(0, f"{len(acts)} activations ({', '.join(acts[:3])}, ...)")
            masks = [f for f in feats if f.startswith("mask (")]
            if len(masks) == len(MASK_PATTERNS):
                feats = [f for f in feats if f not in masks] + [f"masks (all {len(masks)} patterns)"]
            lines.append(f"{', '.join(feats)}: {why}")
        return lines



def probe(candidate: Adapted, timeout: float | None = None) -> Probe:
    """Call ``candidate`` on tiny cases, one feature at a time; see the module docstring."""
    fn = guarded(candidate, timeout)
    spec = candidate.spec

    def tiny(**kw):
        return make_case(**PROBE_SHAPE, seed=0, use_bias=candidate.has_bias, layer=spec.name, **kw)

    base = tiny(dtype="float32")

    def attempt(case, **overrides) -> str | None:
        try:
            with np.errstate(all="ignore"):
                outputs.append(fn(**candidate.kwargs_of(case, **overrides)))
        except NotImplementedError as e:
            return f"NotImplementedError: {e}" if str(e) else "NotImplementedError"
        except CandidateRaised as e:
            return str(e).replace("the candidate raised ", "", 1)
        except CaseTimeout:
            return f"it did not return within {timeout:g} s"
        except CandidateError:
            return None  # it ran, and misbehaved: the properties report that, it is no reason to decline
        return None

    declined, outputs = {}, []
    wrapper = isinstance(candidate, AdaptedBidirectional)
    why = attempt(base)
    if why is not None and not candidate.one_row_at_a_time and not wrapper:
        if attempt(base, inputs=base.inputs[0]) is None:
            candidate.one_row_at_a_time = True  # written for one sequence: give it one row at a time
            declined[feature("unbatched", False)] = f"{why}; rows are passed one at a time"
            why = attempt(base)
    if why is not None:
        return Probe(Support(), declined, problem=why, hint=_layout_hint(candidate, timeout))
    if outputs:  # (none when the first call returned something the properties will reject)
        candidate.adapt_to(outputs[-1], base)

    ok = {dim: [value] for dim, value in DEFAULTS.items()}

    def check(dim, value, case=base, **overrides):
        reason = attempt(case, **overrides)
        if reason is None:
            ok[dim].append(value)
        else:
            declined[feature(dim, value)] = reason

    check("dtype", "float64", base.astype("float64"))
    if candidate.has_bias:
        check("use_bias", False, bias=None)
    else:
        ok["use_bias"] = [False]
        declined[feature("use_bias", True)] = f"{candidate.__name__}() takes no bias"
    for name in ACTIVATIONS:
        if name != DEFAULTS["activation"]:
            check("activation", name, activation=name)
    if "recurrent_activation" in spec.options:
        for name in GATE_ACTIVATIONS:
            if name != DEFAULTS["recurrent_activation"]:
                check("recurrent_activation", name, recurrent_activation=name)
    if "reset_after" in spec.options:
        check("reset_after", False, tiny(reset_after=False))
    if wrapper:  # Bidirectional sets go_backwards and zero_output_for_mask on its layers itself
        ok["go_backwards"], ok["zero_output_for_mask"] = [False], [False, True]
        for mode in MERGE_MODES:
            if mode != DEFAULTS["merge_mode"]:
                check("merge_mode", mode, merge_mode=mode)
    for option in ("return_sequences", "return_state") + (() if wrapper else ("go_backwards",)):
        if option in candidate.options:  # a backward pass has no return_state
            check(option, True, **{option: True})
    check("initial_state", True, tiny(initial_state=True))
    for pattern in MASK_PATTERNS:
        check("mask_pattern", pattern, tiny(mask_pattern=pattern))
    masked = "random" if "random" in ok["mask_pattern"] else "none"
    if not wrapper:
        check("zero_output_for_mask", True, tiny(mask_pattern=masked, zero_output_for_mask=True))
    check("unbatched", True, inputs=base.inputs[0])
    ordered = {dim: tuple(v for v in getattr(Support(), dim) if v in ok[dim]) for dim in ok}
    return Probe(Support(**ordered), declined)



def _runs(fn, layout: str, spec: LayerSpec, timeout, kind=None) -> bool:
    """Whether ``fn``'s first call runs in ``layout`` as ``spec``'s layer (or as
    a Bidirectional around it, with ``kind=AdaptedBidirectional``)."""
    kind = kind or Adapted
    try:
        alt = kind(fn, layout, spec=spec)
    except AdaptError:
        return False
    case = make_case(**PROBE_SHAPE, dtype="float32", seed=0, use_bias=alt.has_bias, layer=spec.name)
    units = PROBE_SHAPE["U"] * (2 if kind is AdaptedBidirectional else 1)  # concatenated directions
    for inputs in (case.inputs, case.inputs[0]):
        try:
            out = guarded(alt, timeout)(**alt.kwargs_of(case, inputs=inputs))
        except (Exception, CaseTimeout):  # noqa: BLE001
            continue
        first = np.asarray(out[0] if isinstance(out, (tuple, list)) else out)
        if first.shape[-1:] == (units,):  # the units expected: the weights were read as meant
            return True
    return False


def wrapped_layer(fn, layout: str = "keras", timeout: float | None = None) -> LayerSpec | None:
    """The layer a Bidirectional function wraps: the first of SimpleRNN, LSTM, GRU
    whose weights its first call takes (their shapes differ), or None."""
    for spec in RECURRENT.values():
        if _runs(fn, layout, spec, timeout, AdaptedBidirectional):
            return spec
    return None


def _layout_hint(candidate: Adapted, timeout) -> str:
    """"did you mean --layout X?" (or --layer) when another layout's (or layer's) first call runs."""
    spec = candidate.spec
    if isinstance(candidate, AdaptedBidirectional):
        for other in LAYOUT_NAMES:
            found = wrapped_layer(candidate.fn, other, timeout)
            if found is not None:
                return f"did you mean --wrap {found.cli_name} --layout {other}?"
        return ""
    for other in LAYOUT_NAMES:
        if other != candidate.layout and _runs(candidate.fn, other, spec, timeout):
            return f"did you mean --layout {other}?"
    for layer in RECURRENT.values():
        if layer is spec:
            continue
        for other in (candidate.layout, *(lo for lo in LAYOUT_NAMES if lo != candidate.layout)):
            if _runs(candidate.fn, other, layer, timeout):
                return f"did you mean --layer {layer.cli_name}" + (
                    f" --layout {other}?" if other != candidate.layout else "?")
    return ""


def coverage(seen: set, spec: LayerSpec = SIMPLE_RNN) -> tuple[str, str]:
    """``(checked, not checked)``: what the calls in ``seen`` (``cases.features_of``)
    covered, for ``spec``'s layer."""
    has = lambda dim, v: (dim, v) in seen  # noqa: E731
    acts = [a for a in ACTIVATIONS if has("activation", a)]
    dtypes = [d for d in ("float32", "float64") if has("dtype", d)]
    checked = [", ".join(acts) if len(acts) <= 6 else f"{len(acts)} of {len(ACTIVATIONS)} activations"] if acts else []
    checked += [", ".join(dtypes)] if dtypes else []
    missing = ["other activations"] if 0 < len(acts) < len(ACTIVATIONS) else []
    missing += [d for d in ("float32", "float64") if d not in dtypes]
    for label, dim, value in (("bias", "use_bias", True), ("bias=None", "use_bias", False),
                              ("masks", "mask_pattern", "mask"), ("initial_state", "initial_state", True),
                              ("return_sequences", "return_sequences", True), ("return_state", "return_state", True),
                              ("go_backwards", "go_backwards", True),
                              ("zero_output_for_mask", "zero_output_for_mask", True),
                              ("one sequence (T, D)", "unbatched", True)):
        (checked if has(dim, value) else missing).append(label)
    if "recurrent_activation" in spec.options:
        gates = [a for a in GATE_ACTIVATIONS if has("recurrent_activation", a)]
        checked += [f"recurrent_activation {', '.join(gates)}"] if gates else []
        missing += [f"recurrent_activation={a}" for a in GATE_ACTIVATIONS if a not in gates]
    if "reset_after" in spec.options:
        for value in (True, False):
            (checked if has("reset_after", value) else missing).append(f"reset_after={value}")
    modes = [m for m in MERGE_MODES if has("merge_mode", m)]
    if modes:  # a Bidirectional function
        checked.append("merge_mode " + ", ".join(map(repr, modes)))
        missing += [f"merge_mode={m!r}" for m in MERGE_MODES if m not in modes]
        for label in ("go_backwards", "zero_output_for_mask"):
            missing.remove(label)  # Bidirectional's to set
    return "; ".join(checked), ", ".join(f"no {m}" for m in missing)
