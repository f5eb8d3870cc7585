"""The backend's command line: ``python -m bump_backend <subcommand> ...``.

Subcommands register as name -> (add_parser, run); add one by adding an entry to SUBCOMMANDS
whose module exposes ``add_parser(subparsers)`` and ``run(args) -> int``. Modules are imported
when the command line is built, so keep their top level light (import heavy things in ``run``).
Errors print one line and exit non-zero; nothing reaches the user as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable

from bump_contracts.cli_errors import CliParser

AddParser = Callable[[argparse._SubParsersAction], argparse.ArgumentParser]
Run = Callable[[argparse.Namespace], int]

DESCRIPTION = """The bump backend: IP-Adapter img2img with a character's profile package as identity.

examples:
  python -m bump_backend serve --port 7861 --model sd15      # the job server Blender and batch runs talk to
  python -m bump_backend bump shot.png --package out/demo_package --out out/bumped
  python -m bump_backend faces detect shot.png --json        # the face pipeline alone

'python -m bump_backend COMMAND --help' shows a command's options."""

# name -> module with add_parser/run (other engineers: add "bump", "serve" here)
SUBCOMMANDS: dict[str, str] = {
    "faces": "bump_backend.faces.cli",
    "bump": "bump_backend.generate.cli",
    "serve": "bump_backend.server.cli",
    "import-images": "bump_backend.library_import_cli",
    "models": "bump_backend.generate.models_cli",
    "sequence": "bump_backend.sequence.cli",
}


def commands(only: str | None = None) -> dict[str, tuple[AddParser, Run]]:
    """The subcommands' parsers and runners; ``only`` imports just that one (the server's web stack
    takes seconds to import, which a ``bump`` with a bad input should not wait for)."""
    table = {}
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        table[name] = (module.add_parser, module.run)
    return table


def build_parser(table: dict[str, tuple[AddParser, Run]]) -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m bump_backend", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(table) + "}", required=True)
    for name, (add, _) in table.items():
        add(sub).set_defaults(_run=table[name][1])
    return parser


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    table = commands(given[0] if given and given[0] in SUBCOMMANDS else None)
    args = build_parser(table).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown from complaining
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # ImageError, SidecarError, bad settings, unwritable output
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, with its type so it can be reported
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
