"""Whole models: NumPy layers that hold weights, a Keras model rebuilt from its graph, files.

``base``, ``feedforward`` and ``recurrent`` are the NumPy layers (each calls a
function of ``rnn_ref.layers``); ``model`` chains them (``NumpyModel``);
``keras_graph`` reads a Keras model into one (``rnn_ref.from_keras``);
``gradients`` is the backward pass of a whole model and its training step;
``npz``, ``keras_file`` and ``load`` are the files. Depends on ``rnn_ref.layers``
and ``rnn_ref.backward``; Keras is imported only when a Keras model or file is read.
"""
