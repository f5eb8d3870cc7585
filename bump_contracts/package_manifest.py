"""The profile package manifest (``package.json``): one versioned definition, validated on load.

A profile package is a folder holding one PNG per view, ``package.json`` and ``contact_sheet.png``.
Stdlib only: imported by Blender's side, the backend and the character library alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bump_contracts import safe_json
from bump_contracts.face_geometry import (
    CameraRecord,
    ContractError,
    FaceGeometry,
    number,
    reject_unknown,
    string,
)
from bump_contracts.pose import Pose

SCHEMA = "profile-package"
SCHEMA_VERSION = 1
MANIFEST_NAME = "package.json"
CONTACT_SHEET_NAME = "contact_sheet.png"
VIEW_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
ORIGINS = ("rendered", "imported", "bumped")


class ManifestError(ContractError):
    """``package.json`` is missing, unreadable or does not follow the contract."""


@dataclass(frozen=True)
class ViewRecord:
    """One image of the package and where the camera stood relative to the head."""

    name: str
    file: str
    yaw: float
    pitch: float
    roll: float
    width: int
    height: int
    camera: CameraRecord | None = None
    face: FaceGeometry | None = None
    sha256: str = ""
    estimated: bool = False
    pose: dict[str, Any] | None = None  # the character's pose for this view (bump_contracts.pose); None = as found

    FIELDS = frozenset(
        {"name", "file", "yaw", "pitch", "roll", "width", "height", "camera", "face", "sha256", "estimated", "pose"}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "yaw": self.yaw,
            "pitch": self.pitch,
            "roll": self.roll,
            "width": self.width,
            "height": self.height,
            "camera": self.camera.to_dict() if self.camera else None,
            "face": self.face.to_dict() if self.face else None,
            "sha256": self.sha256,
            "estimated": self.estimated,
            **({"pose": self.pose} if self.pose is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ViewRecord:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected an object", where)
        reject_unknown(data, cls.FIELDS, where)
        name = string(data.get("name"), f"{where}.name")
        if not VIEW_NAME_RE.match(name):
            raise ManifestError(f"{where}.name: {name!r} is not a view name (lowercase letters, digits, _)", f"{where}.name")
        file = string(data.get("file"), f"{where}.file")
        if "/" in file or "\\" in file or file.startswith(".") or not file.lower().endswith(".png"):
            raise ManifestError(f"{where}.file: {file!r} must be a plain .png file name inside the package", f"{where}.file")
        size = []
        for key in ("width", "height"):
            value = data.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ManifestError(f"{where}.{key}: expected a positive integer, got {value!r}", f"{where}.{key}")
            size.append(value)
        sha = data.get("sha256", "")
        if not isinstance(sha, str) or (sha and not re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise ManifestError(f"{where}.sha256: expected 64 lowercase hex digits", f"{where}.sha256")
        camera = data.get("camera")
        face = data.get("face")
        pose = data.get("pose")
        return cls(
            name=name,
            file=file,
            yaw=number(data.get("yaw"), f"{where}.yaw", minimum=-180, maximum=180),
            pitch=number(data.get("pitch"), f"{where}.pitch", minimum=-90, maximum=90),
            roll=number(data.get("roll"), f"{where}.roll", minimum=-180, maximum=180),
            width=size[0],
            height=size[1],
            camera=CameraRecord.from_dict(camera, f"{where}.camera") if camera is not None else None,
            face=FaceGeometry.from_dict(face, f"{where}.face") if face is not None else None,
            sha256=sha,
            estimated=bool(data.get("estimated", False)),
            pose=Pose.from_dict(pose, f"{where}.pose").to_dict() if pose is not None else None,
        )


@dataclass(frozen=True)
class PackageManifest:
    character_id: str
    character_name: str
    views: tuple[ViewRecord, ...]
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    origin: str = "rendered"
    phenotype: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "demo"})
    renderer: dict[str, Any] = field(default_factory=dict)
    contact_sheet: str | None = CONTACT_SHEET_NAME
    notes: str = ""

    TOP_FIELDS = frozenset(
        {"schema", "schema_version", "character", "created", "origin", "renderer", "views", "contact_sheet", "notes"}
    )

    def view(self, name: str) -> ViewRecord:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"package has no view {name!r}; it has {', '.join(v.name for v in self.views)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "character": {
                "id": self.character_id,
                "name": self.character_name,
                "phenotype": self.phenotype,
                "source": self.source,
            },
            "created": self.created,
            "origin": self.origin,
            "renderer": self.renderer,
            "views": [v.to_dict() for v in self.views],
            "contact_sheet": self.contact_sheet,
            "notes": self.notes,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def with_views(self, views: list[ViewRecord]) -> PackageManifest:
        return replace(self, views=tuple(views))


def from_dict(data: Any) -> PackageManifest:
    """Validate a parsed ``package.json``; raise :class:`ManifestError` naming the first bad field."""
    if not isinstance(data, dict):
        raise ManifestError("package.json: expected a JSON object at the top level", "package.json")
    if data.get("schema") != SCHEMA:
        raise ManifestError(f"schema: expected {SCHEMA!r}, got {data.get('schema')!r}", "schema")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"schema_version: expected an integer, got {version!r}", "schema_version")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"schema_version: {version} is newer than this program understands ({SCHEMA_VERSION}); update it"
        )
    if version < 1:
        raise ManifestError(f"schema_version: {version} is not a valid version", "schema_version")
    reject_unknown(data, PackageManifest.TOP_FIELDS, "package")
    character = data.get("character")
    if not isinstance(character, dict):
        raise ManifestError("character: expected an object", "character")
    reject_unknown(character, {"id", "name", "phenotype", "source"}, "character")
    phenotype = character.get("phenotype")
    if phenotype is not None and not isinstance(phenotype, dict):
        raise ManifestError("character.phenotype: expected an object or null", "character.phenotype")
    source = character.get("source", {"kind": "external"})
    if not isinstance(source, dict) or not isinstance(source.get("kind"), str):
        raise ManifestError("character.source: expected an object with a 'kind'", "character.source")
    origin = data.get("origin", "rendered")
    if origin not in ORIGINS:
        raise ManifestError(f"origin: expected one of {', '.join(ORIGINS)}, got {origin!r}", "origin")
    renderer = data.get("renderer", {})
    if not isinstance(renderer, dict):
        raise ManifestError("renderer: expected an object", "renderer")
    views_data = data.get("views")
    if not isinstance(views_data, list) or not views_data:
        raise ManifestError("views: expected a non-empty list", "views")
    views = tuple(ViewRecord.from_dict(v, f"views[{i}]") for i, v in enumerate(views_data))
    names = [v.name for v in views]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError(f"views: duplicate view name(s) {', '.join(duplicates)}", "views")
    files = [v.file for v in views]
    if len(set(files)) != len(files):
        raise ManifestError("views: two views share one image file", "views")
    contact = data.get("contact_sheet")
    if contact is not None:
        contact = string(contact, "contact_sheet")
        if "/" in contact or "\\" in contact:
            raise ManifestError("contact_sheet: must be a file name inside the package", "contact_sheet")
    created = string(data.get("created"), "created")
    notes = data.get("notes", "")
    if not isinstance(notes, str):
        raise ManifestError("notes: expected a string", "notes")
    return PackageManifest(
        character_id=string(character.get("id"), "character.id"),
        character_name=string(character.get("name"), "character.name"),
        views=views,
        created=created,
        origin=origin,
        phenotype=phenotype,
        source=source,
        renderer=renderer,
        contact_sheet=contact,
        notes=notes,
    )


def loads(text: str) -> PackageManifest:
    try:
        data = safe_json.loads(text, "package.json")
    except ContractError as exc:
        raise ManifestError(str(exc).replace("package.json: not valid JSON", "package.json is not valid JSON"),
                            exc.field) from None
    return from_dict(data)


def load_package(folder: str | os.PathLike, *, check_files: bool = True, check_hashes: bool = False) -> PackageManifest:
    """Read and validate a package folder; with ``check_files`` every view image must exist."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder", folder)
    if not path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST_NAME} (not a profile package, or an unfinished one)", folder)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    manifest = loads(text)
    if check_files:
        for view in manifest.views:
            image = folder / view.file
            if not image.is_file():
                raise ManifestError(f"{folder}: view {view.name!r} lists {view.file}, which is missing", folder)
            if check_hashes and view.sha256 and file_sha256(image) != view.sha256:
                raise ManifestError(f"{folder}: {view.file} does not match its recorded sha256", folder)
    return manifest


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def character_id_from_name(name: str) -> str:
    """A stable, file-system-safe id for a display name."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "character"
    return f"{slug}_{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"
