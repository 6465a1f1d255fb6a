"""Numeric tolerance report: how far Keras and correct implementations are
from the float64 reference, next to the budget that decides pass or fail.

    python -m rnn_ref report [--out DIR] [--quick | --full | --max-examples N] [--seed S] [--layers LAYER ...]
                             [--workers N | --scheduler tcp://HOST:PORT]
    python -m rnn_ref report compare OLD.json NEW.json [--threshold X]

The first form runs three sweeps per layer (SimpleRNN, LSTM, GRU; ``sweeps``
and ``dedicated``) and writes DIR/report.md (``markdown``, from
``template.md``), DIR/report.json (``results``) and PNG plots (``plots``):

* every property of the catalogue that applies to the layer, on the layer's
  reference (``rnn_ref.simple_rnn``, ``rnn_ref.lstm``, ``rnn_ref.gru``) and,
  for SimpleRNN, on each correct variant of ``rnn_ref.implementations.variants`` (same
  function, different rounding), with the recurrent gain widened (up to 3)
  wherever the activation is bounded, plus ``chaotic_weights`` (matches_keras
  on long sequences with activations that can turn chaotic, at the layer's
  chaotic gains). Every judged result goes through ``Context(record=...)``
  into a ``rnn_ref.harness.tally.ToleranceTable`` (LSTM and GRU rows labelled
  ``"name (LSTM)"``), and its needed FACTOR, with Keras's own, into a
  ``factor.FactorTally``;
* error against sequence length (tanh, T up to 512, a well-conditioned and a
  chaotic gain, both dtypes);
* error against the recurrent spectral radius (tanh, T = 200, from gain 0.1
  to past the layer's chaotic gain);
* the same two for the gradients (``dedicated.sweep_gradient_length``,
  ``sweep_gradient_radius``): d inputs and d kernel of rnn_ref's backward pass
  and of Keras's GradientTape, T up to 128 and T = 100.

The work is cut into tasks (``tasks``: one per layer and property, one per
layer and dedicated sweep) that run on a Dask cluster (``cluster``: a
LocalCluster over the machine's cores by default, an existing one with
``--scheduler``, this process with ``--workers 0``); their results are merged
in a fixed order, so the report does not depend on the workers (docs/scale.md).

The gradient properties (``Property.takes == "gradients"``) run rnn_ref's own
backward pass (``harness.backprop.reference_backward``) and their needed FACTOR
is tallied apart (``FactorTally.to_json("gradients")``, report.json
``factor_gradients``).

After the sweeps, ``training`` fits a small masked SimpleRNN model with each optimizer and
clipping mode against Keras's ``model.fit`` in the report's own process and tallies the
FACTOR the training budget (``harness.training_judge.judge_fit``) needed (report.json
``training``, report.md "Training budget").

The second form (``compare``) compares two files of the same kind (two
report.json, or two ``pytest --tolerance-report`` files) figure by figure and
exits with status 1 when a figure got worse by more than the threshold, 2 when
the files cannot be compared. It warns when their seeds or hypothesis profiles
differ. The JSON schema and the threshold are described in docs/report.md.
"""

from rnn_ref.harness.tally import SCHEMA_VERSION, KerasTally, Tally, ToleranceTable, needed_factor
from rnn_ref.harness.tolerance import budget_rule
from rnn_ref.commands.report.cli import main
from rnn_ref.commands.report.compare import compare, file_kind, like_for_like
from rnn_ref.commands.report.dedicated import sweep_layers, sweep_length, sweep_radius
from rnn_ref.commands.report.factor import FactorContext, FactorTally, factor_margin
from rnn_ref.commands.report.markdown import write_markdown
from rnn_ref.commands.report.results import report_run, summary, write_json
from rnn_ref.commands.report.sweeps import catalogue, implementations, label, sweep_properties

__all__ = [
    "SCHEMA_VERSION", "FactorContext", "FactorTally", "KerasTally", "Tally", "ToleranceTable", "budget_rule",
    "catalogue", "compare", "factor_margin", "file_kind", "implementations", "label", "like_for_like", "main",
    "needed_factor", "report_run", "summary", "sweep_layers", "sweep_length", "sweep_properties", "sweep_radius",
    "write_json", "write_markdown",
]
