"""Other implementations to check: plausible bugs (``mutants``) and correct ports (``variants``).

They are written the way people write RNNs (the textbook ``W @ x`` layout, the
seeds' loops, PyTorch's gate order) and are what ``python -m rnn_ref check``
and the test suite run the harness on: every mutant must fail, every variant pass.
"""
