"""Atomic, durable file writes (stdlib only): the one helper every side writes results with.

Write to a temporary sibling, fsync it, rename it over the target, fsync the folder: readers see
the old file or the new one, never half of one, and a crash leaves no truncated file behind.
Temporary names start with ``.`` and end with ``.tmp`` so leftovers are easy to recognise.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or new entry in ``path`` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path
