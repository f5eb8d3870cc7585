"""Command line: ``python -m headless_renderer package|batch|library ...`` (plain Python with the
``bpy`` module) or ``blender -b FILE.blend -P headless_renderer/blender_entry.py -- package ...``.

The package command itself is the Blender side's (:mod:`profile_rig.blender.package_cli`, which the
add-on runs too); this adds batch runs and the character library around it. Errors print one line
(``error: ...``) and exit non-zero; progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse

from bump_contracts.cli_errors import CliParser
from headless_renderer import library_cli
from headless_renderer.batch.cli import add_parser as add_batch_parser
from profile_rig.blender import package_cli

DESCRIPTION = """\
Render profile packages (a character's head from several angles on a white studio, with
package.json and a contact sheet), run batch jobs, and manage the character library.

examples:
  python -m headless_renderer package --demo --out out/demo_package
  python -m headless_renderer package --demo --gender female --age 30 --name Yuki --out out/yuki
  python -m headless_renderer animation --demo --out out/clip --frames 12
  python -m headless_renderer library list
  python -m headless_renderer batch job.toml --dry-run

'python -m headless_renderer COMMAND --help' shows a command's options."""


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="python -m headless_renderer", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True)
    package_cli.add_package_parser(subparsers)
    package_cli.add_animation_parser(subparsers)
    add_batch_parser(subparsers)
    library_cli.add_parser(subparsers)
    subparsers.choices["library"].set_defaults(handler=lambda args, **_: library_cli.run(args))
    return parser


def main(argv: list[str] | None = None, *, in_blender: bool = False) -> int:
    return package_cli.main(argv, in_blender=in_blender, parser=build_parser())
