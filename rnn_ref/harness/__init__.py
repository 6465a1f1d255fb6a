"""The property harness: cases, the Keras oracle, the tolerance model, the property catalogue.

Importing this package does not import TensorFlow; the oracle does, on first use.
"""
