"""Typed results of the face pipeline, shared by detection, geometry, alignment and the CLI."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

SortOrder = Literal["largest", "left_to_right", "centre_out"]
Point = tuple[float, float]
Box = tuple[float, float, float, float]


def upright_side(box: Box, roll: float) -> float:
    """Side of the face's own (upright) square whose rotation by ``roll`` has ``box`` as bounds."""
    x0, y0, x1, y1 = box
    t = math.radians(roll)
    return max(x1 - x0, y1 - y0) / (abs(math.cos(t)) + abs(math.sin(t)))


def rotated_square_bounds(centre: Point, side: float, roll: float) -> Box:
    """Axis-aligned bounds of a square of ``side`` turned ``roll`` degrees clockwise about ``centre``."""
    t = math.radians(roll)
    half = side / 2 * (abs(math.cos(t)) + abs(math.sin(t)))
    return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


@dataclass(frozen=True, eq=False)
class Face:
    """One face in source-image pixels (origin top-left, y down, pixel centres at +0.5).

    ``box`` bounds the face square (brow to chin, cheek to cheek) as it lies in the image, so a
    rolled face's box is larger than its face; ``size`` gives the face square's own side.
    ``roll``/``yaw``/``pitch`` follow ``bump_contracts.face_geometry``: roll clockwise on screen,
    yaw positive when the nose points to the image's right, pitch positive when it points up.
    """

    box: Box
    score: float
    eyes: tuple[Point, Point]  # eye centres, image-left first
    roll: float
    yaw: float
    pitch: float
    source: Literal["geometry", "detector"]
    landmarks: np.ndarray | None = None  # Nx3 (x, y in image pixels, z in the same pixel scale)
    character_id: str | None = None
    sharpness: float | None = None  # edge energy of the upright face at 64 px (see detect.sharpness)
    extra: dict = field(default_factory=dict)

    @property
    def size(self) -> float:
        """Side of the upright face square in image pixels."""
        return upright_side(self.box, self.roll)

    @property
    def centre(self) -> Point:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    def to_dict(self) -> dict:
        data = {
            "box": [round(v, 2) for v in self.box],
            "score": round(float(self.score), 4),
            "roll": round(self.roll, 2),
            "yaw": round(self.yaw, 2),
            "pitch": round(self.pitch, 2),
            "eyes": [[round(v, 2) for v in p] for p in self.eyes],
            "size": round(self.size, 2),
            "source": self.source,
        }
        if self.character_id is not None:
            data["character_id"] = self.character_id
        if self.sharpness is not None:
            data["sharpness"] = round(self.sharpness, 2)
        return data


@dataclass(frozen=True, eq=False)
class SkippedFace:
    """A face that was found but is left alone, and why (too small, too blurry, over the limit...)."""

    face: Face
    reason: str

    def to_dict(self) -> dict:
        return {**self.face.to_dict(), "reason": self.reason}


@dataclass(eq=False)
class FaceSearchResult:
    faces: list[Face]
    skipped: list[SkippedFace]
    ms: float
    detector_calls: int = 0

    def to_dict(self) -> dict:
        return {
            "faces": [f.to_dict() for f in self.faces],
            "skipped": [s.to_dict() for s in self.skipped],
            "ms": round(self.ms, 1),
            "detector_calls": self.detector_calls,
        }


@dataclass(frozen=True, eq=False)
class AlignedFace:
    """An upright, upscaled face crop and the exact transforms between it and the source image.

    ``matrix`` maps image pixels to crop pixels, ``inverse`` maps back (both 2x3, pixel-centre
    coordinates); ``mask`` is the feathered face-shaped mask in crop space (float32, 0..1).
    """

    crop: np.ndarray
    matrix: np.ndarray
    inverse: np.ndarray
    mask: np.ndarray
    face: Face

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))


@dataclass(frozen=True)
class FaceFinderSettings:
    """How hard to look and what to leave alone.

    ``min_face_size``: smallest face side searched for (image pixels); the tile pyramid starts
    there, so lowering it costs time. ``skip_smaller_than`` / ``min_sharpness``: faces found but too
    small or too blurry to improve are reported as skipped ("devil faces" come from these).
    """

    min_face_size: float = 24.0
    max_faces: int = 0  # 0 = no limit
    confidence: float = 0.5  # final score: geometric mean of both BlazeFace models on the upright crop
    proposal_confidence: float = 0.45  # score a window detection needs to become a candidate (0.35: docs/faces.md)
    recheck_floor: float = 0.6  # score a candidate needs on its first upright re-check (a tracked face: 0.5)
    sort: SortOrder = "largest"
    skip_smaller_than: float = 32.0
    min_sharpness: float = 22.0  # detect.sharpness below this: too blurry (calibrated, docs/faces.md); 0 = off
    rotations: tuple[int, ...] = (0,)  # tile turns below the whole-image levels (see docs/faces.md)
    # More turns for the levels between the finest and the whole-image ones (faces of ~48 px and up): (0, 180) finds
    # more upside-down faces for ~1.1x the CPU (docs/faces.md, the fifth pass; the CLI's --upside-down).
    middle_rotations: tuple[int, ...] = ()
    coarse_rotations: tuple[int, ...] = (0, 90, 180, 270)  # tile turns of the two whole-image levels
    # Weak window proposals (0.3 up to proposal_confidence) get MTCNN's second look (detect.rescued): more turned faces
    # of people the search was not tuned on, for ~1.1x the CPU (docs/faces.md, the eighth pass; the CLI's
    # --no-second-look); P-Net proposes small faces (detect.small_faces, the fifteenth pass, ~1.1x the CPU); and O-Net
    # may vouch for a face the mesh did not fit (finder.O_NET_VOUCH, the ninth pass). Without facenet-pytorch's
    # weights installed there is none of these.
    second_look: bool = True
    # With second_look: MTCNN's P-Net proposes small faces (24-34 px) no window did (the CLI's --no-small-faces turns
    # it off, ~0.9x the CPU; docs/faces.md, the fifteenth pass).
    small_faces: bool = True
    refine_landmarks: bool = True
    cross_check: bool = False  # with a sidecar: also run the detector and add faces it alone finds
    workers: int = 2
    skip_flat_tiles: bool = True  # tiles without any texture cannot hold a face

    def __post_init__(self) -> None:
        if not self.min_face_size >= 8:
            raise ValueError(f"min_face_size must be at least 8 px, got {self.min_face_size}")
        if self.max_faces < 0:
            raise ValueError(f"max_faces must be 0 (no limit) or positive, got {self.max_faces}")
        for name in ("confidence", "proposal_confidence", "recheck_floor"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.sort not in ("largest", "left_to_right", "centre_out"):
            raise ValueError(f"sort must be largest, left_to_right or centre_out, got {self.sort!r}")
        for name in ("rotations", "coarse_rotations", "middle_rotations"):
            turns = getattr(self, name)
            if (not turns and name != "middle_rotations") or any(r % 90 for r in turns):
                raise ValueError(f"{name} must be multiples of 90 degrees, got {turns}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
