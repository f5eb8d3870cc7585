"""Export a character as one zip, and import such a zip without trusting it.

The zip holds ``export.json`` (format marker, the index rows for reference, and a list of every
file with its size and sha256) and ``character/...``: the character folder. Import checks every
member *before* writing anything: only the file names a character folder can contain are
accepted (which rules out zip-slip, absolute and drive paths, backslashes and hidden files),
symlinks and special files are refused, member count and sizes are capped (the sizes are counted
while extracting, since a zip header can lie), and every file must match the sha256 listed in
``export.json``. The folder is extracted into ``.staging/`` and renamed into place under the
write lock; an existing character with the same name or id is never replaced silently.
"""

from __future__ import annotations

import json
import os
import re
import stat
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bump_contracts.package_manifest import ManifestError, character_id_from_name, file_sha256, load_package
from character_library.characters import CHARACTER_FILE, parse_character_document, validate_fields
from character_library.errors import ArchiveError, ConflictError, LibraryError
from character_library.fsutil import fsync_dir, now_iso, write_bytes_atomic, write_json_atomic
from character_library.history import HISTORY_FILE, replay_lines
from character_library.names import name_key, safe_folder_name
from character_library.repair import RepairReport, index_folder
from character_library.staging import claim

EXPORT_FORMAT = "bump-studio-character-export"
EXPORT_VERSION = 1
EXPORT_MANIFEST = "export.json"
PREFIX = "character/"
# Every path a character folder may hold, relative to the folder.
_ALLOWED = re.compile(
    r"^(character\.json|history\.jsonl|thumbnail\.png|packages/v\d{4}/(package\.json|[a-z0-9][a-z0-9_\-]{0,63}\.png))$"
)


@dataclass(frozen=True)
class ImportLimits:
    """Caps that keep a hostile zip from filling the disk or the memory.

    A real export stores its PNGs (ratio about 1) and deflates a little JSON, so it expands to
    about its own size. A zip bomb expands hundreds of times, in one member or spread over many:
    each member above ``ratio_floor_bytes`` may expand at most ``max_ratio`` times, and the whole
    archive, once it expands past ``archive_ratio_floor_bytes``, at most ``max_archive_ratio``
    times the zip file's size. All of it is checked from the headers before anything is written,
    and counted again while extracting (headers can lie).
    """

    max_members: int = 2000
    max_member_bytes: int = 256 * 1024 * 1024
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * 1024
    max_archive_ratio: float = 20.0
    archive_ratio_floor_bytes: int = 16 * 1024 * 1024


class ArchiveMixin:
    """``export_character`` and ``import_character``."""

    def export_character(self, ref: str, zip_path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the character (rows + folder) to one zip; refuses to overwrite unless asked."""
        zip_path = Path(zip_path).expanduser().resolve()
        if zip_path.exists() and not overwrite:
            raise ConflictError(f"{zip_path} already exists; choose another file or pass --overwrite")
        if not zip_path.parent.is_dir():
            raise LibraryError(f"{zip_path.parent} does not exist; create the folder first")
        with self.read():
            character = self.get_character(ref)
            packages = self.list_packages(character.id)
            runs = self.list_runs(character.id, limit=-1)
            folder = self.characters_dir / character.folder
            files = []
            for path in sorted(folder.rglob("*")):
                rel = path.relative_to(folder).as_posix()
                if path.is_symlink() or not path.is_file() or not _ALLOWED.match(rel):
                    continue
                files.append((rel, path))
            tmp = zip_path.with_name(f".{zip_path.name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                listing = []
                with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
                    for rel, path in files:
                        # PNGs are compressed already; storing them saves time and costs nothing.
                        kind = zipfile.ZIP_STORED if rel.endswith(".png") else zipfile.ZIP_DEFLATED
                        archive.write(path, PREFIX + rel, compress_type=kind)
                        listing.append({"path": rel, "size": path.stat().st_size, "sha256": file_sha256(path)})
                    manifest = {
                        "format": EXPORT_FORMAT,
                        "version": EXPORT_VERSION,
                        "exported": now_iso(),
                        "character": character.to_dict(),
                        "packages": [{k: v for k, v in p.to_dict().items() if k != "path"} for p in packages],
                        "history_runs": len(runs),
                        "files": listing,
                    }
                    archive.writestr(EXPORT_MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False))
                with open(tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(tmp, zip_path)
            finally:
                tmp.unlink(missing_ok=True)
        return zip_path

    def import_character(
        self,
        zip_path: str | os.PathLike,
        *,
        rename: str | None = None,
        replace: bool = False,
        limits: ImportLimits | None = None,
    ):
        """Add the character in a zip made by :meth:`export_character`; returns ``(character, report)``.

        If a character with the same name or id exists, pass ``rename`` (a new display name; the
        id follows it) or ``replace=True`` (the existing one goes to the trash first).
        """
        limits = limits or ImportLimits()
        zip_path = Path(zip_path).expanduser()
        with claim(self.staging_dir, "import") as staging:  # removed on any exit; by the next open after kill -9
            return self._import_staged(zip_path, staging, rename, replace, limits)

    def _import_staged(self, zip_path: Path, staging: Path, rename: str | None, replace: bool, limits: ImportLimits):
        """Extract into ``staging``, check everything, then rename it into place under the write lock."""
        folder_files, manifest = _extract(zip_path, staging, limits)
        _check_packages(zip_path, staging)
        doc_path = staging / CHARACTER_FILE
        try:
            doc = json.loads(doc_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"{zip_path.name}: character.json is unreadable ({exc})") from None
        char_id, fields, *_ = parse_character_document(doc, f"{zip_path.name}:character.json")
        if rename is not None:
            fields = {**fields, "name": validate_fields({"name": rename})["name"]}
            doc["name"] = fields["name"]
            doc["id"] = char_id = character_id_from_name(fields["name"])
            write_json_atomic(doc_path, doc)
        report = RepairReport()
        with self.write() as conn:
            clash = conn.execute(
                "SELECT id, name FROM characters WHERE id = ? OR name_key = ?", (char_id, name_key(fields["name"]))
            ).fetchall()
            if clash and not replace:
                raise ConflictError(
                    f"the library already has {clash[0]['name']!r}; import with --rename NEW_NAME, or --replace to move "
                    "the existing character to the trash first"
                )
            for row in clash:
                self.delete_character(row["id"])
            taken = {r[0] for r in conn.execute("SELECT folder FROM characters")} | {
                p.name for p in self.characters_dir.iterdir()
            }
            _renumber_clashing_runs(conn, staging / HISTORY_FILE, report)
            target = self.characters_dir / safe_folder_name(fields["name"], taken)
            os.replace(staging, target)
            try:
                new_id = index_folder(conn, target, report)
                fsync_dir(self.characters_dir)
            except BaseException:
                os.replace(target, staging)
                raise
            expected = manifest.get("history_runs")
            if isinstance(expected, int) and expected != report.runs:
                report.problems.append(f"export.json lists {expected} history runs, the file held {report.runs}")
            expected_pkgs = manifest.get("packages")
            if isinstance(expected_pkgs, list) and len(expected_pkgs) != report.packages:
                report.problems.append(
                    f"export.json lists {len(expected_pkgs)} packages, {report.packages} were complete"
                )
        return self.get_character(new_id), report


def _check_packages(zip_path: Path, staging: Path) -> None:
    """Every package version in the export must be a valid package, or nothing is imported (a version
    the index would skip would otherwise stay on disk, unlisted)."""
    packages = staging / "packages"
    for folder in sorted(packages.iterdir()) if packages.is_dir() else []:
        try:
            load_package(folder, check_files=True, check_hashes=True)
        except ManifestError as exc:
            detail = str(exc).replace(str(folder), f"packages/{folder.name}")
            raise ArchiveError(f"{zip_path.name}: packages/{folder.name}/package.json is not a valid package "
                               f"({detail}); nothing was imported") from None


def _renumber_clashing_runs(conn: Any, history: Path, report: RepairReport) -> None:
    """A copy imported next to its original keeps its history under fresh run ids."""
    if not history.is_file():
        return
    runs, problems = replay_lines(history.read_text(encoding="utf-8", errors="replace").splitlines())
    report.problems += problems
    clashing = [r for r in runs if conn.execute("SELECT 1 FROM history WHERE run_id = ?", (r["run_id"],)).fetchone()]
    if not clashing:
        return
    for run in clashing:
        run["run_id"] = uuid.uuid4().hex
    lines = [json.dumps({"op": "run", **r, "outputs": list(r["outputs"])}, ensure_ascii=False) + "\n" for r in runs]
    write_bytes_atomic(history, "".join(lines).encode("utf-8"))
    report.problems.append(f"{len(clashing)} history run id(s) already existed in this library and were renumbered")


def _check_member(info: zipfile.ZipInfo, limits: ImportLimits) -> str | None:
    """The folder-relative path of a member to extract, None for directories; raise if hostile."""
    name = info.filename
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode and stat.S_ISLNK(mode):
        raise ArchiveError(f"member {name!r} is a symbolic link; links are never extracted")
    if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"member {name!r} is a special file; only plain files are extracted")
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\x00" in name:
        raise ArchiveError(f"member {name!r} has an absolute or Windows-style path")
    parts = name.split("/")
    if any(p in ("..", ".") for p in parts):
        raise ArchiveError(f"member {name!r} climbs out of its folder ('..'); this is a zip-slip attack")
    if info.is_dir():
        if name.rstrip("/") + "/" == name and (name == PREFIX or name.startswith(PREFIX)):
            return None
        raise ArchiveError(f"unexpected folder {name!r} in the zip")
    if name == EXPORT_MANIFEST:
        rel = EXPORT_MANIFEST
    elif name.startswith(PREFIX) and _ALLOWED.match(name[len(PREFIX) :]):
        rel = name[len(PREFIX) :]
    else:
        raise ArchiveError(f"member {name!r} is not a file a character export contains")
    if info.file_size > limits.max_member_bytes:
        raise ArchiveError(f"member {name!r} is {info.file_size} bytes; the limit is {limits.max_member_bytes}")
    if info.file_size > limits.ratio_floor_bytes and info.file_size > limits.max_ratio * info.compress_size:
        ratio = info.file_size / max(info.compress_size, 1)
        raise ArchiveError(f"member {name!r} expands {ratio:.0f}x (at most {limits.max_ratio:g}x): refused as a zip bomb")
    return rel


def _copy_limited(source: Any, dest: Path, limit: int, name: str) -> int:
    written = 0
    with open(dest, "xb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise ArchiveError(f"member {name!r} holds more data than its header says or than allowed ({limit} bytes)")
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return written


def _extract(zip_path: Path, staging: Path, limits: ImportLimits) -> tuple[list[str], dict[str, Any]]:
    if not zip_path.is_file():
        raise ArchiveError(f"{zip_path} does not exist or is not a file")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{zip_path.name} is not a readable zip file ({exc})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > limits.max_members:
            raise ArchiveError(f"{zip_path.name} holds {len(infos)} members; the limit is {limits.max_members}")
        plan: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            rel = _check_member(info, limits)
            if rel is None:
                continue
            if rel in plan:
                raise ArchiveError(f"{zip_path.name} holds {info.filename!r} twice")
            plan[rel] = info
        declared = sum(i.file_size for i in plan.values())
        if declared > limits.max_total_bytes:
            raise ArchiveError(f"{zip_path.name} expands past {limits.max_total_bytes} bytes; refused")
        packed = max(zip_path.stat().st_size, 1)
        if declared > limits.archive_ratio_floor_bytes and declared > limits.max_archive_ratio * packed:
            raise ArchiveError(
                f"{zip_path.name} expands {declared / packed:.0f}x ({packed / 1e6:.1f} MB to {declared / 1e6:.0f} MB over "
                f"{len(plan)} files; at most {limits.max_archive_ratio:g}x): refused as a zip bomb")
        if EXPORT_MANIFEST not in plan or CHARACTER_FILE not in plan:
            raise ArchiveError(f"{zip_path.name} is not a character export (no {EXPORT_MANIFEST} or {PREFIX}{CHARACTER_FILE})")
        try:
            with archive.open(plan.pop(EXPORT_MANIFEST)) as handle:
                manifest = json.loads(handle.read(8 << 20))
        except (ValueError, zipfile.BadZipFile, RuntimeError) as exc:
            raise ArchiveError(f"{zip_path.name}: {EXPORT_MANIFEST} is unreadable ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            raise ArchiveError(f"{zip_path.name}: {EXPORT_MANIFEST} is not a {EXPORT_FORMAT} document")
        if not isinstance(manifest.get("version"), int) or manifest["version"] > EXPORT_VERSION:
            raise ArchiveError(f"{zip_path.name} was exported by a newer program (version {manifest.get('version')!r})")
        listed = {f.get("path"): f for f in manifest.get("files", []) if isinstance(f, dict)}
        if set(listed) != set(plan):
            missing = sorted(set(listed) - set(plan))[:3]
            extra = sorted(set(plan) - set(listed))[:3]
            raise ArchiveError(f"{zip_path.name}: files do not match export.json (missing {missing}, unlisted {extra})")
        staging.mkdir(parents=True)
        total = 0
        for rel, info in sorted(plan.items()):
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source:
                    total += _copy_limited(source, dest, min(limits.max_member_bytes, info.file_size), info.filename)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as exc:
                raise ArchiveError(f"{zip_path.name}: cannot extract {info.filename!r} ({exc})") from None
            if total > limits.max_total_bytes:
                raise ArchiveError(f"{zip_path.name} expands past {limits.max_total_bytes} bytes; refused")
            if file_sha256(dest) != listed[rel].get("sha256"):
                raise ArchiveError(f"{zip_path.name}: {rel} does not match its sha256 in export.json (damaged or altered)")
    return sorted(plan), manifest
