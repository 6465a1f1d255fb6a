"""Hypothesis profiles and the tolerance summary of a test run.

Profiles (pick one with --hypothesis-profile NAME or HYPOTHESIS_PROFILE=NAME):
  dev       quick local runs (10 examples a property)
  ci        what `make test` runs: derandomized, no example database (15 examples)
  thorough  long sweeps for `make sweep` (300 examples a property)
"""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["rnn_ref.harness.pytest_plugin"]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_common = dict(
    deadline=None,  # TensorFlow's first call of a configuration traces a graph
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=10, **_common)
settings.register_profile("ci", max_examples=15, derandomize=True, database=None, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
