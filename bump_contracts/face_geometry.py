"""Per-face geometry in image pixels: the part shared by the package manifest and the render sidecar.

Stdlib only, so Blender's Python, the backend and the library can all import it.

Conventions (pixels, origin at the image's top-left corner, x right, y down; pixel centres at
+0.5):

* ``right_eye`` / ``left_eye`` are the *subject's* eyes (in a frontal view the subject's right
  eye is on the image's left).
* ``roll``: degrees the head's up axis is turned clockwise on screen (0 = upright; rotate the
  crop by ``-roll`` to make it upright). Derived from the head's up axis, so it stays defined for
  full profiles where the eye line is degenerate.
* ``yaw``: degrees the face is turned away from the camera, positive when the nose points to the
  image's right. A view from the subject's left side (camera yaw +90) has face yaw -90.
* ``pitch``: degrees, positive when the nose points up in the image (camera below the head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bump_contracts.errors import ContractError


def _require(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise ContractError(f"{where}: expected an object, got {type(mapping).__name__}", where)
    if key not in mapping:
        raise ContractError(f"{where}.{key}: missing", f"{where}.{key}")
    return mapping[key]


def number(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number within optional bounds (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError(f"{where}: expected a number, got {value!r}", where)
    value = float(value)
    if not math.isfinite(value):
        raise ContractError(f"{where}: must be finite, got {value!r}", where)
    if minimum is not None and value < minimum:
        raise ContractError(f"{where}: {value} is below the minimum {minimum}", where)
    if maximum is not None and value > maximum:
        raise ContractError(f"{where}: {value} is above the maximum {maximum}", where)
    return value


def point(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ContractError(f"{where}: expected [x, y], got {value!r}", where)
    return (number(value[0], f"{where}[0]"), number(value[1], f"{where}[1]"))


def box(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ContractError(f"{where}: expected [x0, y0, x1, y1], got {value!r}", where)
    x0, y0, x1, y1 = (number(v, f"{where}[{i}]") for i, v in enumerate(value))
    if x1 < x0 or y1 < y0:
        raise ContractError(f"{where}: x1/y1 must not be smaller than x0/y0, got {value!r}", where)
    return (x0, y0, x1, y1)


def string(value: Any, where: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ContractError(f"{where}: expected a non-empty string, got {value!r}", where)
    return value


def reject_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {', '.join(unknown)}", where)


@dataclass(frozen=True)
class FaceGeometry:
    """Where a character's face lands in one image, projected from the 3D rig."""

    head_centre: tuple[float, float]
    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    face_box: tuple[float, float, float, float]
    roll: float
    yaw: float
    pitch: float
    eye_distance_px: float
    depth_m: float
    in_frame: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    FIELDS = frozenset(
        {
            "head_centre",
            "right_eye",
            "left_eye",
            "face_box",
            "roll",
            "yaw",
            "pitch",
            "eye_distance_px",
            "depth_m",
            "in_frame",
            "extra",
        }
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "head_centre": [round(v, 3) for v in self.head_centre],
            "right_eye": [round(v, 3) for v in self.right_eye],
            "left_eye": [round(v, 3) for v in self.left_eye],
            "face_box": [round(v, 3) for v in self.face_box],
            "roll": round(self.roll, 4),
            "yaw": round(self.yaw, 4),
            "pitch": round(self.pitch, 4),
            "eye_distance_px": round(self.eye_distance_px, 3),
            "depth_m": round(self.depth_m, 5),
            "in_frame": bool(self.in_frame),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "face") -> FaceGeometry:
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object, got {type(data).__name__}", where)
        reject_unknown(data, cls.FIELDS, where)
        in_frame = data.get("in_frame", True)
        if not isinstance(in_frame, bool):
            raise ContractError(f"{where}.in_frame: expected true/false, got {in_frame!r}", f"{where}.in_frame")
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise ContractError(f"{where}.extra: expected an object", f"{where}.extra")
        return cls(
            head_centre=point(_require(data, "head_centre", where), f"{where}.head_centre"),
            right_eye=point(_require(data, "right_eye", where), f"{where}.right_eye"),
            left_eye=point(_require(data, "left_eye", where), f"{where}.left_eye"),
            face_box=box(_require(data, "face_box", where), f"{where}.face_box"),
            roll=number(_require(data, "roll", where), f"{where}.roll", minimum=-180, maximum=180),
            yaw=number(_require(data, "yaw", where), f"{where}.yaw", minimum=-180, maximum=180),
            pitch=number(_require(data, "pitch", where), f"{where}.pitch", minimum=-90, maximum=90),
            eye_distance_px=number(
                _require(data, "eye_distance_px", where), f"{where}.eye_distance_px", minimum=0
            ),
            depth_m=number(_require(data, "depth_m", where), f"{where}.depth_m"),
            in_frame=in_frame,
            extra=extra,
        )

    def check_not_degenerate(self, where: str = "face") -> None:
        """Refuse a face in frame that has no extent: a zero-width or zero-height box, both eyes on one
        point, or an eye distance of 0 (every later step divides by these). A face seen from behind the
        camera is recorded with a point box and ``in_frame`` false; that one is allowed."""
        x0, y0, x1, y1 = self.face_box
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            raise ContractError(f"{where}.face_box: a face in frame needs a box of positive width and height, "
                                f"got {list(self.face_box)}", f"{where}.face_box")
        if self.right_eye == self.left_eye:
            raise ContractError(f"{where}.left_eye: both eyes are at the same point {list(self.left_eye)}",
                                f"{where}.left_eye")
        if self.eye_distance_px <= 0:
            raise ContractError(f"{where}.eye_distance_px: must be above 0 for a face in frame, got "
                                f"{self.eye_distance_px}", f"{where}.eye_distance_px")

    @property
    def eyes(self) -> list[list[float]]:
        """Eye centres ordered image-left first (the backend's detector output order)."""
        a, b = list(self.right_eye), list(self.left_eye)
        return [a, b] if a[0] <= b[0] else [b, a]

    @property
    def face_size_px(self) -> float:
        x0, y0, x1, y1 = self.face_box
        return max(x1 - x0, y1 - y0)


@dataclass(frozen=True)
class CameraRecord:
    """A camera as Blender describes it: enough to re-project any world point into the image."""

    lens_mm: float
    sensor_width_mm: float
    sensor_height_mm: float
    sensor_fit: str
    resolution: tuple[int, int]
    shift: tuple[float, float]
    world_matrix: tuple[tuple[float, ...], ...]
    clip: tuple[float, float] = (0.01, 100.0)

    FIELDS = frozenset(
        {"lens_mm", "sensor_width_mm", "sensor_height_mm", "sensor_fit", "resolution", "shift", "world_matrix", "clip"}
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "lens_mm": self.lens_mm,
            "sensor_width_mm": self.sensor_width_mm,
            "sensor_height_mm": self.sensor_height_mm,
            "sensor_fit": self.sensor_fit,
            "resolution": list(self.resolution),
            "shift": list(self.shift),
            "world_matrix": [[round(v, 7) for v in row] for row in self.world_matrix],
            "clip": list(self.clip),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "camera") -> CameraRecord:
        if not isinstance(data, dict):
            raise ContractError(f"{where}: expected an object", where)
        reject_unknown(data, cls.FIELDS, where)
        res = _require(data, "resolution", where)
        if (
            not isinstance(res, (list, tuple))
            or len(res) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in res)
        ):
            raise ContractError(f"{where}.resolution: expected [width, height] positive integers, got {res!r}", f"{where}.resolution")
        matrix = _require(data, "world_matrix", where)
        if not isinstance(matrix, (list, tuple)) or len(matrix) != 4:
            raise ContractError(f"{where}.world_matrix: expected 4 rows", f"{where}.world_matrix")
        rows = []
        for i, row in enumerate(matrix):
            if not isinstance(row, (list, tuple)) or len(row) != 4:
                raise ContractError(f"{where}.world_matrix[{i}]: expected 4 numbers", f"{where}.world_matrix[{i}]")
            rows.append(tuple(number(v, f"{where}.world_matrix[{i}][{j}]") for j, v in enumerate(row)))
        fit = string(_require(data, "sensor_fit", where), f"{where}.sensor_fit")
        if fit not in ("AUTO", "HORIZONTAL", "VERTICAL"):
            raise ContractError(f"{where}.sensor_fit: expected AUTO, HORIZONTAL or VERTICAL, got {fit!r}", f"{where}.sensor_fit")
        clip = data.get("clip", [0.01, 100.0])
        return cls(
            lens_mm=number(_require(data, "lens_mm", where), f"{where}.lens_mm", minimum=1e-3),
            sensor_width_mm=number(_require(data, "sensor_width_mm", where), f"{where}.sensor_width_mm", minimum=1e-3),
            sensor_height_mm=number(
                _require(data, "sensor_height_mm", where), f"{where}.sensor_height_mm", minimum=1e-3
            ),
            sensor_fit=fit,
            resolution=(int(res[0]), int(res[1])),
            shift=point(data.get("shift", [0.0, 0.0]), f"{where}.shift"),
            world_matrix=tuple(rows),
            clip=point(clip, f"{where}.clip"),
        )
