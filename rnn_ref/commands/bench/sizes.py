"""What a full and a quick run of the benchmark measure, and the goals its figures are judged on.

The command (``rnn_ref.commands.bench.main``) reads the goals from ``rnn_ref.commands.bench`` when it runs and
passes them to each section; the sections' defaults are the values here.
"""

from __future__ import annotations

FULL = dict(
    pipeline=dict(V=5000, E=32, U=100, T=250, batches=(1, 32, 256, 1024), large_B=1024, spread_from=256),
    # Not B = 1024: with OpenBLAS's two threads on a shared machine one NumPy call there can take
    # 2-17 s instead of 0.5 s (docs/bench.md), which alone would blow the section's minute.
    backward=dict(V=5000, E=32, U=100, T=250, batches=(1, 32, 256), eager_batches=(1, 32, 256),
                  layer_B=32, spread_from=256),
    # each recurrent layer alone (section d); the vjp rows stop at 256 for the reason above
    layers=dict(T=250, D=32, U=100, V=5000, batches=(1, 32, 256, 1024), backward_batches=(1, 32, 256),
                large_from=256),
    configs=4, examples=32, new_config_examples=12, max_T=300, target_s=0.3, settle_s=0.1, repeats=5,
)
QUICK = dict(
    pipeline=dict(V=50, E=4, U=6, T=12, batches=(1, 4), large_B=4, spread_from=4),
    backward=dict(V=50, E=4, U=6, T=12, batches=(1, 4), eager_batches=(1, 4), layer_B=4, spread_from=4),
    layers=dict(T=12, D=3, U=5, V=50, batches=(1, 4), backward_batches=(1, 4), large_from=4),
    configs=2, examples=4, new_config_examples=2, max_T=12, target_s=0.005, settle_s=0.0, repeats=2,
)

GOAL_HARNESS = 10.0  # cached oracle vs naive harness, examples per second
GOAL_PIPELINE_B1 = 5.0  # NumPy vs compiled Keras at B = 1
GOAL_PIPELINE = 1.0  # NumPy vs compiled Keras at every B
GOAL_PIPELINE_LARGE = 1.2  # NumPy vs compiled Keras at the largest B (the size's large_B: 1024)
GOAL_SPREAD = 1.3  # NumPy's slowest repeat over its fastest, at B >= 256 (each size's spread_from, large_from)
GOAL_LIMIT = 1.5  # SimpleRNN at the largest B (the pipeline, and the layer alone): within this factor of the machine's limit
GOAL_BACKWARD = 1.0  # rnn_ref gradients vs GradientTape in a tf.function, at every B of the backward size
GOAL_LAYER = 1.0  # each layer alone (and the demo's second model) vs compiled Keras, forward, at every B
GOAL_LAYER_LARGE = 1.5  # the same at B >= the size's large_from (256)
GOAL_LAYER_BACKWARD = 1.0  # each layer's vjp vs a compiled GradientTape, at every B
