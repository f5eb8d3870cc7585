"""Rebuild the index from the character folders (the folders are the truth; the index is a cache).

Used when ``index.sqlite3`` is lost or damaged, after a character folder was copied in by hand,
and by zip import and trash restore, which index one folder with the same code.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_contracts.package_manifest import ManifestError, load_package
from character_library import staging
from character_library.characters import CHARACTER_FILE, insert_character, parse_character_document
from character_library.errors import LibraryError, NotFoundError, SchemaError
from character_library.fsutil import fsync_dir, stamp
from character_library.history import HISTORY_FILE, insert_run, replay_lines
from character_library.names import check_folder_name, name_key, safe_folder_name
from character_library.packages import activate, insert_package, parse_version_folder


@dataclass
class RepairReport:
    characters: int = 0
    packages: int = 0
    runs: int = 0
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    moved_index: str | None = None
    staging_removed: list[str] = field(default_factory=list)  # killed imports' work folders

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def index_folder(conn: sqlite3.Connection, path: Path, report: RepairReport) -> str:
    """Insert the rows for one character folder; raise LibraryError when it cannot be indexed."""
    folder = check_folder_name(path.name)
    doc_path = path / CHARACTER_FILE
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LibraryError(f"{folder}: {CHARACTER_FILE} is missing or unreadable ({exc})") from None
    char_id, fields, created, updated, provenance, active = parse_character_document(doc, f"{folder}/{CHARACTER_FILE}")
    insert_character(conn, char_id, folder, fields, created, updated)
    versions: list[int] = []
    packages_dir = path / "packages"
    for sub in sorted(packages_dir.iterdir()) if packages_dir.is_dir() else []:
        version = parse_version_folder(sub.name)
        if version is None or not sub.is_dir() or sub.is_symlink():
            if not sub.name.startswith("."):
                report.problems.append(f"{folder}/packages/{sub.name}: not a version folder, ignored")
            continue
        try:
            manifest = load_package(sub, check_files=True)
        except ManifestError as exc:
            report.problems.append(f"{folder}/packages/{sub.name}: skipped ({exc})")
            continue
        meta = provenance.get(str(version)) if isinstance(provenance.get(str(version)), dict) else {}
        parent = meta.get("parent_version")
        parent = parent if isinstance(parent, int) and not isinstance(parent, bool) and parent in versions else None
        notes = meta.get("notes") if isinstance(meta.get("notes"), str) else ""
        created_at = meta.get("created") if isinstance(meta.get("created"), str) else manifest.created
        insert_package(conn, char_id, version, manifest, origin=manifest.origin, parent_version=parent, notes=notes, created=created_at)
        versions.append(version)
        report.packages += 1
    if versions:
        activate(conn, char_id, active if active in versions else max(versions))
    history = path / HISTORY_FILE
    if history.is_file():
        runs, problems = replay_lines(history.read_text(encoding="utf-8", errors="replace").splitlines())
        report.problems += [f"{folder}/{HISTORY_FILE} {p}" for p in problems]
        for run in runs:
            if run["package_version"] is not None and run["package_version"] not in versions:
                run["package_version"] = None
            if conn.execute("SELECT 1 FROM history WHERE run_id = ?", (run["run_id"],)).fetchone():
                report.problems.append(f"{folder}/{HISTORY_FILE}: run {run['run_id']} also belongs to another character; skipped")
                continue
            insert_run(conn, char_id, run)
            report.runs += 1
    report.characters += 1
    return char_id


def rebuild_rows(conn: sqlite3.Connection, characters_dir: Path) -> RepairReport:
    """Replace every row with what the folders say (inside the caller's write transaction)."""
    report = RepairReport()
    conn.execute("DELETE FROM characters")
    for path in sorted(characters_dir.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or not path.is_dir() or path.is_symlink():
            continue
        conn.execute("SAVEPOINT one")
        try:
            index_folder(conn, path, report)
        except LibraryError as exc:
            conn.execute("ROLLBACK TO one")
            report.skipped.append(f"{path.name}: {exc}")
        conn.execute("RELEASE one")
    return report


def _move_aside(index: Path) -> str:
    aside = index.with_name(f"{index.name}.broken-{stamp()}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(index) + suffix)
        if part.exists():
            os.replace(part, Path(str(aside) + suffix))
    fsync_dir(index.parent)
    return str(aside)


def _index_healthy(index: Path) -> bool:
    if not index.exists():
        return False
    try:
        conn = sqlite3.connect(index, timeout=30)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False
    return ok


@dataclass(frozen=True)
class TrashedCharacter:
    """A deleted character waiting in ``trash/``: its trash folder's name, display name and id."""

    trash_name: str
    name: str
    character_id: str
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"trash_name": self.trash_name, "name": self.name, "id": self.character_id, "path": str(self.path)}


class RepairMixin:
    """``repair`` (rebuild the index) and restoring trashed characters."""

    @classmethod
    def repair(cls, folder: str | os.PathLike):
        """Open the library at ``folder`` and rebuild its index; a damaged index file is moved aside.

        Returns ``(library, report)``.
        """
        from character_library.store import INDEX_NAME, MARKER_NAME

        root = Path(folder).expanduser().resolve()
        if not (root / MARKER_NAME).is_file():
            raise LibraryError(f"{root} is not a character library (no {MARKER_NAME})")
        index = root / INDEX_NAME
        moved = None
        if index.exists() and not _index_healthy(index):
            moved = _move_aside(index)
        try:
            lib = cls.open(root, create=False)
        except SchemaError as exc:
            if "newer" in str(exc):
                raise
            moved = _move_aside(index)
            lib = cls.open(root, create=False)
        with lib.write() as conn:
            report = rebuild_rows(conn, lib.characters_dir)
        report.moved_index = moved
        report.staging_removed = lib.swept + staging.sweep(lib.staging_dir)
        return lib, report

    def trashed_characters(self) -> list[TrashedCharacter]:
        """The deleted characters in the trash, newest first (package versions in the trash are left out)."""
        found = []
        for entry in self.list_trash():
            try:
                doc = json.loads((entry / CHARACTER_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("name"), str):
                found.append(TrashedCharacter(entry.name, doc["name"], str(doc.get("id", "")), entry))
        return sorted(found, key=lambda t: t.trash_name.rsplit("-", 2)[-2:], reverse=True)

    def restore_character(self, ref: str):
        """Move a trashed character back: ``ref`` is its name, its id, or its trash folder's name.

        With several deleted characters of that name the newest comes back. The folder is renamed
        when its old name is taken; a live character with the same name is a ``ConflictError``.
        """
        entry = self._trash_entry(ref)
        report = RepairReport()
        with self.write() as conn:
            taken = {r[0] for r in conn.execute("SELECT folder FROM characters")} | {p.name for p in self.characters_dir.iterdir()}
            base = entry.name.rsplit("-", 2)[0]
            folder = base if base not in taken else safe_folder_name(base, taken)
            target = self.characters_dir / check_folder_name(folder)
            os.replace(entry, target)
            try:
                char_id = index_folder(conn, target, report)
            except BaseException:
                os.replace(target, entry)
                raise
        return self.get_character(char_id)

    def _trash_entry(self, ref: str) -> Path:
        entry = self.trash_dir / Path(ref).name
        if entry.is_dir() and (entry / CHARACTER_FILE).is_file():
            return entry
        try:
            key = name_key(ref)
        except LibraryError:
            key = None
        for trashed in self.trashed_characters():  # newest first
            if name_key(trashed.name) == key or trashed.character_id == ref:
                return trashed.path
        raise NotFoundError(f"no deleted character {ref!r} in the trash; 'library trash list' shows them")
