"""What a checked batch job file becomes: plain dataclasses the runner reads, and the job file's keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("package", "bump_package", "shots")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

TOP_KEYS = {"version": "", "defaults": "", "characters": "", "entries": ""}

DEFAULT_KEYS = {"output", "backends", "token_env", "upload_package", "timeout", "library", "update_library", "package",
                "bump", "shots", "reference"}

PACKAGE_KEYS = {"views", "resolution", "preset", "samples", "engine", "studio", "hdri", "lens", "face_fill", "pose",
                "expression", "expressions", "pose_views"}

SHOT_RENDER_KEYS = {"resolution", "preset", "samples", "engine"}

CHARACTER_KEYS = {"name", "demo", "phenotype", "rig", "blend", "object", "head_bone", "eye_bones", "head_object", "library",
                  "prompt", "negative_prompt", "package", "bump"}

ENTRY_KEYS = {"characters", "tasks", "bump", "shots"}

SHOT_KEYS = {"name", "blend", "cameras", "frames", "object", "bump", "reference", "sequence", *SHOT_RENDER_KEYS}

REFERENCES = ("rendered", "bumped")


@dataclass(frozen=True)
class Problem:
    line: int | None
    field: str
    message: str

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class JobFileError(Exception):
    """The job file has problems; ``problems`` lists every one (line, field, message)."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path, self.problems = path, sorted(problems, key=lambda p: p.line or 0)
        lines = "\n".join("  " + p.format(path) for p in self.problems)
        super().__init__(f"{len(problems)} problem(s) in {path}:\n{lines}")


@dataclass(frozen=True)
class PackageSettings:
    """How a character's package is rendered (the inputs of its render unit)."""

    views: tuple[tuple[str, float, float, float], ...]
    resolution: tuple[int, int]
    preset: dict[str, Any]  # RenderPreset.to_dict() with overrides applied
    studio: str = "almost_white"
    hdri: str | None = None
    lens: float = 85.0
    face_fill: float = 0.40
    pose: dict[str, Any] | None = None  # bump_contracts.pose.Pose.to_dict() applied to every view
    expressions: tuple[str, ...] = ()
    pose_views: bool = True

    def to_dict(self) -> dict[str, Any]:
        data = {"views": [list(v) for v in self.views], "resolution": list(self.resolution), "preset": self.preset,
                "studio": self.studio, "hdri": self.hdri, "lens": self.lens, "face_fill": self.face_fill}
        # posing keys only when set, so packages of earlier job files keep their unit identity
        if self.pose:
            data["pose"] = self.pose
        if self.expressions:
            data["expressions"] = list(self.expressions)
        if not self.pose_views:
            data["pose_views"] = False
        return data


@dataclass(frozen=True)
class CharacterSpec:
    key: str
    name: str
    kind: str  # demo | blend | library
    package: PackageSettings
    bump: dict[str, Any]
    phenotype: dict[str, Any] | None = None
    blend: str | None = None
    object: str | None = None
    head_bone: str | None = None
    eye_bones: tuple[str, str] | None = None
    head_object: str | None = None
    library_ref: str | None = None
    library_package: str | None = None  # the library's active package folder (used when not rendering)
    library_version: int | None = None  # that package's version in the library
    rig: str | None = None  # a demo's MPFB2 armature; None: the default rig (and the hash of job files without it)

    @property
    def library_name(self) -> str:
        """The library character that receives this character's packages and bump history."""
        return self.library_ref or self.name

    @property
    def can_render(self) -> bool:
        return self.kind == "demo" or self.blend is not None

    def source(self) -> dict[str, Any]:
        """What the render unit's hash covers about the character itself."""
        source = {"kind": self.kind, "name": self.name, "phenotype": self.phenotype, "blend": self.blend,
                  "object": self.object, "head_bone": self.head_bone,
                  "eye_bones": list(self.eye_bones) if self.eye_bones else None, "head_object": self.head_object}
        if self.rig is not None:  # only when given, so job files without it keep their unit hashes
            source["rig"] = self.rig
        return source


@dataclass(frozen=True)
class ShotSpec:
    name: str
    blend: str
    cameras: tuple[str | None, ...]
    frames: tuple[int | None, ...]
    render: dict[str, Any]  # resolution / preset dict overrides; empty = the file's own settings
    object: str | None
    bump: dict[str, Any] | None  # None: render only
    reference: str = "rendered"
    sequence: dict[str, Any] | None = None  # sequence settings: the frames are bumped as ONE sequence job


@dataclass(frozen=True)
class Task:
    character: str
    kind: str
    bump: dict[str, Any] = field(default_factory=dict)
    shots: tuple[ShotSpec, ...] = ()


@dataclass
class Job:
    path: Path
    output: Path
    backends: list[str]
    token: str | None
    upload_package: bool
    timeout: float
    characters: dict[str, CharacterSpec]
    tasks: list[Task]
    library: str | None = None
    update_library: bool = True  # with a library: record packages and bump runs there (library.py)

    def needs_backend(self) -> bool:
        return any(t.kind == "bump_package" or any(s.bump is not None for s in t.shots) for t in self.tasks)


def merge_bump(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; the ``face`` sub-table merges field by field."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "face" and isinstance(value, dict):
                out["face"] = {**out.get("face", {}), **value}
            else:
                out[key] = value
    return out


def parse_frames(value: Any) -> list[int]:
    """``[1, 5, "10-20", "30-40/5"]`` -> frame numbers (ranges inclusive, optional step)."""
    frames: list[int] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            frames.append(item)
            continue
        match = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*(?:/\s*(\d+))?\s*", str(item)) if isinstance(item, str) else None
        if not match:
            raise ValueError(f"frame {item!r}: use a number or 'FIRST-LAST[/STEP]'")
        first, last, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
        if last < first or step < 1:
            raise ValueError(f"frame range {item!r}: LAST must not be before FIRST and STEP must be >= 1")
        if (last - first) // step >= 100000:
            raise ValueError(f"frame range {item!r}: more than 100000 frames")
        frames.extend(range(first, last + 1, step))
    duplicates = sorted({f for f in frames if frames.count(f) > 1})
    if duplicates:
        raise ValueError(f"frame(s) listed twice: {duplicates}")
    return frames

