"""The render sidecar: per-face geometry for every known character in a rendered shot.

Sent with any render that goes to the bump backend, so the backend needs no detector for faces
the scene already knows. Stdlib only; one definition for every side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bump_contracts import safe_json
from bump_contracts.face_geometry import CameraRecord, ContractError, FaceGeometry, reject_unknown, string

SCHEMA = "render-sidecar"
SCHEMA_VERSION = 1


class SidecarError(ContractError):
    """A render sidecar does not follow the contract."""


@dataclass(frozen=True)
class SidecarFace:
    character_id: str
    character_name: str
    geometry: FaceGeometry
    package: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "character_id": self.character_id,
            "character_name": self.character_name,
            "package": self.package,
            **self.geometry.to_dict(),
        }


@dataclass(frozen=True)
class RenderSidecar:
    width: int
    height: int
    faces: tuple[SidecarFace, ...]
    camera: CameraRecord | None = None
    image: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "camera": self.camera.to_dict() if self.camera else None,
            "faces": [f.to_dict() for f in self.faces],
            "extra": self.extra,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def from_dict(data: Any) -> RenderSidecar:
    if not isinstance(data, dict):
        raise SidecarError("sidecar: expected a JSON object", "sidecar")
    if data.get("schema") != SCHEMA:
        raise SidecarError(f"schema: expected {SCHEMA!r}, got {data.get('schema')!r}", "schema")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        raise SidecarError(f"schema_version: expected 1..{SCHEMA_VERSION}, got {version!r}", "schema_version")
    reject_unknown(data, {"schema", "schema_version", "image", "width", "height", "camera", "faces", "extra"}, "sidecar")
    size = []
    for key in ("width", "height"):
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise SidecarError(f"{key}: expected a positive integer, got {value!r}", key)
        size.append(value)
    faces_data = data.get("faces")
    if not isinstance(faces_data, list):
        raise SidecarError("faces: expected a list", "faces")
    faces = []
    for i, item in enumerate(faces_data):
        where = f"faces[{i}]"
        if not isinstance(item, dict):
            raise SidecarError(f"{where}: expected an object", where)
        own = {"character_id", "character_name", "package"}
        reject_unknown(item, own | FaceGeometry.FIELDS, where)
        package = item.get("package")
        if package is not None and not isinstance(package, str):
            raise SidecarError(f"{where}.package: expected a string or null", f"{where}.package")
        geometry = FaceGeometry.from_dict({k: v for k, v in item.items() if k not in own}, where)
        if geometry.in_frame:  # the backend crops and aligns every face in frame: it needs extent
            geometry.check_not_degenerate(where)
        faces.append(
            SidecarFace(
                character_id=string(item.get("character_id"), f"{where}.character_id"),
                character_name=string(item.get("character_name", item.get("character_id")), f"{where}.character_name"),
                geometry=geometry,
                package=package,
            )
        )
    camera = data.get("camera")
    image = data.get("image")
    if image is not None and not isinstance(image, str):
        raise SidecarError("image: expected a string or null", "image")
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        raise SidecarError("extra: expected an object", "extra")
    return RenderSidecar(
        width=size[0],
        height=size[1],
        faces=tuple(faces),
        camera=CameraRecord.from_dict(camera, "camera") if camera is not None else None,
        image=image,
        extra=extra,
    )


def loads(text: str | bytes) -> RenderSidecar:
    """Parse and validate a sidecar (bounded nesting, bounded integers, valid Unicode: :mod:`safe_json`)."""
    try:
        data = safe_json.loads(text, "sidecar", prefix="sidecar")
    except ContractError as exc:
        raise SidecarError(str(exc), exc.field) from None
    return from_dict(data)


def load(path: str) -> RenderSidecar:
    try:
        with open(path, encoding="utf-8") as handle:
            return loads(handle.read())
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read: {exc}") from None
