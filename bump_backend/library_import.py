"""Build a profile package from images made outside Blender: portraits, character sheets, clips.

Every face in every image (or sampled video frame) is a candidate. Each is cropped upright
(rotated by its roll about the face centre) with room for head, neck and some shoulder, resized to
720x720, and where the crop runs past the image edge the canvas is filled with the image's
background colour (the median of its border). Candidates are then dropped when blurry (variance of
the Laplacian of the face resampled to the same size: below an absolute floor, or far below a robust
reference of the set, the median over distinct angles of each angle's sharpest face, so copies of one photo
cannot raise it) or when their estimated angle is within a few degrees of a sharper candidate already kept
(left and right profiles are 180 degrees apart, so both stay).

Faces come from the backend's face pipeline (``bump_backend.faces``), the same one a bump uses,
which is why importing photos is the backend's job: the library itself stays stdlib-only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bump_backend.faces import FaceFinderSettings, find_faces
from bump_contracts.face_geometry import FaceGeometry
from bump_contracts.package_manifest import PackageManifest, ViewRecord
from bump_contracts.views import MIN_ANGLE_SEPARATION_DEG, VIEWS, ViewSpec, angular_separation
from character_library.errors import LibraryError, ValidationError
from character_library.staging import claim
from profile_rig.core.package_writer import PackageStaging
from profile_rig.imaging.png_io import write_png

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif"}
SHARPNESS_SIDE = 128  # faces are compared for blur at this size
# Calibrated on two photos at face sides 100-300 px (tests/library/test_import_images.py): a sound face
# slightly soft (Gaussian sigma 1 px) measures 27-710 and stays; a strongly blurred one (sigma 3 px at
# 100 px) measures under 8. Relative to the set, sigma 1 keeps over a quarter of the sharp copy's value.
MIN_SHARPNESS = 15.0
BLUR_RATIO = 0.2
DETECT_MAX_SIDE = 1280  # detection runs on a downscaled copy of larger images


class ImportImagesError(LibraryError):
    """The inputs could not be turned into a package (nothing readable, no face)."""


@dataclass(frozen=True)
class ImportOptions:
    size: int = 720
    crop_scale: float = 2.6  # crop side / face side: head, neck and some shoulder with padding
    drop_below: float = 0.22  # crop centre below the face centre, in face sides (towards the neck)
    min_separation: float = MIN_ANGLE_SEPARATION_DEG
    blur_ratio: float = BLUR_RATIO  # blurry below ratio * the set's reference sharpness (reference_sharpness)
    min_sharpness: float = MIN_SHARPNESS  # absolute floor of the Laplacian variance at 128 px
    min_face_px: float = 48.0  # faces smaller than this in the source are too small to use
    max_roll: float = 45.0  # package sources are upright heads; more is a false detection or unusable
    max_frames: int = 300  # video frames sampled evenly up to this many
    max_views: int = 24

    def __post_init__(self) -> None:
        if not 64 <= self.size <= 4096:
            raise ValidationError(f"size: {self.size} px is outside 64..4096")
        if not 1.2 <= self.crop_scale <= 6:
            raise ValidationError(f"crop_scale: {self.crop_scale} is outside 1.2..6")
        if not 0 <= self.min_separation <= 90:
            raise ValidationError(f"min_separation: {self.min_separation} degrees is outside 0..90")
        if not 0 <= self.blur_ratio < 1:
            raise ValidationError(f"blur_ratio: {self.blur_ratio} is outside 0..1")
        if self.max_frames < 1 or self.max_views < 1:
            raise ValidationError("max_frames and max_views must be at least 1")


@dataclass
class FoundFace:
    """A face in source pixels with the face conventions of ``bump_contracts.face_geometry``."""

    centre: tuple[float, float]
    side: float  # upright face square side (brow to chin, cheek to cheek)
    roll: float
    yaw: float
    pitch: float
    eyes: tuple[tuple[float, float], tuple[float, float]]  # image-left first
    score: float


@dataclass
class Candidate:
    """A face worth keeping so far; the pixels are read again only for the faces finally kept."""

    input_index: int
    source: str
    frame: int | None
    face: FoundFace
    background: tuple[int, int, int]
    sharpness: float = 0.0


@dataclass
class ImportReport:
    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    detector: str = ""
    frames: int = 0
    seconds: float = 0.0
    package: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- the detector: the backend's own face pipeline ---------------------------------------------
DETECTOR = "bump_backend.faces"
# The import judges size and blur itself (min_face_px, select()): the finder must not hide a blurred
# face, or it would be reported as "no face found" instead of "blurry".
FINDER_SETTINGS = FaceFinderSettings(skip_smaller_than=0.0, min_sharpness=0.0)


def detect_faces(image: np.ndarray) -> list[FoundFace]:
    """Every face in an RGB image, through the same pipeline a bump uses (one detector for both)."""
    out = []
    for face in find_faces(np.ascontiguousarray(image), settings=FINDER_SETTINGS).faces:
        x0, y0, x1, y1 = face.box
        size = getattr(face, "size", max(x1 - x0, y1 - y0))
        eyes = sorted(tuple(map(float, e)) for e in face.eyes)
        out.append(FoundFace(((x0 + x1) / 2, (y0 + y1) / 2), float(size), float(face.roll), float(face.yaw),
                             float(face.pitch), (eyes[0], eyes[1]), float(face.score)))
    return out


# -- inputs ------------------------------------------------------------------------------------
def _read_image(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), np.uint8)  # imdecode handles non-ASCII paths that imread cannot
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_frames(path: Path, max_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImportImagesError(f"{path.name}: OpenCV cannot open this video")
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
        step = max(1, math.ceil(total / max_frames)) if total > 0 else 1
        index = taken = 0
        while taken < max_frames:
            ok = capture.grab()
            if not ok:
                break
            if index % step == 0:
                ok, frame = capture.retrieve()
                if ok:
                    taken += 1
                    yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files, folders (their images, sorted) and videos; anything else is an error naming it."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                raise ImportImagesError(f"{path}: the folder holds no images or videos")
            paths += found
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise ImportImagesError(f"{path.name}: not an image or video ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
            paths.append(path)
        else:
            raise ImportImagesError(f"{path}: no such file or folder")
    if not paths:
        raise ImportImagesError("no input images given")
    return paths


def iter_frames(
    paths: list[Path], max_frames: int, report: ImportReport | None, only: set[int] | None = None
) -> Iterator[tuple[int, str, int | None, np.ndarray]]:
    """(input index, file name, frame index or None, RGB image) for every image and sampled frame."""
    for number, path in enumerate(paths):
        if only is not None and number not in only:
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:
            for index, frame in _video_frames(path, max_frames):
                yield number, path.name, index, frame
        else:
            image = _read_image(path)
            if image is None:
                if report is not None:
                    report.dropped.append({"source": path.name, "frame": None, "reason": "unreadable image"})
                continue
            yield number, path.name, None, image


# -- geometry ----------------------------------------------------------------------------------
def background_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median colour of a thin border strip: what the canvas is padded with past the image edge."""
    h, w = image.shape[:2]
    m = max(1, min(h, w) // 50)
    strip = np.concatenate([image[:m].reshape(-1, 3), image[-m:].reshape(-1, 3), image[:, :m].reshape(-1, 3), image[:, -m:].reshape(-1, 3)])
    return tuple(int(v) for v in np.median(strip, axis=0))


def crop_matrix(face: FoundFace, side_px: float, drop: float, size: int) -> np.ndarray:
    """2x3 map from source pixels to an upright ``size`` square of ``side_px`` source pixels."""
    t = math.radians(face.roll)
    down = np.array([-math.sin(t), math.cos(t)])  # the head's down direction on screen
    centre = np.array(face.centre) + drop * face.side * down
    scale = size / side_px
    cos, sin = math.cos(-t) * scale, math.sin(-t) * scale
    # Rotate by -roll (upright) and scale about the crop centre, then move it to the output centre.
    matrix = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    matrix[:, 2] = size / 2 - matrix[:, :2] @ centre
    return matrix


def _apply(matrix: np.ndarray, point: tuple[float, float]) -> tuple[float, float]:
    x, y = matrix @ np.array([point[0], point[1], 1.0])
    return (float(x), float(y))


def sharpness(image: np.ndarray, face: FoundFace) -> float:
    """Variance of the Laplacian of the upright face square resampled to 128 px (equal face size)."""
    matrix = crop_matrix(face, face.side, 0.0, SHARPNESS_SIDE)
    face_img = cv2.warpAffine(image, matrix, (SHARPNESS_SIDE, SHARPNESS_SIDE), flags=cv2.INTER_AREA if face.side > SHARPNESS_SIDE else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(face_img, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def view_name(camera_yaw: float, camera_pitch: float, taken: set[str]) -> str:
    """The preset name within 12 degrees (front, three_quarter_left...), else a descriptive one.

    Angles estimated from outside photos are off by several degrees (a level portrait often reads
    as 8-10 degrees of pitch), so the tolerance is wider than the spacing a package needs.
    """
    here = ViewSpec("x", camera_yaw, camera_pitch)
    best = min(VIEWS.values(), key=lambda spec: angular_separation(spec, here))
    if angular_separation(best, here) <= 12.0:
        name = best.name
    else:
        side = "left" if camera_yaw >= 0 else "right"
        name = f"yaw_{side}_{abs(round(camera_yaw)):03d}"
        if abs(camera_pitch) >= 5:
            name += f"_{'up' if camera_pitch > 0 else 'down'}_{abs(round(camera_pitch)):02d}"
    base, n = name, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


# -- the pipeline ------------------------------------------------------------------------------
def _detect_scaled(detect: Callable[[np.ndarray], list[FoundFace]], image: np.ndarray) -> list[FoundFace]:
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    if scale >= 1.0:
        return detect(image)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    faces = detect(small)
    for f in faces:
        f.centre = (f.centre[0] / scale, f.centre[1] / scale)
        f.side /= scale
        f.eyes = ((f.eyes[0][0] / scale, f.eyes[0][1] / scale), (f.eyes[1][0] / scale, f.eyes[1][1] / scale))
    return faces


def reference_sharpness(candidates: list[Candidate], min_separation: float) -> float:
    """The median over distinct angles of each angle's sharpest face. Ten copies of one sharp photo
    count once, so they cannot raise the bar for a sound but softer face of another angle."""
    heads: list[Candidate] = []
    for c in sorted(candidates, key=lambda c: -c.sharpness):
        spec = ViewSpec("x", -c.face.yaw, -c.face.pitch)
        if not any(angular_separation(spec, ViewSpec("x", -h.face.yaw, -h.face.pitch)) < min_separation for h in heads):
            heads.append(c)
    return float(np.median([h.sharpness for h in heads])) if heads else 0.0


def select(candidates: list[Candidate], options: ImportOptions, report: ImportReport) -> list[Candidate]:
    """Drop blurry candidates, then near-duplicate angles (the sharper of two stays)."""
    if not candidates:
        return []
    # All inputs show one character, so faces are compared with a reference of the set (at equal face
    # size); the absolute floor catches a set that is blurry throughout.
    reference = reference_sharpness(candidates, options.min_separation)
    threshold = max(options.min_sharpness, options.blur_ratio * reference)
    sharp = []
    for c in candidates:
        if c.sharpness < threshold:
            report.dropped.append({"source": c.source, "frame": c.frame, "reason": f"blurry (sharpness {c.sharpness:.0f} < {threshold:.0f})",
                                   "yaw": round(c.face.yaw, 1), "sharpness": round(c.sharpness, 1)})
        else:
            sharp.append(c)
    kept: list[Candidate] = []
    for c in sorted(sharp, key=lambda c: -c.sharpness):
        spec = ViewSpec("x", -c.face.yaw, -c.face.pitch)
        twin = next((k for k in kept if angular_separation(spec, ViewSpec("x", -k.face.yaw, -k.face.pitch)) < options.min_separation), None)
        if twin is not None:
            report.dropped.append({"source": c.source, "frame": c.frame, "yaw": round(c.face.yaw, 1),
                                   "sharpness": round(c.sharpness, 1),
                                   "reason": f"near-duplicate angle of {twin.source}{'' if twin.frame is None else f'#{twin.frame}'} (yaw {twin.face.yaw:.0f})"})
        elif len(kept) >= options.max_views:
            report.dropped.append({"source": c.source, "frame": c.frame, "reason": f"over the {options.max_views}-view limit"})
        else:
            kept.append(c)
    return sorted(kept, key=lambda c: (-c.face.yaw, c.face.pitch))


def build_package(
    inputs: list[str | Path],
    destination: str | Path,
    character_id: str,
    character_name: str,
    options: ImportOptions | None = None,
) -> ImportReport:
    """Write a package folder at ``destination`` from outside images; raise if nothing usable."""

    options = options or ImportOptions()
    start = time.perf_counter()
    report = ImportReport()
    paths = expand_inputs(inputs)
    report.detector, detect = DETECTOR, detect_faces
    candidates: list[Candidate] = []
    for number, source, frame, image in iter_frames(paths, options.max_frames, report):
        report.frames += 1
        faces = _detect_scaled(detect, image)
        if not faces:
            report.dropped.append({"source": source, "frame": frame, "reason": "no face found"})
            continue
        largest = max((f.side for f in faces if abs(f.roll) <= options.max_roll), default=0.0)
        background = background_colour(image)
        for face in faces:
            if abs(face.roll) > options.max_roll:
                report.dropped.append({"source": source, "frame": frame, "reason": f"face lying sideways or upside down (roll {face.roll:.0f})"})
            elif face.side < options.min_face_px:
                report.dropped.append({"source": source, "frame": frame, "reason": f"face too small ({face.side:.0f} px)"})
            elif face.side < 0.5 * largest:
                report.dropped.append({"source": source, "frame": frame, "reason": "a smaller face beside the main one"})
            else:
                candidates.append(Candidate(number, source, frame, face, background, sharpness(image, face)))
    kept = select(candidates, options, report)
    if not kept:
        raise ImportImagesError(
            "no usable face in the inputs: " + "; ".join(sorted({d["reason"].split(" (")[0] for d in report.dropped})[:4])
        )
    # Second pass: read again only the inputs that hold kept faces (a clip's frames are not kept
    # in memory, 300 full-HD frames would need gigabytes).
    wanted: dict[tuple[int, int | None], list[Candidate]] = {}
    for c in kept:
        wanted.setdefault((c.input_index, c.frame), []).append(c)
    crops: dict[int, np.ndarray] = {}
    matrices: dict[int, np.ndarray] = {}
    size = options.size
    for number, _, frame, image in iter_frames(paths, options.max_frames, None, {c.input_index for c in kept}):
        for c in wanted.get((number, frame), []):
            side_px = c.face.side * options.crop_scale
            matrix = crop_matrix(c.face, side_px, options.drop_below, size)
            interp = cv2.INTER_AREA if side_px > size else cv2.INTER_CUBIC
            crops[id(c)] = cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=c.background)
            matrices[id(c)] = matrix
    views, images, labels, taken = [], [], [], set()
    with PackageStaging(destination) as staging:
        for c in kept:
            if id(c) not in crops:
                report.dropped.append({"source": c.source, "frame": c.frame, "reason": "could not be read again"})
                continue
            side_px = c.face.side * options.crop_scale
            matrix, crop = matrices[id(c)], crops[id(c)]
            yaw, pitch = -c.face.yaw, -c.face.pitch  # camera angles are the face's turned around
            name = view_name(yaw, pitch, taken)
            write_png(staging.path / f"{name}.png", crop)
            eyes = [_apply(matrix, e) for e in c.face.eyes]
            centre = _apply(matrix, c.face.centre)
            half = c.face.side * size / side_px / 2
            # Image-left eye is the subject's right eye when the face looks at the camera.
            geometry = FaceGeometry(
                head_centre=centre, right_eye=eyes[0], left_eye=eyes[1],
                face_box=(centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half),
                roll=0.0, yaw=round(c.face.yaw, 2), pitch=round(c.face.pitch, 2),
                eye_distance_px=math.dist(eyes[0], eyes[1]), depth_m=0.0,
                extra={"source": c.source, "frame": c.frame, "sharpness": round(c.sharpness, 1),
                       "source_roll": round(c.face.roll, 2), "detector": report.detector},
            )
            views.append(ViewRecord(name=name, file=f"{name}.png", yaw=round(yaw, 2), pitch=round(pitch, 2), roll=0.0,
                                    width=size, height=size, face=geometry, estimated=True))
            images.append(crop)
            labels.append(f"{name} {yaw:+.0f}")
            report.kept.append({"source": c.source, "frame": c.frame, "view": name, "yaw": round(yaw, 1),
                                "pitch": round(pitch, 1), "sharpness": round(c.sharpness, 1),
                                "face_px": round(c.face.side, 1)})
        manifest = PackageManifest(
            character_id=character_id, character_name=character_name, views=tuple(views), origin="imported",
            source={"kind": "external"},
            renderer={"engine": "import-images", "detector": report.detector, "inputs": [p.name for p in paths],
                      "resolution": [size, size], "crop_scale": options.crop_scale},
        )
        staging.commit(manifest, contact_images=images, contact_labels=labels)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def import_images(library: Any, ref: str, inputs: list[str | Path], options: ImportOptions | None = None, *, activate: bool = True) -> ImportReport:
    """Build a package from outside images and add it as the character's next version."""
    character = library.get_character(ref)
    with claim(library.staging_dir, "images") as work:  # removed on any exit; by the next open after kill -9
        report = build_package(inputs, work, character.id, character.name, options)
        package = library.add_package(character.id, work, origin="imported", activate_it=activate, move=True)
    report.package = package.to_dict()
    return report
