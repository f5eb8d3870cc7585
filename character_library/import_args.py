"""The ``import-images`` command's arguments, declared once.

The command runs in the backend (it needs the face pipeline: ``python -m bump_backend import-images``);
``python -m headless_renderer library import-images`` accepts the same arguments and hands them over.
Options left out keep the import's own defaults (``bump_backend.library_import.ImportOptions``).
"""

from __future__ import annotations

import argparse

# option -> ImportOptions field, in the order they are forwarded
OPTIONS = {"--size": "size", "--crop-scale": "crop_scale", "--min-separation": "min_separation",
           "--blur-ratio": "blur_ratio", "--max-frames": "max_frames"}


def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("character", help="name or id")
    p.add_argument("inputs", nargs="+", metavar="FILES|FOLDER|VIDEO")
    p.add_argument("--create", action="store_true", help="create the character if it does not exist")
    p.add_argument("--size", type=int, help="output view size in pixels (default 720)")
    p.add_argument("--crop-scale", type=float, help="crop side / face side (default 2.6)")
    p.add_argument("--min-separation", type=float, help="degrees between kept angles (default 10)")
    p.add_argument("--blur-ratio", type=float, help="blurry below this share of the set's reference sharpness, the "
                   "median over distinct angles of each angle's sharpest face (default 0.2)")
    p.add_argument("--max-frames", type=int, help="video frames sampled (default 300)")
    p.add_argument("--no-activate", action="store_true", help="add the version without making it active")


def import_options(args: argparse.Namespace) -> dict[str, object]:
    """The options the user gave, as ImportOptions keyword arguments."""
    return {field: getattr(args, field) for field in OPTIONS.values() if getattr(args, field) is not None}


def forward_argv(args: argparse.Namespace) -> list[str]:
    """The same command line again, for the process that runs it."""
    argv = [args.character, *map(str, args.inputs)]
    for option, field in OPTIONS.items():
        if getattr(args, field) is not None:
            argv += [option, str(getattr(args, field))]
    argv += [flag for flag, on in (("--create", args.create), ("--no-activate", args.no_activate),
                                   ("--json", getattr(args, "json", False))) if on]
    return argv
