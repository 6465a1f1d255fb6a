"""Numeric tolerance report: how far Keras and correct implementations are
from the float64 reference, next to the budget that decides pass or fail.

    python -m rnn_ref report [--out DIR] [--max-examples N] [--seed S] [--quick]
    python -m rnn_ref report compare OLD.json NEW.json [--threshold X]

The first form runs three sweeps (``sweeps``) and writes DIR/report.md
(``markdown``, from ``template.md``), DIR/report.json (``results``) and PNG
plots (``plots``):

* every property of the catalogue, on ``rnn_ref.simple_rnn`` and on each
  correct variant of ``rnn_ref.variants`` (same function, different
  rounding), with the recurrent gain widened to chaotic values (up to 3)
  wherever the activation is bounded, plus ``chaotic_weights`` (matches_keras
  on long sequences with activations that can turn chaotic). Every judged
  result goes through ``Context(record=...)`` into a
  ``rnn_ref.harness.tally.ToleranceTable``;
* error against sequence length (tanh, T up to 512, a well-conditioned and a
  chaotic gain, both dtypes);
* error against the recurrent spectral radius (tanh, T = 200, gain 0.1 to 3.5).

The second form (``compare``) compares two files of the same kind (two
report.json, or two ``pytest --tolerance-report`` files) figure by figure and
exits with status 1 when a figure got worse by more than the threshold, 2 when
the files cannot be compared. It warns when their seeds or hypothesis profiles
differ. The JSON schema and the threshold are described in docs/report.md.
"""

from ..harness.tally import SCHEMA_VERSION, KerasTally, Tally, ToleranceTable, needed_factor
from ..harness.tolerance import budget_rule
from .cli import main
from .compare import compare, file_kind, like_for_like
from .markdown import write_markdown
from .results import report_run, summary, write_json
from .sweeps import catalogue, implementations, sweep_length, sweep_properties, sweep_radius

__all__ = [
    "SCHEMA_VERSION", "KerasTally", "Tally", "ToleranceTable", "budget_rule", "catalogue", "compare", "file_kind",
    "implementations", "like_for_like", "main", "needed_factor", "report_run", "summary", "sweep_length",
    "sweep_properties", "sweep_radius", "write_json", "write_markdown",
]
