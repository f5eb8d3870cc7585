"""One shape for every command line of the project (stdlib only, so Blender's side can use it too).

A usage mistake (unknown option, missing argument, a value that does not parse) prints one line,
``error: PROG: what is wrong``, then one hint line (``see 'PROG --help'``), and exits with code 2.
argparse's default prints the whole usage block first, which pushes the one line that matters
below twenty lines of options; the usage stays one ``--help`` away.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one ``error:`` line plus a ``--help`` hint, exit 2.

    Sub-parsers made with ``add_subparsers()`` are of the same class (argparse uses the parent's
    class), so one ``CliParser`` at the top is enough for a whole command tree.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {self.prog}: {message}\nsee '{self.prog} --help'\n")


def fail(message: str) -> int:
    """Print one ``error:`` line on stderr and return the bad-input exit code (2)."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
