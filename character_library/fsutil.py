"""Atomic file writes and safe paths inside the library folder (stdlib only)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bump_contracts.atomic_io import fsync_dir, write_bytes_atomic
from character_library.errors import UnsafeNameError

__all__ = ["fsync_dir", "write_bytes_atomic"]  # the shared helpers, re-exported for the library's modules


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def stamp() -> str:
    """A sortable, file-name-safe UTC timestamp with a random tail (trash and backup names)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + uuid.uuid4().hex[:6]


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def append_line(path: Path, line: str) -> None:
    """Append one JSON line; the caller holds the library's write lock, so lines never interleave."""
    if "\n" in line:
        raise ValueError("a history line cannot contain a newline")
    with open(path, "ab") as handle:
        handle.write(line.encode("utf-8") + b"\n")
        handle.flush()
        os.fsync(handle.fileno())


def inside(root: Path, *parts: str) -> Path:
    """``root / parts`` resolved, refusing anything that lands outside ``root`` (links included)."""
    root = root.resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise UnsafeNameError(f"{'/'.join(parts)!r} would point outside the library folder {root}")
    return path


def copy_tree_files(files: list[tuple[Path, Path]]) -> None:
    """Copy regular files only (a symlink in a source package is refused, not followed)."""
    for src, dst in files:
        if src.is_symlink() or not src.is_file():
            raise UnsafeNameError(f"{src} is not a regular file (symlinks are not copied into the library)")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        with open(dst, "rb+") as handle:
            os.fsync(handle.fileno())
