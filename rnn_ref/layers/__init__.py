"""The reference: Keras's layers as pure NumPy functions, arrays in, arrays out.

One file a layer: ``simple_rnn``, ``lstm`` and ``gru`` each hold a cell and
their public function; ``recurrence`` is the one time loop that handles the
options (masks, go_backwards, states, return_sequences) around any cell, and
``parallel`` splits that loop by batch rows. ``bidirectional`` wraps a
recurrent function; ``dense`` and ``embedding`` are the feed-forward layers;
``activations`` are Keras's activations by name. ``_checks`` holds the
argument checks they share. Nothing here imports from the rest of rnn_ref.
"""
