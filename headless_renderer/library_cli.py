"""``python -m headless_renderer library ...``: the character library from the command line.

Every sub-command takes ``--json`` (one JSON document on stdout, for scripts and the add-on).
Bad input prints one line ``error: ...`` on stderr and exits 2; nothing prints a traceback unless
``BUMP_DEBUG`` is set.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bump_contracts.cli_errors import CliParser
from bump_contracts.face_geometry import ContractError
from character_library import Library
from character_library.errors import LibraryError
from character_library.import_args import add_import_arguments, forward_argv
from character_library.locations import DEFAULT_LIBRARY, LIBRARY_ENV, library_path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def _field_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--age", type=int, help="age in years (goes into the prompt)")
    p.add_argument("--gender", help="e.g. man, woman")
    p.add_argument("--ethnicity", help="e.g. Spanish, Korean")
    p.add_argument("--prompt-name", help="a made-up name for the prompt (helps consistency)")
    p.add_argument("--features", help="e.g. 'goatee, freckles'")
    p.add_argument("--prompt", help="full positive prompt (default: built from the fields above)")
    p.add_argument("--negative-prompt", help="negative prompt")
    p.add_argument("--notes", help="free notes")
    p.add_argument("--tags", help="comma-separated tags")
    p.add_argument("--source-blend", metavar="FILE", help="the .blend file the character lives in")
    p.add_argument("--source-object", metavar="OBJECT", help="the character's object in that .blend")
    p.add_argument("--bone", action="append", type=_key_value, metavar="ROLE=BONE", help="head/eye bone override (repeat)")
    p.add_argument("--bump", action="append", type=_key_value, metavar="KEY=VALUE", help="default bump setting, e.g. steps=35 (repeat)")


def add_parser(subparsers: Any) -> None:
    """Add ``library`` and its sub-commands to the top-level command line."""
    lib = subparsers.add_parser(
        "library",
        help="the character library: characters, package versions, prompts, history",
        description=f"Manage a character library folder (default ${LIBRARY_ENV} or {DEFAULT_LIBRARY}).",
    )
    lib.add_argument("--library", metavar="DIR", help=f"library folder (default ${LIBRARY_ENV} or {DEFAULT_LIBRARY})")
    sub = lib.add_subparsers(dest="library_command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
        return p

    p = command("list", "list or search characters")
    p.add_argument("query", nargs="?", help="text to look for in names, prompts, features, notes and tags")
    p.add_argument("--tag", help="only characters with this tag")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--order", choices=("name", "updated", "created"), default="name")
    p.add_argument("--trash", action="store_true", help="list the trash instead")

    p = command("show", "show one character: fields, package versions, best runs")
    p.add_argument("character", help="name or id")
    p.add_argument("--runs", type=int, default=5, help="how many best runs to show")

    p = command("create", "create a character")
    p.add_argument("name")
    _field_options(p)

    p = command("edit", "change a character's fields")
    p.add_argument("character", help="name or id")
    p.add_argument("--name", help="new display name (the folder stays)")
    _field_options(p)

    p = command("delete", "move a character to the library's trash")
    p.add_argument("character", help="name or id")

    p = command("trash", "deleted characters: list them, restore one, or empty the trash for good")
    p.add_argument("action", choices=("list", "restore", "empty"), help="list, restore NAME, or empty")
    p.add_argument("character", nargs="?", help="restore: the deleted character's name, id or trash folder")

    p = command("export", "write a character (index rows + files) to one zip")
    p.add_argument("character", help="name or id")
    p.add_argument("zip", help="zip file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing zip")

    p = command("import", "add a character from an exported zip")
    p.add_argument("zip")
    p.add_argument("--rename", metavar="NAME", help="import under a new name (when the name is taken)")
    p.add_argument("--replace", action="store_true", help="move an existing character of that name to the trash first")

    p = command("repair", "rebuild the index from the character folders")

    p = command("import-images", "build a package from outside images, a folder or a video (runs in the backend)")
    add_import_arguments(p)

    p = command("set-active", "make a package version the active one")
    p.add_argument("character", help="name or id")
    p.add_argument("version", type=int)

    p = command("add-package", "add an existing profile package folder as the next version")
    p.add_argument("character", help="name or id")
    p.add_argument("folder")
    p.add_argument("--origin", choices=("rendered", "imported", "bumped"))
    p.add_argument("--parent-version", type=int, help="for bumped packages: the version it was bumped from")
    p.add_argument("--no-activate", action="store_true")


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("age", "gender", "ethnicity", "prompt_name", "features", "prompt", "negative_prompt", "notes", "tags"):
        value = getattr(args, key, None)
        if value is not None:
            fields[key] = value
    if getattr(args, "name", None) is not None and args.library_command == "edit":
        fields["name"] = args.name
    if args.source_blend or args.source_object:
        if not args.source_blend:
            raise ValueError("--source-object needs --source-blend")
        fields["source"] = {"kind": "blend", "blend": args.source_blend, **({"object": args.source_object} if args.source_object else {})}
    if args.bone:
        fields["bones"] = dict(args.bone)
    if args.bump:
        fields["bump"] = dict(args.bump)
    return fields


def _character_text(c: Any) -> str:
    lines = [f"{c.name}  (id {c.id}, folder {c.folder})"]
    for key in ("age", "gender", "ethnicity", "prompt_name", "features", "prompt", "negative_prompt", "notes"):
        value = getattr(c, key)
        if value not in (None, ""):
            lines.append(f"  {key}: {value}")
    lines.append(f"  suggested prompt: {c.suggested_prompt()}")
    if c.tags:
        lines.append(f"  tags: {', '.join(c.tags)}")
    lines.append(f"  source: {json.dumps(c.source)}")
    if c.bones:
        lines.append(f"  bones: {json.dumps(c.bones)}")
    if c.bump:
        lines.append(f"  bump defaults: {json.dumps(c.bump)}")
    lines.append(f"  packages: {c.package_count}, active version: {c.active_version}")
    return "\n".join(lines)


def _library_path(args: argparse.Namespace) -> Path:
    return library_path(args.library)


def _import_images(args: argparse.Namespace) -> int:
    """Hand ``import-images`` to the backend, which has the face pipeline, in a process of its own."""
    if importlib.util.find_spec("bump_backend") is None:
        print("error: import-images runs in the bump backend; install it with pip install -e \".[backend]\"",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    argv = [sys.executable, "-m", "bump_backend", "import-images", "--library", str(_library_path(args)),
            *forward_argv(args)]
    done = subprocess.run(argv, capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def _dispatch(args: argparse.Namespace) -> tuple[Any, str]:
    """Run the command; return (JSON-able result, text for humans)."""

    cmd = args.library_command
    root = _library_path(args)
    if cmd == "repair":
        lib, report = Library.repair(root)
        lib.close()
        text = f"indexed {report.characters} characters, {report.packages} packages, {report.runs} history runs"
        text += "".join(f"\n  skipped {s}" for s in report.skipped) + "".join(f"\n  {p}" for p in report.problems)
        if report.moved_index:
            text += f"\n  the damaged index was kept as {report.moved_index}"
        if report.staging_removed:
            text += f"\n  removed {len(report.staging_removed)} unfinished import(s) left in .staging by a killed process"
        return report.to_dict(), text
    # The default library is made on first use (a fresh install's first `library list` works); a folder
    # named with --library must already be one unless the command adds to it, so a typo is not a new library.
    create = cmd in ("create", "import") or not args.library
    with Library.open(root, create=create) as lib:
        if cmd == "list":
            if args.trash:
                entries = [p.name for p in lib.list_trash()]
                return {"trash": entries}, "\n".join(entries) or "(trash is empty)"
            chars = lib.list_characters(args.query, tag=args.tag, limit=args.limit, offset=args.offset, order=args.order)
            text = "\n".join(f"{c.name}\t{c.id}\tv{c.active_version or '-'}\t{', '.join(c.tags)}" for c in chars)
            return {"characters": [c.to_dict() for c in chars], "total": lib.count_characters(args.query, tag=args.tag)}, text or "(no characters)"
        if cmd == "show":
            c = lib.get_character(args.character)
            packages = lib.list_packages(c.id)
            best = lib.best_runs(c.id, limit=args.runs)
            text = _character_text(c)
            for p in packages:
                origin = p.origin + (f" from v{p.parent_version}" if p.parent_version else "")
                text += f"\n  v{p.version}{' *' if p.active else ''}: {origin}, {len(p.views)} views ({', '.join(v.name for v in p.views)})"
            for r in best:
                text += f"\n  run {r.run_id[:8]}: seed {r.seed}, score {r.identity_score}, steps {r.steps}, cfg {r.cfg}, denoise {r.denoise}"
            return {
                "character": c.to_dict(),
                "suggested_prompt": c.suggested_prompt(),
                "packages": [p.to_dict() for p in packages],
                "best_runs": [r.to_dict() for r in best],
                "best_seeds": lib.best_seeds(c.id),
                "runs": lib.count_runs(c.id),
            }, text
        if cmd == "create":
            c = lib.create_character(args.name, **_fields(args))
            return {"character": c.to_dict()}, f"created {c.name} in {lib.characters_dir / c.folder}"
        if cmd == "edit":
            fields = _fields(args)
            if not fields:
                raise ValueError("nothing to change; give at least one field option (see --help)")
            c = lib.update_character(args.character, **fields)
            return {"character": c.to_dict()}, f"updated {c.name}"
        if cmd == "delete":
            target = lib.delete_character(args.character)
            return {"trash": str(target)}, f"moved to {target}"
        if cmd == "trash":
            return _trash(lib, args)
        if cmd == "export":
            path = lib.export_character(args.character, args.zip, overwrite=args.overwrite)
            return {"zip": str(path)}, f"wrote {path}"
        if cmd == "import":
            c, report = lib.import_character(args.zip, rename=args.rename, replace=args.replace)
            text = f"imported {c.name} ({c.package_count} packages, {report.runs} runs)" + "".join(f"\n  {p}" for p in report.problems)
            return {"character": c.to_dict(), "report": report.to_dict()}, text
        if cmd == "set-active":
            p = lib.set_active(args.character, args.version)
            return {"package": p.to_dict()}, f"v{p.version} is now active"
        if cmd == "add-package":
            p = lib.add_package(args.character, args.folder, origin=args.origin, parent_version=args.parent_version, activate_it=not args.no_activate)
            return {"package": p.to_dict()}, f"added v{p.version} ({len(p.views)} views) at {p.path}"
    raise ValueError(f"unknown library command {cmd!r}")


def _trash(lib: Any, args: argparse.Namespace) -> tuple[Any, str]:
    if args.action != "restore" and args.character:
        raise ValueError(f"'trash {args.action}' takes no name")
    if args.action == "list":
        entries = lib.trashed_characters()
        text = "\n".join(f"{t.name}\t{t.character_id}\t{t.trash_name}" for t in entries)
        return {"trash": [t.to_dict() for t in entries]}, text or "(no deleted characters)"
    if args.action == "restore":
        if not args.character:
            raise ValueError("'trash restore' needs the deleted character's name ('library trash list' shows them)")
        c = lib.restore_character(args.character)
        return {"character": c.to_dict()}, f"restored {c.name} in {lib.characters_dir / c.folder}"
    removed = lib.empty_trash()
    return {"removed": removed}, f"removed {removed} trash entries for good"


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``library`` command; returns the exit status."""

    if args.library_command == "import-images":
        return _import_images(args)
    as_json = getattr(args, "json", False)
    try:
        result, text = _dispatch(args)
    except (LibraryError, ContractError, ValueError, OSError) as exc:
        message = str(exc) if not isinstance(exc, OSError) or not exc.strerror else f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
        print(f"error: {message}", file=sys.stderr)
        if as_json:
            print(json.dumps({"ok": False, "error": message}))
        if os.environ.get("BUMP_DEBUG"):
            raise
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; the library is unchanged by the unfinished command", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"error: unexpected {type(exc).__name__}: {exc} (set BUMP_DEBUG=1 for details)", file=sys.stderr)
        if os.environ.get("BUMP_DEBUG"):
            raise
        return EXIT_FAILED
    if as_json:
        print(json.dumps({"ok": True, **(result if isinstance(result, dict) else {"result": result})}, ensure_ascii=False, default=str))
    else:
        print(text)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m headless_renderer.library_cli``) until the main CLI wires it in."""
    parser = CliParser(prog="python -m headless_renderer")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["library", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
