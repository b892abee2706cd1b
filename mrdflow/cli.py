"""The ``mrdflow`` command.

Each subcommand lives in its own module under :mod:`mrdflow.commands` and exposes

* ``HELP`` — a one-line description,
* ``add_arguments(parser)`` — its options,
* ``run(args) -> int`` — the exit code (0 ok, 1 some inputs failed, 2 bad command line or configuration).

This file only wires them together, so adding a command is one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from mrdflow import __version__
from mrdflow.errors import MrdflowError

#: subcommand name -> module under mrdflow.commands (kept in the order shown by --help)
COMMANDS: dict[str, str] = {
    "run": "run",
    "analyze": "analyze",
    "info": "info",
    "validate-panel": "validate_panel",
    "gate": "gate",
    "simulate": "simulate",
    "endpoints": "endpoints",
}

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrdflow",
        description="EuroFlow NGF flow-cytometry MRD pipeline: FCS files to MRD results and trial endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"mrdflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"mrdflow.commands.{module_name}")
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mrdflow`` console script; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help/--version
        return int(exc.code or 0)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except MrdflowError as exc:
        print(f"mrdflow {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
