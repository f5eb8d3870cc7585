"""The library folder and its SQLite index: opening, creating, locking and transactions.

Layout of a library folder::

    library.json                 marker (format, version, id)
    index.sqlite3                the index (WAL); rebuilt from the folders by ``repair``
    characters/<folder>/         one per character: character.json, packages/vNNNN/, history.jsonl,
                                 thumbnail.png
    trash/<folder>-<stamp>/      deleted characters and packages, kept until the user empties it
    .staging/                    work in progress (same file system, so moves are renames), each folder
                                 locked by its process; a dead process's folders go at the next open

The folders are the truth and the index is a cache of them that makes queries fast. Every write
runs inside ``BEGIN IMMEDIATE``: the SQLite write lock then serialises writers across processes
(Blender and a batch run), and file changes made while holding it (character.json, history lines,
folder renames) are serialised with the rows they mirror.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from character_library import schema, staging
from character_library.errors import LibraryError, SchemaError
from character_library.fsutil import now_iso, write_json_atomic

LIBRARY_FORMAT = "bump-studio-library"
LIBRARY_FORMAT_VERSION = 1
MARKER_NAME = "library.json"
INDEX_NAME = "index.sqlite3"
BUSY_TIMEOUT_MS = 30_000


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise SchemaError(
            f"{path}: cannot open the library index ({exc}); run 'library repair' to rebuild it from the folders"
        ) from None
    if str(mode).lower() != "wal":
        conn.close()
        raise LibraryError(f"{path}: the file system refused WAL mode ({mode}); keep libraries on a local disk")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


class LibraryBase:
    """Paths, the connection and transactions; the operations live in the mixins."""

    def __init__(self, root: Path, conn: sqlite3.Connection) -> None:
        self.root = root
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0
        self._writing = False
        self.swept: list[str] = []  # staging folders of dead processes removed when this library was opened

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike, *, create: bool = True):
        """Open the library in ``folder``; create it there when the folder is missing or empty."""
        root = Path(folder).expanduser().resolve()
        marker = root / MARKER_NAME
        if not marker.is_file():
            if root.exists() and not root.is_dir():
                raise LibraryError(f"{root} is a file, not a library folder")
            if root.is_dir() and any(p for p in root.iterdir() if p.name != INDEX_NAME and not p.name.startswith(".")):
                raise LibraryError(f"{root} is not empty and holds no {MARKER_NAME}: it is not a character library")
            if not create:
                raise LibraryError(f"{root} is not a character library (no {MARKER_NAME}); create one with 'library create'")
            cls._create_folder(root)
        else:
            cls._check_marker(marker)
        for sub in ("characters", "trash", ".staging"):
            (root / sub).mkdir(exist_ok=True)
        conn = _connect(root / INDEX_NAME)
        lib = cls(root, conn)
        lib.swept = staging.sweep(root / ".staging")  # what killed imports left behind (their locks are free)
        try:
            with lib.write() as c:
                schema.migrate(c)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SchemaError(
                f"{root / INDEX_NAME} is damaged ({exc}); run 'library repair' to rebuild it from the folders"
            ) from None
        except BaseException:
            conn.close()
            raise
        return lib

    @staticmethod
    def _create_folder(root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True)
            write_json_atomic(
                root / MARKER_NAME,
                {"format": LIBRARY_FORMAT, "version": LIBRARY_FORMAT_VERSION, "id": uuid.uuid4().hex, "created": now_iso()},
            )
        except OSError as exc:
            raise LibraryError(f"cannot create a library in {root}: {exc.strerror or exc}") from None

    @staticmethod
    def _check_marker(marker: Path) -> None:
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LibraryError(f"{marker} is unreadable ({exc}); it should hold the library's format marker") from None
        if not isinstance(data, dict) or data.get("format") != LIBRARY_FORMAT:
            raise LibraryError(f"{marker} does not mark a bump-studio character library")
        version = data.get("version")
        if not isinstance(version, int) or version > LIBRARY_FORMAT_VERSION:
            raise SchemaError(f"{marker}: library format version {version!r} is newer than this program; update it")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths -----------------------------------------------------------------------------
    @property
    def characters_dir(self) -> Path:
        return self.root / "characters"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    @property
    def staging_dir(self) -> Path:
        return self.root / ".staging"

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema.current_version(self._conn)

    # -- transactions ----------------------------------------------------------------------
    @contextmanager
    def _nested(self) -> Iterator[sqlite3.Connection]:
        """Inside an open transaction (read or write): count the depth, leave the transaction to its owner."""
        self._depth += 1
        try:
            yield self._conn
        finally:
            self._depth -= 1

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the library's cross-process write lock (nests)."""
        with self._lock:
            if self._depth:
                if not self._writing:
                    raise RuntimeError("a library write cannot start inside a read snapshot")
                with self._nested() as conn:
                    yield conn
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise LibraryError(
                    f"the library is locked by another program for more than {BUSY_TIMEOUT_MS // 1000} s ({exc}); try again"
                ) from None
            self._depth, self._writing = 1, True
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                self._depth, self._writing = 0, False

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs (nests, also inside :meth:`write`)."""
        with self._lock:
            if self._depth:
                with self._nested() as conn:
                    yield conn
                return
            self._conn.execute("BEGIN")
            self._depth = 1
            try:
                yield self._conn
            finally:
                self._depth = 0
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
