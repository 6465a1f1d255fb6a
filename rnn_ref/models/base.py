"""What every NumPy layer of a rebuilt model declares and shares.

The layers themselves are in ``rnn_ref.models.feedforward`` (Embedding, Dense) and
``rnn_ref.models.recurrent`` (SimpleRNN, LSTM, GRU, Bidirectional). Their
class declarations drive the other modules: ``rnn_ref.models.keras_graph`` reads
a Keras layer into one, ``rnn_ref.npz`` saves and reads one, without
knowing the layer.

An option's default in ``OPTIONS`` also says what kind of value it takes:

* a str: a Keras activation name (``"tanh"``);
* a bool: a flag (``return_sequences`` False, GRU's ``reset_after`` True);
* None: a flag that may also be unknown (``mask_in``);
* a float: a number (``Masking``'s ``mask_value``);
* a tuple: one of its values, the first being the default
  (Bidirectional's ``merge_mode``: "concat", "sum", "mul", "ave" or None).
"""

from __future__ import annotations


def option_default(spec):
    """The default value of an option declared as ``spec`` in ``OPTIONS``."""
    return spec[0] if isinstance(spec, tuple) else spec


class Layer:
    """What every NumPy layer declares and shares.

    OPTIONS : option name -> default (its kind: see the module docstring).
    WEIGHTS : the weight arrays, in the order of Keras's ``layer.get_weights()``.
    OPTIONAL : the arrays that may be None (``bias`` is None for ``use_bias=False``).
    STATE : the arrays a stateful layer carries between calls (not weights).
    NEEDS_SEQUENCE : the input must be a sequence (B, T, ...).

    ``__call__(x, mask)`` computes the output and ``compute_mask(x, mask)``
    the mask the next layer receives, as in Keras.
    """

    OPTIONS = {}
    WEIGHTS = ()
    OPTIONAL = ()
    STATE = ()
    NEEDS_SEQUENCE = False

    def compute_mask(self, x, mask):
        return mask  # passed on unchanged

    def weights(self):
        """The weight arrays by name, absent optional ones left out."""
        return {k: getattr(self, k) for k in self.WEIGHTS if getattr(self, k) is not None}

    def arrays(self):
        """The weights, and the current state of a stateful layer: what ``save_npz`` writes."""
        arrays = self.weights()
        if getattr(self, "stateful", False):
            arrays.update({k: getattr(self, k) for k in self.STATE if getattr(self, k) is not None})
        return arrays

    def array_names(self):
        """Every array name this layer may have in a file (weights and state)."""
        return self.WEIGHTS + self.STATE

    def output_count(self):
        """How many arrays a call returns (1, or a tuple's length)."""
        return 1

    def options(self):
        """The activations and the flags that differ from their default (and "no bias"),
        as short words for ``summary``."""
        words = [getattr(self, k) for k, default in self.OPTIONS.items() if isinstance(default, str)]
        words += self.flags()
        if "bias" in self.OPTIONAL and self.bias is None:
            words.append("no bias")
        return words

    def flags(self):
        """The flags that differ from their default: ``name`` when on, ``name=False`` when off."""
        return [k if getattr(self, k) else f"{k}=False"
                for k, default in self.OPTIONS.items()
                if isinstance(default, bool) and bool(getattr(self, k)) != default]

    def check_input(self, features, sequence):
        """Check the weights' shapes for an input of ``features`` features (None: not known).

        ``sequence`` says whether the input is a sequence (B, T, ...) (None:
        not known). Returns the same two for the output; raises ValueError.
        """
        raise NotImplementedError
