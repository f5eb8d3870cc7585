"""``clip.json``: what a rendered clip folder holds (the animation command writes it, sequence jobs read it).

One record per frame names its image, render sidecar and motion-vector array by paths relative to the
clip folder (never absolute, never leaving it), with the pose it was rendered in. Frames are numbered
1, 2, 3 ... without gaps, so a reader can trust the order and the time of each frame (``(frame - 1) / fps``).
Unknown fields are refused with the field named, so a newer writer's clip fails loudly rather than
being half read. Stdlib only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from bump_contracts import safe_json
from bump_contracts.errors import ContractError
from bump_contracts.face_geometry import number
from bump_contracts.pose import Pose

SCHEMA = "demo-clip"
SCHEMA_VERSION = 1
FILE_NAME = "clip.json"
MAX_FRAMES = 2000  # per clip: also the longest frame range the add-on renders as one sequence
MAX_FPS = 240
MAX_SIDE = 8192
VECTORS_LAYOUT = ("float32 (H, W, 4) pixels, top row first: [..., 0:2] Cycles Vector X,Y (motion from the "
                  "previous frame), [..., 2:4] Z,W (motion to the next frame)")

CLIP_FIELDS = frozenset({"schema", "schema_version", "character", "fps", "width", "height", "vectors", "frames"})
FRAME_FIELDS = frozenset({"frame", "image", "sidecar", "vectors", "pose", "notes"})
CHARACTER_FIELDS = frozenset({"id", "name"})


class ClipError(ContractError):
    """A clip.json that does not follow this contract; the message names the field."""


# what one frame of a clip folder takes on disk, per pixel: the float32 (H, W, 4) vectors array plus the PNG
BYTES_PER_PIXEL = 16 + 4


def frame_range(start: Any, end: Any) -> range:
    """The frames ``start..end`` (both included) a range render covers, checked: integers, not empty, at most
    ``MAX_FRAMES`` (a clip holds no more). The messages name the range, for the panel and job files."""
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ClipError(f"frame range: {name} must be an integer frame, got {value!r}", f"frame_{name}")
    if end < start:
        raise ClipError(f"frame range {start}-{end} is empty: the end frame is before the start frame", "frame_end")
    count = end - start + 1
    if count > MAX_FRAMES:
        raise ClipError(f"frame range {start}-{end} has {count} frames; at most {MAX_FRAMES} are rendered and bumped "
                        "as one sequence: split it into shorter ranges", "frame_end")
    return range(start, end + 1)


def clip_bytes(width: int, height: int, frames: int) -> int:
    """About how many bytes a clip folder of ``frames`` frames at ``width`` x ``height`` takes (vectors dominate)."""
    return width * height * BYTES_PER_PIXEL * frames + 8192 * frames


def _reject_unknown(data: dict, allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ClipError(f"{where}: unknown field(s) {', '.join(unknown)}", f"{where}.{unknown[0]}")


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ClipError(f"{where}: expected an object, got {type(value).__name__}", where)
    return value


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ClipError(f"{where}: expected an integer in {low}..{high}, got {value!r}", where)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ClipError(f"{where}: expected a non-empty string, got {value!r}", where)
    return value


def relative_file(value: Any, where: str) -> str:
    """A path inside the clip folder: relative, forward slashes, no '..' (a clip cannot point elsewhere)."""
    text = _text(value, where)
    path = PurePosixPath(text)
    if "\\" in text or path.is_absolute() or ".." in path.parts or text.startswith("~"):
        raise ClipError(f"{where}: {text!r} must be a path inside the clip folder (relative, no '..')", where)
    return text


@dataclass(frozen=True)
class ClipFrame:
    frame: int  # 1-based, consecutive
    image: str
    sidecar: str | None = None
    vectors: str | None = None
    pose: Pose = field(default_factory=Pose)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"frame": self.frame, "image": self.image}
        if self.sidecar is not None:
            data["sidecar"] = self.sidecar
        if self.vectors is not None:
            data["vectors"] = self.vectors
        data["pose"] = self.pose.to_dict()
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, value: Any, where: str) -> ClipFrame:
        data = _object(value, where)
        _reject_unknown(data, FRAME_FIELDS, where)
        if "frame" not in data or "image" not in data:
            missing = "frame" if "frame" not in data else "image"
            raise ClipError(f"{where}.{missing}: missing", f"{where}.{missing}")
        frame = _integer(data["frame"], f"{where}.frame", 1, MAX_FRAMES)
        optional = {key: relative_file(data[key], f"{where}.{key}") if data.get(key) is not None else None
                    for key in ("sidecar", "vectors")}
        try:
            pose = Pose.from_dict(data.get("pose", {}), f"{where}.pose")
        except ContractError as exc:
            raise ClipError(str(exc), exc.field or f"{where}.pose") from None
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ClipError(f"{where}.notes: expected a list of strings", f"{where}.notes")
        return cls(frame, relative_file(data["image"], f"{where}.image"), optional["sidecar"], optional["vectors"],
                   pose, tuple(notes))


@dataclass(frozen=True)
class Clip:
    character_id: str
    character_name: str
    fps: float
    width: int
    height: int
    frames: tuple[ClipFrame, ...]
    vectors: str = VECTORS_LAYOUT

    def time_of(self, frame: ClipFrame) -> float:
        return (frame.frame - 1) / self.fps

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
                "character": {"id": self.character_id, "name": self.character_name},
                "fps": self.fps, "width": self.width, "height": self.height, "vectors": self.vectors,
                "frames": [f.to_dict() for f in self.frames]}

    def dumps(self) -> str:
        from_dict(self.to_dict())  # never write what could not be read back
        return json.dumps(self.to_dict(), indent=2)


def from_dict(value: Any) -> Clip:
    data = _object(value, "clip")
    if data.get("schema") != SCHEMA:
        raise ClipError(f"schema: expected {SCHEMA!r}, got {data.get('schema')!r}", "schema")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ClipError(f"schema_version: expected 1..{SCHEMA_VERSION}, got {version!r}", "schema_version")
    _reject_unknown(data, CLIP_FIELDS, "clip")
    character = _object(data.get("character"), "character")
    _reject_unknown(character, CHARACTER_FIELDS, "character")
    if "fps" not in data:
        raise ClipError("fps: missing", "fps")
    try:
        fps = number(data["fps"], "fps", minimum=1e-3, maximum=MAX_FPS)
    except ContractError as exc:
        raise ClipError(str(exc), "fps") from None
    width = _integer(data.get("width"), "width", 1, MAX_SIDE)
    height = _integer(data.get("height"), "height", 1, MAX_SIDE)
    frames_in = data.get("frames")
    if not isinstance(frames_in, list) or not frames_in:
        raise ClipError("frames: expected a non-empty list of frame records", "frames")
    if len(frames_in) > MAX_FRAMES:
        raise ClipError(f"frames: {len(frames_in)} frames, at most {MAX_FRAMES}", "frames")
    frames = tuple(ClipFrame.from_dict(f, f"frames[{i}]") for i, f in enumerate(frames_in))
    for i, f in enumerate(frames):
        if f.frame != i + 1:
            raise ClipError(f"frames[{i}].frame: expected {i + 1} (frames are numbered 1, 2, 3 ... in order), "
                            f"got {f.frame}", f"frames[{i}].frame")
    return Clip(_text(character.get("id"), "character.id"), _text(character.get("name"), "character.name"),
                fps, width, height, frames, _text(data.get("vectors", VECTORS_LAYOUT), "vectors"))


def loads(text: str | bytes) -> Clip:
    try:
        data = safe_json.loads(text, "clip", prefix="clip")
    except ClipError:
        raise
    except ContractError as exc:
        raise ClipError(str(exc), exc.field) from None
    return from_dict(data)


def load(path: str) -> Clip:
    """Read and check a clip.json; errors start with the file's path."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ClipError(f"{path}: cannot read: {exc}") from None
    try:
        return loads(text)
    except ClipError as exc:
        raise ClipError(f"{path}: {exc}", exc.field) from None
