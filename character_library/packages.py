"""Package versions of a character: copy in, version, activate, find by image hash.

A version lives in ``characters/<folder>/packages/vNNNN/`` and is exactly a profile package folder
(``package.json`` + view PNGs + contact sheet). Files are staged under ``.staging/`` first and
moved into place with one rename while the write lock is held, so a crash never leaves a
half-copied version that the index or ``repair`` would take for complete.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bump_contracts.package_manifest import (
    MANIFEST_NAME,
    ORIGINS,
    ManifestError,
    PackageManifest,
    file_sha256,
    load_package,
)
from character_library.errors import ConflictError, LibraryError, NotFoundError, ValidationError
from character_library.fsutil import copy_tree_files, fsync_dir, now_iso, stamp, write_bytes_atomic
from character_library.staging import claim
from character_library.thumbnails import write_thumbnail

THUMBNAIL_NAME = "thumbnail.png"


def version_folder(version: int) -> str:
    return f"v{version:04d}"


def parse_version_folder(name: str) -> int | None:
    if len(name) == 5 and name[0] == "v" and name[1:].isdigit() and int(name[1:]) > 0:
        return int(name[1:])
    return None


@dataclass(frozen=True)
class ViewInfo:
    name: str
    file: str
    yaw: float
    pitch: float
    roll: float
    width: int
    height: int
    sha256: str
    estimated: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PackageInfo:
    character_id: str
    version: int
    path: Path
    origin: str
    parent_version: int | None
    created: str
    active: bool
    notes: str
    views: tuple[ViewInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "character_id": self.character_id,
            "version": self.version,
            "path": str(self.path),
            "origin": self.origin,
            "parent_version": self.parent_version,
            "created": self.created,
            "active": self.active,
            "notes": self.notes,
            "views": [v.to_dict() for v in self.views],
        }

    def image_paths(self) -> list[Path]:
        return [self.path / v.file for v in self.views]


def insert_package(
    conn: sqlite3.Connection,
    char_id: str,
    version: int,
    manifest: PackageManifest,
    *,
    origin: str,
    parent_version: int | None,
    notes: str,
    created: str,
) -> None:
    """Rows for one version and its views (shared by add, repair and import)."""
    conn.execute(
        "INSERT INTO packages (character_id, version, folder, origin, created, active, parent_version, notes)"
        " VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
        (char_id, version, version_folder(version), origin, created, parent_version, notes),
    )
    conn.executemany(
        "INSERT INTO package_views (character_id, version, name, file, yaw, pitch, roll, width, height, sha256, estimated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (char_id, version, v.name, v.file, v.yaw, v.pitch, v.roll, v.width, v.height, v.sha256, int(v.estimated))
            for v in manifest.views
        ],
    )


def activate(conn: sqlite3.Connection, char_id: str, version: int) -> None:
    conn.execute("UPDATE packages SET active = 0 WHERE character_id = ? AND active = 1", (char_id,))
    conn.execute("UPDATE packages SET active = 1 WHERE character_id = ? AND version = ?", (char_id, version))


def _same_device(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


class PackagesMixin:
    """Package versions: add (copy or move), list, get, activate, trash, find by hash."""

    def _stage_package(self, source: Path, staging: Path, char_id: str, char_name: str, origin: str | None,
                       move: bool) -> PackageManifest:
        try:
            manifest = load_package(source, check_files=True, check_hashes=True)
        except ManifestError as exc:
            raise LibraryError(f"cannot add {source} as a package: {exc}") from None
        origin = origin or manifest.origin
        if origin not in ORIGINS:
            raise ValidationError(f"origin: expected one of {', '.join(ORIGINS)}, got {origin!r}")
        names = [v.file for v in manifest.views]
        if manifest.contact_sheet and (source / manifest.contact_sheet).is_file():
            names.append(manifest.contact_sheet)
        try:
            if move and _same_device(source, self.staging_dir):
                os.replace(source, staging)
            else:
                staging.mkdir()
                copy_tree_files([(source / n, staging / n) for n in names])
            views = [replace(v, sha256=v.sha256 or file_sha256(staging / v.file)) for v in manifest.views]
            manifest = replace(manifest.with_views(views), character_id=char_id, character_name=char_name, origin=origin)
            if manifest.contact_sheet and not (staging / manifest.contact_sheet).is_file():
                manifest = replace(manifest, contact_sheet=None)
            write_bytes_atomic(staging / MANIFEST_NAME, manifest.dumps().encode("utf-8"))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def add_package(
        self,
        ref: str,
        source: str | os.PathLike,
        *,
        origin: str | None = None,
        parent_version: int | None = None,
        notes: str = "",
        activate_it: bool = True,
        move: bool = False,
    ) -> PackageInfo:
        """Add a profile package folder as the character's next version.

        The images are copied (``move=True`` renames a folder that is already on the library's
        file system, as import-images does), their hashes are checked or filled in, and
        ``package.json`` gets the library's character id and name. The first version is always
        made active; later ones only with ``activate_it``.
        """
        if not isinstance(notes, str) or len(notes) > 20000:
            raise ValidationError("notes: expected text up to 20000 characters")
        character = self.get_character(ref)
        with claim(self.staging_dir, "pkg") as staging:  # removed on any exit; by the next open after kill -9
            manifest = self._stage_package(Path(source), staging, character.id, character.name, origin, move)
            version = self._commit_package(character, staging, manifest, parent_version, notes, activate_it)
        return self.get_package(character.id, version)

    def _commit_package(self, character: Any, staging: Path, manifest: PackageManifest, parent_version: int | None,
                        notes: str, activate_it: bool) -> int:
        """Under the write lock: the next version's rows, then ``staging`` renamed into place."""
        with self.write() as conn:
            char_id = self.character_id(conn, character.id)
            if parent_version is not None:
                if not conn.execute(
                    "SELECT 1 FROM packages WHERE character_id = ? AND version = ?", (char_id, parent_version)
                ).fetchone():
                    raise NotFoundError(f"{character.name} has no package version {parent_version} to derive from")
            elif manifest.origin == "bumped":
                raise ValidationError("a bumped package needs the version it was bumped from (parent_version)")
            version = (conn.execute("SELECT max(version) FROM packages WHERE character_id = ?", (char_id,)).fetchone()[0] or 0) + 1
            folder = self.characters_dir / character.folder
            (folder / "packages").mkdir(exist_ok=True)
            target = folder / "packages" / version_folder(version)
            if target.exists():
                raise ConflictError(f"{target} already exists on disk but not in the index; run 'library repair'")
            has_active = conn.execute("SELECT 1 FROM packages WHERE character_id = ? AND active = 1", (char_id,)).fetchone()
            insert_package(conn, char_id, version, manifest, origin=manifest.origin, parent_version=parent_version, notes=notes, created=now_iso())
            if activate_it or not has_active:
                activate(conn, char_id, version)
            conn.execute("UPDATE characters SET updated = ? WHERE id = ?", (now_iso(), char_id))
            os.replace(staging, target)
            try:
                fsync_dir(target.parent)
                self.sync_character_file(conn, char_id)
            except BaseException:
                os.replace(target, staging)
                raise
            if activate_it or not has_active:
                write_thumbnail(target, manifest, folder / THUMBNAIL_NAME)
        return version

    def _package_rows(self, conn: sqlite3.Connection, char_id: str, version: int | None) -> list[PackageInfo]:
        folder = conn.execute("SELECT folder FROM characters WHERE id = ?", (char_id,)).fetchone()["folder"]
        sql = "SELECT * FROM packages WHERE character_id = ?"
        params: list[Any] = [char_id]
        if version is not None:
            sql += " AND version = ?"
            params.append(version)
        out = []
        for p in conn.execute(sql + " ORDER BY version", params).fetchall():
            views = tuple(
                ViewInfo(v["name"], v["file"], v["yaw"], v["pitch"], v["roll"], v["width"], v["height"], v["sha256"], bool(v["estimated"]))
                for v in conn.execute(
                    "SELECT * FROM package_views WHERE character_id = ? AND version = ? ORDER BY rowid", (char_id, p["version"])
                )
            )
            out.append(
                PackageInfo(
                    char_id, p["version"], self.characters_dir / folder / "packages" / p["folder"], p["origin"],
                    p["parent_version"], p["created"], bool(p["active"]), p["notes"], views,
                )
            )
        return out

    def list_packages(self, ref: str) -> list[PackageInfo]:
        with self.read() as conn:
            return self._package_rows(conn, self.character_id(conn, ref), None)

    def get_package(self, ref: str, version: int | None = None) -> PackageInfo:
        """A version, or the active one when ``version`` is None."""
        with self.read() as conn:
            row = self._row(conn, ref)
            if version is None:
                version = row["active_version"]
                if version is None:
                    raise NotFoundError(f"{row['name']} has no package yet; add one with 'library import-images' or a render")
            found = self._package_rows(conn, row["id"], int(version))
        if not found:
            raise NotFoundError(f"{row['name']} has no package version {version}")
        return found[0]

    def set_active(self, ref: str, version: int) -> PackageInfo:
        with self.write() as conn:
            row = self._row(conn, ref)
            if not conn.execute("SELECT 1 FROM packages WHERE character_id = ? AND version = ?", (row["id"], version)).fetchone():
                raise NotFoundError(f"{row['name']} has no package version {version}")
            activate(conn, row["id"], version)
            conn.execute("UPDATE characters SET updated = ? WHERE id = ?", (now_iso(), row["id"]))
            self.sync_character_file(conn, row["id"])
            package = self._package_rows(conn, row["id"], version)[0]
            try:
                manifest = load_package(package.path, check_files=False)
            except ManifestError:
                manifest = None
            if manifest is not None:
                write_thumbnail(package.path, manifest, self.characters_dir / row["folder"] / THUMBNAIL_NAME)
        return package

    def delete_package(self, ref: str, version: int) -> Path:
        """Move one version to the trash; the active version cannot go while others remain."""
        with self.write() as conn:
            row = self._row(conn, ref)
            found = self._package_rows(conn, row["id"], version)
            if not found:
                raise NotFoundError(f"{row['name']} has no package version {version}")
            if found[0].active and row["package_count"] > 1:
                raise ConflictError(f"version {version} is active; make another version active first ('library set-active')")
            child = conn.execute(
                "SELECT version FROM packages WHERE character_id = ? AND parent_version = ?", (row["id"], version)
            ).fetchone()
            if child:
                conn.execute("UPDATE packages SET parent_version = NULL WHERE character_id = ? AND parent_version = ?", (row["id"], version))
            conn.execute("DELETE FROM packages WHERE character_id = ? AND version = ?", (row["id"], version))
            target = self.trash_dir / f"{row['folder']}-{version_folder(version)}-{stamp()}"
            if found[0].path.exists():
                os.replace(found[0].path, target)
            self.sync_character_file(conn, row["id"])
        return target

    def find_views_by_hash(self, sha256: str) -> list[dict[str, Any]]:
        """Which characters/versions/views hold an image with this hash (the backend's cache key)."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT v.character_id, v.version, v.name, v.file, c.name AS character_name FROM package_views v"
                " JOIN characters c ON c.id = v.character_id WHERE v.sha256 = ?",
                (sha256.lower(),),
            ).fetchall()
        return [dict(r) for r in rows]

