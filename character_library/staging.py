"""Work folders under the library's ``.staging/``, each claimed by a lock its process holds.

An import or a new package is written into ``.staging/<name>/`` first and renamed into place.
A process killed with ``kill -9`` leaves that folder behind; nothing else would ever remove it.
Each folder therefore has a lock file beside it (``<name>.lock``) that its process holds with
``flock`` for as long as it works. :func:`sweep` (run whenever a library is opened, and by
``repair``) removes every folder whose lock nobody holds, so a live import in another process is
never touched. Folders with no lock file (left by an older version) are removed once they are
an hour old. Where ``fcntl`` is missing (Windows) only entries older than a day are removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; sweep falls back to the age rule
    fcntl = None

LOCK_SUFFIX = ".lock"
UNLOCKED_AGE_S = 3600.0  # a folder without a lock file is an orphan once it is this old
NO_FLOCK_AGE_S = 24 * 3600.0


@contextlib.contextmanager
def claim(staging_dir: Path, prefix: str) -> Iterator[Path]:
    """A fresh ``staging_dir/<prefix>-<random>`` path (not created: the caller makes or renames it),
    locked for this process until the block ends; then the folder and its lock are removed."""
    name = f"{prefix}-{uuid.uuid4().hex}"
    lock_path = staging_dir / (name + LOCK_SUFFIX)
    while True:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        if fcntl is None:
            break
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # a sweep may have removed the lock file between open and flock: then take a new one
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
        path = staging_dir / name
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                lock_path.unlink()
    finally:
        os.close(fd)


def _held(lock_path: Path) -> bool:
    """True when a live process holds ``lock_path`` (its flock cannot be taken)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def sweep(staging_dir: Path, now: float | None = None) -> list[str]:
    """Remove what dead processes left in ``staging_dir``; return the names removed (locks not listed)."""
    if not staging_dir.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    entries = {p.name: p for p in staging_dir.iterdir()}
    for name, path in sorted(entries.items()):
        if name.endswith(LOCK_SUFFIX):
            continue
        lock = staging_dir / (name + LOCK_SUFFIX)
        if fcntl is None:
            orphan = _age(path, now) > NO_FLOCK_AGE_S
        elif lock.exists():
            orphan = not _held(lock)
        else:
            orphan = _age(path, now) > UNLOCKED_AGE_S
        if orphan:
            _remove(path)
            removed.append(name)
            if lock.exists():
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
    for name, path in sorted(entries.items()):  # a lock whose folder is gone (killed before it was made)
        if not name.endswith(LOCK_SUFFIX) or name[: -len(LOCK_SUFFIX)] in entries or not path.exists():
            continue
        if (fcntl is not None and not _held(path)) or (fcntl is None and _age(path, now) > NO_FLOCK_AGE_S):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return removed
