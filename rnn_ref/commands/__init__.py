"""The command line: ``python -m rnn_ref COMMAND`` (``main`` dispatches).

``check`` (a user's function, live or on the stored corpus), ``corpus``
(build and verify that corpus), ``report`` (the tolerance report, on Dask),
``bench`` (speed against compiled Keras) and ``demo``. Each module has its own
``main(argv)``; nothing below this package imports from it.
"""
