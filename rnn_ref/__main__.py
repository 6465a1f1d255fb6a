"""``python -m rnn_ref COMMAND ...``: the dispatch is in ``rnn_ref.commands.main``."""

import sys

from rnn_ref.commands.main import main

if __name__ == "__main__":
    sys.exit(main())
