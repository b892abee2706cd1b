"""One module per ``mrdflow`` subcommand (see :mod:`mrdflow.cli`). Argument parsing and printing only:
the work is done by the library modules they call."""
