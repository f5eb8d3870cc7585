"""``python -m bump_backend import-images CHARACTER FILES|FOLDER|VIDEO ... [--library DIR]``: build a
library package from outside images with the backend's face pipeline.

``python -m headless_renderer library import-images`` runs this command in a process of its own,
so the library and the Blender side never import the face pipeline. Output and errors have the
library CLI's shape: text or one JSON document on stdout, one ``error:`` line and exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from bump_backend.library_import import ImportOptions, import_images
from bump_contracts.errors import ContractError
from character_library import Library
from character_library.errors import LibraryError, NotFoundError
from character_library.import_args import add_import_arguments, import_options
from character_library.locations import LIBRARY_ENV, library_path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("import-images", help="build a library package from outside images, a folder or a video",
                       description="Build a profile package for a library character from photos, sheets or a clip.")
    p.add_argument("--library", metavar="DIR", help=f"library folder (default ${LIBRARY_ENV} or ~/BumpStudio/library)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    add_import_arguments(p)
    return p


def _where(item: dict) -> str:
    return item["source"] + ("" if item["frame"] is None else f"#{item['frame']}")


def run(args: argparse.Namespace) -> int:
    try:
        with Library.open(library_path(args.library), create=True) as lib:
            try:
                lib.get_character(args.character)
            except NotFoundError:
                if not args.create:
                    raise
                lib.create_character(args.character)
            report = import_images(lib, args.character, args.inputs, ImportOptions(**import_options(args)),
                                   activate=not args.no_activate)
    except (LibraryError, ContractError, ValueError, OSError) as exc:
        message = str(exc) if not isinstance(exc, OSError) or not exc.strerror else \
            f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
        print(f"error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        return 2
    if args.json:
        print(json.dumps({"ok": True, **report.to_dict()}, ensure_ascii=False, default=str))
        return 0
    pkg = report.package or {}
    lines = [f"v{pkg.get('version')} at {pkg.get('path')}: kept {len(report.kept)} of {report.frames} frames "
             f"({report.detector}, {report.seconds:.1f} s)"]
    lines += [f"  kept {k['view']}: {_where(k)} yaw {k['yaw']:+.0f} pitch {k['pitch']:+.0f}" for k in report.kept]
    lines += [f"  dropped {_where(d)}: {d['reason']}" for d in report.dropped]
    print("\n".join(lines))
    return 0
