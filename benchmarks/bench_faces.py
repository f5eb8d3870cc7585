"""Face-finding benchmark: ours vs the FacePop method, on many identities, with a held-out part.

    python benchmarks/bench_faces.py --quick          # a few images per part (this shared machine)
    python benchmarks/bench_faces.py                  # the full run (30 scenes per part, 40 frames)

Faces come from the demo character rendered with 22 phenotypes (ages 6-85, three ethnicities and
mixes, bald/grey/white/blonde/black/auburn hair, some smiling, frowning, open-mouthed, brows up or
with the chin raised; front and three-quarter views; exact geometry from each package's manifest,
renders cached under ``.cache/bench_faces/``, pasted by their outline) and from the two real photos
that ship in wheels (scikit-image's astronaut, matplotlib's Grace Hopper). Four phenotypes and the
two photos form the *tune* part; eight phenotypes are *held out* (reported after each of four
passes, and looked into in the fifth); six more form the *fresh* part (``--part fresh``), run once
per pass after its choices are made; four more form a *second tune* part (``--part second_tune``,
from the eighth pass on), tuned on like the first. Scenes are 1440x1440 and 1280x720 with faces
pasted at 24-96 px, rolled 0-360 degrees, on cluttered backgrounds (photo crops, shapes, noise
textures), damaged by noise, blur or JPEG; recall is also reported by damage, per ancestry of the rendered identity
(``face_sources.ancestry``) and over the faces sharp enough to be worked on (the skip rule's bar at their true
square). A *large* part (``--part large``, from the twelfth
pass) pastes 1-3 faces of 128-512 px of the held-out and fresh identities; a *turned* part (``--part turned``, from
the thirteenth) their heads turned 22.5, 67.5 and 90° (profiles), rendered once more with those views, and
``--part turned_tune`` the tune identities' (tuned on); a *small* part (``--part small``, from the twenty-eighth
pass) pastes faces of 24 px only of the held-out and fresh identities, ``--part small_tune`` of the tune ones (both
tune parts'; tuned on); a *real* part (``--part real``, from the thirtieth pass) pastes real people's faces, the
held-out half of scikit-image's LFW subset (``face_sources.real_faces``: 25 px grey crops, brow to chin), at 24 and
32 px into grey scenes, and ``--part real_tune`` its tune half; a *group* part (``--part group``, from the
thirty-first) pastes the whole heads of three of the six people of insightface's group photo at 24-96 px, and
``--part group_tune`` the other three; a *turned large* part (``--part turned_large``, from the thirty-second) the
turned heads of the held-out and fresh identities at 128-512 px (close-ups and portraits turned side-on), and
``--part turned_large_tune`` the tune identities'; a *crowd* part (``--part crowd``, from the forty-first) packs
10-20 faces of 24-64 px of the held-out and fresh identities and the group photo's held-out heads in clusters, each
beside one placed before it (heads pasted later cover the edges of those before), and ``--part crowd_tune`` the tune
identities and heads. Recall and the
yaw error (rendered heads, whose yaw is known; apart for faces the mesh fitted and those it did not) are reported.
Both detectors run on the same images in the same run. A tracking run (FaceTracker on a 1280x720 sequence with
moving, turning faces) and the cold start (fresh process) are timed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from face_sources import (
    GROUP_ELLIPSE,
    LFW_CENTRE,
    LFW_EYES,
    LFW_SIDE,
    GroupFace,
    RealFace,
    Render,
    ancestry,
    group_faces,
    group_photo,
    load_renders,
    real_faces,
)

from bump_backend.faces import FaceFinderSettings, blazeface, find_faces, finder, groundtruth, mtcnn, runtime
from bump_backend.faces import detect as ours
from bump_backend.faces.groundtruth import TruthFace, clutter, degrade, paste_photo, place_face, similarity
from bump_backend.faces.track import FaceTracker
from bump_backend.faces.transform import apply, roll_of, to_index, wrap

SIZES = (24, 32, 48, 64, 96)
LARGE_SIZES = (128, 192, 256, 384, 512)  # the large part: close-ups and portraits, the common case of a character shot
SIZE_BUCKETS = ((24, 24), (32, 32), (48, 64), (96, 96), (128, 512))
ROLL_BUCKETS = ((0, 45), (45, 90), (90, 135), (135, 180))
DAMAGE = ("none", "noise", "blur", "jpeg")
ANCESTRIES = ("african", "asian", "caucasian", "mixed", "photo")  # face_sources.ancestry's groups, reported apart
SHAPES = ((1440, 1440), (1280, 720))
RENDER_SIDE = 0.92  # detector face side / manifest face-box height, measured on the tune renders
PHOTOS = ("astronaut", "grace_hopper")  # tune part only
# The large part's scenes: 1-3 faces of LARGE_SIZES each, nearer the border and each other than the small ones allow.
LARGE = dict(sizes=LARGE_SIZES, faces=(1, 4), margin=0.6, spacing=1.2)
# The small parts' scenes: 24 px faces only, drawn like the others (the 24 px goal has ~70 faces in a 60-scene part).
SMALL = dict(sizes=(24,))
# The real parts' scenes: LFW faces (25 px crops) at 24 and 32 px, near their own resolution, in grey scenes (a black
# and white photo: the crops are grey).
REAL = dict(sizes=(24, 32), grey=True)
# The crowd parts' scenes: 10-20 faces of 24-64 px in clusters, each beside one placed before it, 0.6-0.9 of the two
# sizes summed from it, centre to centre (1.2-1.8 faces apart at one size; a 24 px face at the edge of a 64 px one), so
# heads pasted later cover the hair and edges of those pasted before, as in a crowd.
CROWD = dict(sizes=(24, 32, 48, 64), faces=(10, 21), spacing=0.6, packed=True)
PACKED_REACH = 0.3
# A face measuring under this at its true square is skipped as too blurry when found (FaceFinderSettings.min_sharpness):
# the benchmark counts it found either way, and also reports recall over the faces at or above it.
SHARP_ENOUGH = FaceFinderSettings().min_sharpness


@dataclass
class Scene:
    image: np.ndarray
    faces: list[TruthFace]
    damage: str = ""
    sharpness: list[float] = field(default_factory=list)  # each face's ``detect.sharpness`` at its true square


@dataclass
class Found:
    centre: tuple[float, float]
    size: float
    roll: float
    yaw: float | None = None
    fitted: bool = False  # the face mesh fitted it (its yaw is the mesh's, else a guess from the detector's points)


@dataclass
class Tally:
    hits: dict = field(default_factory=dict)  # bucket -> [found, total]
    roll_hits: dict = field(default_factory=dict)
    small_roll_hits: dict = field(default_factory=dict)  # 24 px faces by roll bucket
    damage_hits: dict = field(default_factory=dict)  # (damage, "24" or "≥32") -> [found, total]
    sharp_hits: dict = field(default_factory=dict)  # faces sharp enough to be worked on: "24" or "≥32" -> [found, total]
    ancestry_hits: dict = field(default_factory=dict)  # (face_sources.ancestry, "24" or "≥32") -> [found, total]
    misses: list = field(default_factory=list)
    false_positives: int = 0
    # (scene, centre, size, roll, the nearest pasted face's distance and size or None): a face read at the wrong size
    # lies on a pasted face, clutter away from every one.
    false_positive_list: list = field(default_factory=list)
    images: int = 0
    roll_errors: list = field(default_factory=list)
    yaw_errors: dict = field(default_factory=dict)  # "mesh fit" / "no fit" -> errors of the found faces with a known yaw
    ms: dict = field(default_factory=dict)  # image shape -> [ms]
    cpu_ms: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)

    def add(self, table: dict, key, ok: bool) -> None:
        row = table.setdefault(key, [0, 0])
        row[0] += int(ok)
        row[1] += 1


# Renders are pasted by the character's own outline (``render_matte``) faded out below the chin by the ellipse.
# False: by the soft ellipse alone, the scenes of the passes before the fifth; that pasted the studio's white
# around each head, and a small soft face's box then took in the white oval (reported 1.6-1.75x too large).
PASTE_BY_MATTE = True


def render_matte(image: np.ndarray) -> np.ndarray:
    """The character's alpha in a package render: 0 on the flat studio backdrop reached from the border, else 1.

    The package renderer lays a transparent-film render on an exact backdrop colour, so the backdrop is the
    border-connected region of exactly that colour (white hair and eye whites are not: they are never exactly
    flat). Feathered half a pixel inwards, so no backdrop white is carried into the scene.
    """
    backdrop = image[0, 0].astype(np.int16)
    flat = (np.abs(image.astype(np.int16) - backdrop).max(axis=2) == 0).astype(np.uint8)
    _, labels = cv2.connectedComponents(flat, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0]) & (flat > 0)
    matte = (~outside).astype(np.float32)
    return cv2.GaussianBlur(matte, (0, 0), 0.6) * matte


def _composite(canvas: np.ndarray, image: np.ndarray, alpha_src: np.ndarray, matrix: np.ndarray, flags: int) -> None:
    """Blend ``image`` into ``canvas`` in place through ``alpha_src`` (in the image's pixels), both moved by ``matrix``."""
    h, w = canvas.shape[:2]
    warped = cv2.warpAffine(image, to_index(matrix), (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(alpha_src, to_index(matrix), (w, h), flags=cv2.INTER_LINEAR)[:, :, None]
    canvas[:] = np.clip(canvas * (1 - alpha) + warped * alpha + 0.5, 0, 255).astype(np.uint8)


def _pasted_geometry(matrix: np.ndarray, face_centre: tuple[float, float], side: float, right: tuple[float, float],
                     left: tuple[float, float], mirror: bool
                     ) -> tuple[tuple[float, float, float, float], tuple[float, float], tuple[float, float]]:
    """Where a source's face square (``face_centre``, ``side``) and eyes (the subject's right, then left) land under
    ``matrix``: the square's bounds and the two eyes, swapped when mirrored."""
    right, left = (left, right) if mirror else (right, left)
    right_c, left_c = (tuple(float(v) for v in apply(matrix, np.array([p]))[0]) for p in (right, left))
    corners = apply(matrix, np.array([[face_centre[0] + dx * side / 2, face_centre[1] + dy * side / 2]
                                      for dx in (-1, 1) for dy in (-1, 1)]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), right_c, left_c


def place_render(canvas: np.ndarray, render: Render, centre: tuple[float, float], size: float, roll: float,
                 mirror: bool) -> TruthFace:
    """Paste a render's head (its outline, the neck faded out) so its face is ``size`` px, turned ``roll``."""
    x0, y0, x1, y1 = render.face_box
    box_centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    side = RENDER_SIDE * (y1 - y0)
    k = size / side
    matrix = similarity(box_centre, centre, k, roll, mirror)
    image = render.image
    if k < 0.5:  # anti-alias like a real long shot
        image = cv2.GaussianBlur(image, (0, 0), 0.3 / k)
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(np.float32)
    ex = (xx + 0.5 - box_centre[0]) / (0.85 * (y1 - y0))
    ey = (yy + 0.5 - box_centre[1] + 0.05 * (y1 - y0)) / (1.1 * (y1 - y0))
    alpha_src = np.clip((1.0 - np.sqrt(ex * ex + ey * ey)) / 0.2, 0, 1).astype(np.float32)
    if PASTE_BY_MATTE:
        alpha_src *= render_matte(render.image)
    _composite(canvas, image, alpha_src, matrix, cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    box, right_c, left_c = _pasted_geometry(matrix, box_centre, side, render.right_eye, render.left_eye, mirror)
    # A head turned 67.5-90° shows its eyes (nearly) one behind the other: their line says nothing of the roll, which
    # is the paste's then (the turned views are rendered at roll 0).
    side_on = math.dist(render.right_eye, render.left_eye) < 0.2 * (y1 - y0)
    return TruthFace(box=box, right_eye=right_c, left_eye=left_c,
                     roll=float(wrap(roll)) if side_on else roll_of(right_c, left_c), size=size,
                     source=f"{render.identity}/{render.view}", mirrored=mirror,
                     yaw=-render.yaw if mirror else render.yaw)


def place_real(canvas: np.ndarray, face: RealFace, centre: tuple[float, float], size: float, roll: float,
               mirror: bool) -> TruthFace:
    """Paste an LFW crop (grey) so its face is ``size`` px, turned ``roll``, by a soft disc inside the crop (its corners
    hold the photo's background)."""
    crop = np.repeat(face.image[:, :, None], 3, axis=2)
    side = crop.shape[0]
    face_centre = (side / 2 + LFW_CENTRE[0] * side, side / 2 + LFW_CENTRE[1] * side)
    k = size / (LFW_SIDE * side)
    matrix = similarity(face_centre, centre, k, roll, mirror)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    radius = np.hypot(xx + 0.5 - side / 2, yy + 0.5 - side / 2) / (side / 2)
    alpha_src = np.clip((1.0 - radius) / 0.15, 0, 1).astype(np.float32)
    _composite(canvas, crop, alpha_src, matrix, cv2.INTER_LINEAR)
    right, left = ((x * side, y * side) for x, y in LFW_EYES)
    box, right_c, left_c = _pasted_geometry(matrix, face_centre, LFW_SIDE * side, right, left, mirror)
    return TruthFace(box=box, right_eye=right_c, left_eye=left_c, roll=roll_of(right_c, left_c), size=size,
                     source=face.name, mirrored=mirror)


def place_group(canvas: np.ndarray, face: GroupFace, centre: tuple[float, float], size: float, roll: float,
                mirror: bool) -> TruthFace:
    """Paste one face of the group photo (its head, through a soft ellipse) so it is ``size`` px, turned ``roll``."""
    return paste_photo(canvas, group_photo(), face.source, centre, size, roll, mirror, GROUP_ELLIPSE)


def _grey(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2))


def build(seed: int, count: int, renders: list[Render], photos: tuple[str, ...], sizes: tuple[int, ...] = SIZES,
          faces: tuple[int, int] = (4, 9), margin: float = 1.0, spacing: float = 1.7, reals: tuple[RealFace, ...] = (),
          grey: bool = False, group: tuple[GroupFace, ...] = (), packed: bool = False) -> list[Scene]:
    """``count`` scenes alternating 1440x1440 / 1280x720, 4-8 faces each from ``renders``, ``photos``, ``reals`` and
    ``group`` (faces of the group photo).

    ``sizes``, ``faces`` (a range: low, high exclusive), ``margin`` (from the border, in face sizes) and ``spacing``
    (between faces, in summed sizes) are the large part's; their defaults draw the scenes of every pass. ``grey``: the
    clutter is made grey before the faces are pasted (the real parts' LFW crops are grey). ``packed``: each face after
    the first is drawn beside one already placed, ``spacing`` to ``spacing`` + PACKED_REACH summed sizes from it (the
    crowd parts), not anywhere in the frame.
    """
    rng = np.random.default_rng(seed)
    scenes = []
    pool: list = ([("render", r) for r in renders] + [("photo", p) for p in photos] + [("real", f) for f in reals]
                  + [("group", f) for f in group])
    for i in range(count):
        width, height = SHAPES[i % len(SHAPES)]
        canvas = clutter(rng, width, height)
        if grey:
            canvas = _grey(canvas)
        placed: list[TruthFace] = []
        taken: list[tuple[float, float, float]] = []
        for _ in range(int(rng.integers(*faces))):
            size = float(rng.choice(sizes))
            roll = float(wrap(rng.uniform(0, 360)))
            edge = margin * size
            if 2 * edge >= min(width, height):
                continue
            for _attempt in range(200):
                if packed and taken:
                    ax, ay, ar = taken[int(rng.integers(len(taken)))]
                    angle, reach = rng.uniform(0, 2 * math.pi), rng.uniform(spacing, spacing + PACKED_REACH) * (size + ar)
                    cx, cy = ax + reach * math.cos(angle), ay + reach * math.sin(angle)
                    if not (edge <= cx <= width - edge and edge <= cy <= height - edge):
                        continue
                else:
                    cx, cy = float(rng.uniform(edge, width - edge)), float(rng.uniform(edge, height - edge))
                if all(math.hypot(cx - x, cy - y) > spacing * (size + r) for x, y, r in taken):
                    break
            else:
                continue
            kind, source = pool[int(rng.integers(len(pool)))]
            mirror = bool(rng.random() < 0.3)
            if kind == "render":
                placed.append(place_render(canvas, source, (cx, cy), size, roll, mirror))
            elif kind == "real":
                placed.append(place_real(canvas, source, (cx, cy), size, roll, mirror))
            elif kind == "group":
                placed.append(place_group(canvas, source, (cx, cy), size, roll, mirror))
            else:
                placed.append(place_face(canvas, source, (cx, cy), size, roll, mirror))
            taken.append((cx, cy, size))
        damage = DAMAGE[i % len(DAMAGE)]
        image = degrade(canvas, damage, rng)
        image = _grey(image) if grey else image  # a grey photo's noise and JPEG blocks are grey too
        scenes.append(Scene(image, placed, damage, [ours.sharpness(image, t.centre, t.size, t.roll) for t in placed]))
    return scenes


def face_free(seed: int, count: int) -> list[Scene]:
    """``count`` scenes like ``build``'s with no face pasted: every result is a false positive.

    The false-positive goal counts images, and the face scenes hold one such image in 30-60; face-free
    clutter measures it on hundreds of images without looking at anybody's face (no part is used).
    """
    return [Scene(image, []) for image in groundtruth.face_free(seed, count, SHAPES, DAMAGE)]


def size_bucket(size: float):
    return next(((lo, hi) for lo, hi in SIZE_BUCKETS if lo - 0.5 <= size <= hi + 0.5), None)


def roll_bucket(roll: float):
    r = abs(wrap(roll))
    return next(((lo, hi) for lo, hi in ROLL_BUCKETS if lo <= r <= hi), ROLL_BUCKETS[-1])


def matches(truth: TruthFace, found: Found) -> bool:
    d = math.hypot(truth.centre[0] - found.centre[0], truth.centre[1] - found.centre[1])
    return d < 0.5 * truth.size and 0.6 < found.size / truth.size < 1.6


def found_face(face) -> Found:
    """A face our search reported, as the benchmark scores it."""
    return Found(face.centre, face.size, face.roll, face.yaw, face.landmarks is not None)


def score(tally: Tally, scene: Scene, found: list[Found], index: int) -> None:
    used: set[int] = set()
    tally.images += 1
    for number, truth in enumerate(scene.faces):
        hit = next((i for i, f in enumerate(found) if i not in used and matches(truth, f)), None)
        if hit is not None:
            used.add(hit)
            if truth.size >= 32:
                tally.roll_errors.append(abs(wrap(found[hit].roll - truth.roll)))
            if truth.yaw is not None and found[hit].yaw is not None:
                kind = "mesh fit" if found[hit].fitted else "no fit"
                tally.yaw_errors.setdefault(kind, []).append(abs(found[hit].yaw - truth.yaw))
        else:
            tally.misses.append((index, truth.source, round(truth.size), round(truth.roll),
                                 tuple(round(v) for v in truth.centre)))
        bucket = size_bucket(truth.size)
        if bucket:
            tally.add(tally.hits, bucket, hit is not None)
        if truth.size >= 32:
            tally.add(tally.roll_hits, roll_bucket(truth.roll), hit is not None)
        elif bucket == SIZE_BUCKETS[0]:
            tally.add(tally.small_roll_hits, roll_bucket(truth.roll), hit is not None)
        if bucket is not None and scene.damage:
            kind = "24" if bucket == SIZE_BUCKETS[0] else "≥32"
            tally.add(tally.damage_hits, (scene.damage, kind), hit is not None)
            if scene.sharpness[number] >= SHARP_ENOUGH:
                tally.add(tally.sharp_hits, kind, hit is not None)
            tally.add(tally.ancestry_hits, (ancestry(truth.source.split("/")[0]), kind), hit is not None)
    tally.false_positives += len(found) - len(used)
    for i, f in enumerate(found):
        if i in used:
            continue
        near = min(scene.faces, key=lambda t: math.dist(t.centre, f.centre), default=None)
        tally.false_positive_list.append(
            (index, tuple(round(v) for v in f.centre), round(f.size), round(f.roll),
             None if near is None else (round(math.dist(near.centre, f.centre)), round(near.size))))


class FacePopBaseline:
    """What FacePop does: mediapipe full-range once on the image and on its 90/180/270° rotations."""

    def __init__(self, confidence: float = 0.5):
        from mediapipe.python.solutions import face_detection  # the baseline's own graph, as FacePop builds it

        self.detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=confidence)

    def __call__(self, image: np.ndarray) -> tuple[list[Found], int]:
        h, w = image.shape[:2]
        raw: list[ours.Candidate] = []
        for k in range(4):
            rotated = np.ascontiguousarray(np.rot90(image, k))
            result = self.detector.process(rotated)
            back = ours.rot90_back(k, w, h)
            rh, rw = rotated.shape[:2]
            raw.extend(ours._parse(d, back, rw, rh, 90 * k) for d in blazeface.from_mediapipe(result))
        found = [Found(tuple(c.centre), c.side * 1.12, roll_of(tuple(c.keypoints[0]), tuple(c.keypoints[1])))
                 for c in ours.merge(raw)]
        return found, 4


def percent(row) -> str:
    return f"{100 * row[0] / row[1]:5.1f} % ({row[0]}/{row[1]})" if row and row[1] else "-"


def report(tally: Tally) -> dict[str, str]:
    out = {}
    for bucket in SIZE_BUCKETS:
        label = f"recall {bucket[0]} px" if bucket[0] == bucket[1] else f"recall {bucket[0]}-{bucket[1]} px"
        out[label] = percent(tally.hits.get(bucket))
    above = [sum(v) for v in zip(*[tally.hits.get(b, [0, 0]) for b in SIZE_BUCKETS[1:]], strict=True)]
    out["recall ≥32 px, all rolls"] = percent(above)
    for bucket in ROLL_BUCKETS:
        out[f"recall ≥32 px, roll ±{bucket[0]}-{bucket[1]}°"] = percent(tally.roll_hits.get(bucket))
    for bucket in ROLL_BUCKETS:
        out[f"recall 24 px, roll ±{bucket[0]}-{bucket[1]}°"] = percent(tally.small_roll_hits.get(bucket))
    for kind in ("24", "≥32"):
        for damage in DAMAGE:
            out[f"recall {kind} px, damage {damage}"] = percent(tally.damage_hits.get((damage, kind)))
        out[f"recall {kind} px, sharp enough to work on (≥ {SHARP_ENOUGH:g})"] = percent(tally.sharp_hits.get(kind))
        for group in ANCESTRIES:
            out[f"recall {kind} px, ancestry {group}"] = percent(tally.ancestry_hits.get((group, kind)))
    out["false positives / 100 images"] = f"{100 * tally.false_positives / max(tally.images, 1):.1f}"
    errors = np.array(tally.roll_errors or [float("nan")])
    out["roll error median / p95 (≥32 px)"] = f"{np.median(errors):.1f}° / {np.percentile(errors, 95):.1f}°"
    for kind in ("mesh fit", "no fit"):  # rendered heads only: a photo's yaw is not known
        errors = np.array(tally.yaw_errors.get(kind) or [float("nan")])
        out[f"yaw error median / p95 / faces ({kind})"] = (
            f"{np.median(errors):.1f}° / {np.percentile(errors, 95):.1f}° / {len(tally.yaw_errors.get(kind, []))}")
    for shape in SHAPES:
        ms, cpu = tally.ms.get(shape), tally.cpu_ms.get(shape)
        if ms:
            out[f"{shape[0]}x{shape[1]}: wall ms / CPU ms / CPU ms÷2"] = (
                f"{np.mean(ms):.0f} / {np.mean(cpu):.0f} / {np.mean(cpu) / 2:.0f}")
    out["detector calls per image"] = f"{np.mean(tally.calls):.0f}"
    return out


def sequence(seed: int, frames: int, renders: list[Render]) -> tuple[list[np.ndarray], list[list[TruthFace]]]:
    """A 1280x720 clip: 3 held-out faces (40-90 px) drifting and turning over a still cluttered background."""
    rng = np.random.default_rng(seed)
    base = clutter(rng, 1280, 720)
    tracks = []
    for i in range(3):
        tracks.append(dict(render=renders[int(rng.integers(len(renders)))], size=float((32, 64, 96)[i]),
                           start=np.array([250.0 + 380 * i, 360.0]), velocity=rng.uniform(-4, 4, 2),
                           roll=float(rng.uniform(-180, 180)), spin=float(rng.uniform(-3, 3))))
    images, truths = [], []
    for t in range(frames):
        canvas = base.copy()
        truth = []
        for tr in tracks:
            centre = tr["start"] + t * tr["velocity"]
            truth.append(place_render(canvas, tr["render"], (float(centre[0]), float(centre[1])), tr["size"],
                                      float(wrap(tr["roll"] + t * tr["spin"])), False))
        images.append(degrade(canvas, "noise", rng))
        truths.append(truth)
    return images, truths


def cold_start() -> dict[str, float]:
    """Imports and model load in a fresh process (seconds)."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np\n"
        "from bump_backend.faces import FaceFinderSettings, blazeface, find_faces, runtime\n"
        "t1 = time.perf_counter()\n"
        "blazeface.load(); runtime.face_mesh()  # as the CLI loads them\n"
        "t2 = time.perf_counter()\n"
        "noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)\n"
        "find_faces(noise, settings=FaceFinderSettings(workers=1))\n"
        "t3 = time.perf_counter()\n"
        "import json; print(json.dumps({'imports': t1 - t0, 'model load': t2 - t1, 'first call': t3 - t2}))\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "GLOG_minloglevel": "2"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["process total"] = time.perf_counter() - start
    return figures


# The changes of issue 17's second cost pass, each behind a switch: all off, the search is the one before them
# ("before cost cuts": every contender's full-range roll tries in turn, a second opinion for every face, no drop
# of unseen proposals, every workers-th item per worker, 640 px windows, a mesh vouching for blurry faces too).
# Only the flat-tile check (same answer, OpenCV instead of numpy) is not switched.
COST_CUTS = ((ours, "ROUND_ROBIN_TRIES"), (ours, "DROP_UNSEEN"), (ours, "BALANCED"), (ours, "TIGHT_WINDOWS"),
             (finder, "SKIP_DECISIVE"), (finder, "VOUCH_NEEDS_SHARPNESS"))


# Issue 17's third cost pass, each behind a switch: all off, the search is main's path before it (the full-range
# model through mediapipe's graph, the finest level's windows overlapping by a whole tile).
THIRD_PASS = ((blazeface, "FULL_RANGE_LITERT"), (ours, "TIGHT_FINEST"))


# Issue 17's fourth pass: a re-check floor of 0.6 (was 0.5), a setting; no full-range opinion under the floor,
# bilinear full-range crops, no full-range opinion that could not change the re-check's pick, switches. "Before the
# fourth pass" is main's path before it: the switches off and the setting of then.
FOURTH_PASS = ((ours, "OPINIONS_ABOVE_FLOOR", False), (ours, "FULL_RANGE_INTERPOLATION", cv2.INTER_CUBIC),
               (ours, "BOUNDED_OPINIONS", False))
BEFORE_FOURTH_SETTINGS = {"recheck_floor": 0.5}


# Issue 17's fifth pass: a mesh fit must be seen on its own crop, a mesh-vouched face by the full-range model as is or
# mirrored, a moderate agreement mirrored too. "Before the fifth pass" is main's path before it.
FIFTH_PASS = ((finder, "MESH_NEEDS_RECHECK", False), (finder, "VOUCH_NEEDS_SIGHT", False),
              (finder, "MIRROR_CHECK", False))
BEFORE_FIFTH_SETTINGS: dict = {}

# Issue 17's sixth pass: a vouched face's sight asked on the mesh's own crop; the mirror check's short-range floor.
# "Before the sixth pass" is main's path before it.
SIXTH_PASS = ((finder, "VOUCH_SIGHT_AT_MESH", False), (finder, "MIRROR_FLOOR", ours.RECHECK_THRESHOLD))
BEFORE_SIXTH_SETTINGS: dict = {}
# Issue 17's seventh pass: a cluster whose crop reads nothing is re-checked at its smallest member's size.
SEVENTH_PASS = ((ours, "SMALLER_MEMBER", False),)
BEFORE_SEVENTH_SETTINGS: dict = {}
# Issue 17's eighth pass: MTCNN's R-Net and O-Net take a second look at weak proposals (detect.rescued).
EIGHTH_PASS = ((ours, "RESCUE", False),)
BEFORE_EIGHTH_SETTINGS: dict = {}
# Issue 17's ninth pass: O-Net vouches for a face the mesh did not fit that scores under the no-mesh bar
# (finder.O_NET_VOUCH).
NINTH_PASS = ((finder, "O_NET_VOUCH", False),)
BEFORE_NINTH_SETTINGS: dict = {}
# Issue 17's tenth pass: a face refined upside down and refused is refined again the other way up
# (finder.FLIP_CHECK).
TENTH_PASS = ((finder, "FLIP_CHECK", False),)
BEFORE_TENTH_SETTINGS: dict = {}
# Issue 17's eleventh pass: a re-check's turn reading under the floor does not contend for the pick
# (detect.PICK_ABOVE_FLOOR); a face the mesh does not fit keeps its reading's roll (finder.SNAP_GUESSED_EYES).
ELEVENTH_PASS = ((ours, "PICK_ABOVE_FLOOR", False), (finder, "SNAP_GUESSED_EYES", True))
BEFORE_ELEVENTH_SETTINGS: dict = {}
# Issue 17's twelfth pass: MTCNN's R-Net and O-Net run through LiteRT (mtcnn.LITERT; numpy before), the weighted
# suppression's faster loop (blazeface.SUPPRESSION_BY_CORNERS), and the faint window proposals' second look
# (detect.RESCUE_FAINT).
TWELFTH_PASS = ((mtcnn, "LITERT", False), (blazeface, "SUPPRESSION_BY_CORNERS", False), (ours, "RESCUE_FAINT", None))
BEFORE_TWELFTH_SETTINGS: dict = {}
# Issue 17's thirteenth pass: a face the mesh did not fit takes its yaw from the nose and eyes (finder.YAW_FROM_NOSE;
# the ear points before); a side-on reading's roll from the mouth to the eyes (detect.SIDE_ON_ROLL; the eye line before);
# O-Net's word on a side-on head the full-range model does not see (finder.SIDE_ON_VOUCH).
THIRTEENTH_PASS = ((finder, "YAW_FROM_NOSE", False), (ours, "SIDE_ON_ROLL", False), (finder, "SIDE_ON_VOUCH", False))
BEFORE_THIRTEENTH_SETTINGS: dict = {}
# Issue 17's fourteenth pass: a refused side-on face is read by O-Net on the squares around its own, and by the
# short-range model on the best of them (finder.SIDE_ON_SEARCH).
FOURTEENTH_PASS = ((finder, "SIDE_ON_SEARCH", False),)
BEFORE_FOURTEENTH_SETTINGS: dict = {}
# Issue 17's fifteenth pass: MTCNN's P-Net proposes small faces from the image at half scale (detect.SMALL_FACES).
FIFTEENTH_PASS = ((ours, "SMALL_FACES", False),)
BEFORE_FIFTEENTH_SETTINGS: dict = {}
# Issue 17's sixteenth pass: a much larger cluster no longer keeps a weak proposal from the second look; a refused face is
# refined again at the quarter turn O-Net reads best (detect.RESCUE_BLOCK_RATIO, finder.QUARTER_CHECK).
SIXTEENTH_PASS = ((ours, "RESCUE_BLOCK_RATIO", None), (finder, "QUARTER_CHECK", False))
BEFORE_SIXTEENTH_SETTINGS: dict = {}
# Issue 17's seventeenth pass: the second look's and P-Net's candidates start from the roll O-Net's landmark points give,
# not from a quarter turn (detect.LANDMARK_ROLL); the quarter check turns a refused face to that roll and keeps it there
# without a mesh fit too (finder.QUARTER_LANDMARKS, finder.QUARTER_NO_MESH).
SEVENTEENTH_PASS = ((ours, "LANDMARK_ROLL", False), (finder, "QUARTER_LANDMARKS", False),
                    (finder, "QUARTER_NO_MESH", False))
BEFORE_SEVENTEENTH_SETTINGS: dict = {}
# Issue 17's eighteenth pass: a refined face the full-range model does not see is read by the back-camera model too,
# where the short-range model reads it at finder.BACK_SHORT and its yaw is finder.BACK_YAW (finder.BACK_OPINION), and a
# re-check reading that model saw at no turn is kept for refinement where the back-camera model sees it
# (finder.BACK_KEEPS_UNSEEN).
EIGHTEENTH_PASS = ((finder, "BACK_OPINION", False), (finder, "BACK_KEEPS_UNSEEN", False))
BEFORE_EIGHTEENTH_SETTINGS: dict = {}
# Issue 17's nineteenth pass: a mesh-fitted face kept at a final score under finder.YUNET_BELOW is dropped where YuNet,
# read upright at its roll, sees no face (finder.YUNET_CHECK); a refused face the mesh does not fit is kept where YuNet
# reads it at finder.YUNET_VOUCHES (finder.YUNET_VOUCH).
NINETEENTH_PASS = ((finder, "YUNET_CHECK", False), (finder, "YUNET_VOUCH", False))
BEFORE_NINETEENTH_SETTINGS: dict = {}
# Issue 17's twentieth pass: P-Net reads the image upside down too for small faces (detect.SMALL_TURNS).
TWENTIETH_PASS = ((ours, "SMALL_TURNS", (0,)),)
BEFORE_TWENTIETH_SETTINGS: dict = {}
# Issue 17's twenty-first pass: a cluster whose re-check saw no face no longer keeps the weak proposals near it from the
# second look (detect.RESCUE_WHERE_UNSEEN).
TWENTY_FIRST_PASS = ((ours, "RESCUE_WHERE_UNSEEN", False),)
BEFORE_TWENTY_FIRST_SETTINGS: dict = {}
# Issue 17's twenty-second pass: a re-check reading a little under the floor is kept where YuNet and the full-range or
# back-camera model see the face on its square (detect.UNDER_FLOOR, finder.UNDER_FLOOR), and so is a refused one of
# up to 96 px (finder.REFUSED_AGREE).
TWENTY_SECOND_PASS = ((ours, "UNDER_FLOOR", False), (finder, "REFUSED_AGREE", False))
BEFORE_TWENTY_SECOND_SETTINGS: dict = {}
# Issue 17's twenty-third pass: work that waits on nothing starts before the pool would idle (detect.OVERLAPPED): P-Net
# queued behind the windows, the second look where a re-check saw nothing beside the weak proposals' re-checks,
# refinement's likeliest refusals first. The same faces; wall time only.
TWENTY_THIRD_PASS = ((ours, "OVERLAPPED", False),)
BEFORE_TWENTY_THIRD_SETTINGS: dict = {}
# Issue 17's twenty-fourth pass: the second look's re-checks are queued as soon as their candidates are known
# (detect.STREAMED). The same faces; wall time only. (Its quarter turns by OpenCV and footprints on plain floats give
# the same pixels and are not switchable: every path runs them.)
TWENTY_FOURTH_PASS = ((ours, "STREAMED", False),)
BEFORE_TWENTY_FOURTH_SETTINGS: dict = {}
# Issue 17's twenty-fifth pass: R-Net reads the second look's and P-Net's squares between the quarter turns too where
# none of those reads them surely (detect.R_NET_OFFSETS), and O-Net reads a square it refuses at its turn half a turn
# on and at R-Net's box-regressed square (detect.ONET_RETRY).
TWENTY_FIFTH_PASS = ((ours, "R_NET_OFFSETS", (0.0,)), (ours, "ONET_RETRY", False))
BEFORE_TWENTY_FIFTH_SETTINGS: dict = {}
# Issue 17's twenty-sixth pass: P-Net reads the quarter turns it skips on small crops around its peaks that stir
# (detect.SMALL_STIR).
TWENTY_SIXTH_PASS = ((ours, "SMALL_STIR", None),)
BEFORE_TWENTY_SIXTH_SETTINGS: dict = {}
# Issue 17's twenty-seventh pass: a candidate refused after every retry is refined again at the roll YuNet reads it best
# at (finder.ROLL_SEARCH).
TWENTY_SEVENTH_PASS = ((finder, "ROLL_SEARCH", False),)
BEFORE_TWENTY_SEVENTH_SETTINGS: dict = {}
# Issue 17's twenty-eighth pass: O-Net reads a small square it refuses at its turn once more at the roll of its own eye
# points there (detect.ONET_EYE_RETRY), and a re-check reading stands for a P-Net candidate up to 1.3x its side
# (detect.SMALL_WIDEST).
TWENTY_EIGHTH_PASS = ((ours, "ONET_EYE_RETRY", False), (ours, "SMALL_WIDEST", None))
BEFORE_TWENTY_EIGHTH_SETTINGS: dict = {}
# Issue 17's twenty-ninth pass: a small face the mesh did not fit, reported well over its size, takes the box the
# short-range model reads on a crop made for a smaller face (finder.ZOOM_CHECK).
TWENTY_NINTH_PASS = ((finder, "ZOOM_CHECK", False),)
BEFORE_TWENTY_NINTH_SETTINGS: dict = {}
# Issue 17's thirtieth pass: a face of up to finder.MESH_O_NET_MAX_SIZE the mesh fitted, refused because the full-range
# model does not see it, is kept where O-Net reads it at finder.MESH_O_NET_VOUCHES and YuNet sees it (finder.MESH_O_NET);
# O-Net's read around a side-on head's square keeps heads of up to finder.SIDE_ON_SEARCH_MAX_SIDE only.
THIRTIETH_PASS = ((finder, "MESH_O_NET", False), (finder, "SIDE_ON_SEARCH_MAX_SIDE", None))
BEFORE_THIRTIETH_SETTINGS: dict = {}
# Issue 17's thirty-first pass: P-Net's small faces the short-range re-check reads no face on are handed on under the
# floor, for YuNet and the full-range model to judge (detect.SMALL_UNSEEN); O-Net reads a small square it refuses at
# the quarter turns beside R-Net's too (detect.ONET_RETRY_QUARTERS).
THIRTY_FIRST_PASS = ((ours, "SMALL_UNSEEN", False), (ours, "ONET_RETRY_QUARTERS", False))
BEFORE_THIRTY_FIRST_SETTINGS: dict = {}
# Issue 17's thirty-second pass: the zoomed re-read of a face the mesh did not fit (finder.ZOOM_CHECK) reaches faces
# reported at up to 96 px (finder.ZOOM_MAX_SIZE; 64 before), and YuNet's roll search (finder.ROLL_SEARCH) candidates of
# any size (finder.ROLL_SEARCH_MAX_SIDE; 96 px before).
THIRTY_SECOND_PASS = ((finder, "ZOOM_MAX_SIZE", 64.0), (finder, "ROLL_SEARCH_MAX_SIDE", ours.UNDER_FLOOR_MAX_SIDE))
BEFORE_THIRTY_SECOND_SETTINGS: dict = {}
# Issue 17's thirty-third pass: a refused face of 96 px and more that the mesh did not fit is kept where YuNet and the
# back-camera model both see it on its square (finder.LARGE_AGREE); P-Net's peaks from 0.5 up (0.7 before) are read at
# the quarter turns it skips (detect.SMALL_STIR).
THIRTY_THIRD_PASS = ((finder, "LARGE_AGREE", False), (ours, "SMALL_STIR", 0.7))
BEFORE_THIRTY_THIRD_SETTINGS: dict = {}
# Issue 17's thirty-fourth pass: a re-check reading more than twice a P-Net face's side does not keep it from the
# re-check (detect.SMALL_BLOCK_RATIO; any reading did before), and a P-Net face kept from it by a reading that refinement
# refuses is refined in its place (detect.SMALL_FALLBACK).
THIRTY_FOURTH_PASS = ((ours, "SMALL_BLOCK_RATIO", None), (ours, "SMALL_FALLBACK", False))
BEFORE_THIRTY_FOURTH_SETTINGS: dict = {}
# Issue 17's thirty-fifth pass: a square O-Net refuses is read again a sixth of its side off and at 1.25x its side
# (detect.ONET_SHIFT_STEP).
THIRTY_FIFTH_PASS = ((ours, "ONET_SHIFT_STEP", None),)
BEFORE_THIRTY_FIFTH_SETTINGS: dict = {}
# Issue 17's thirty-sixth pass: a reading keeps a P-Net face from the re-check by the side of P-Net's own square, not
# of the one O-Net's retries grew it to (detect.SMALL_BLOCK_OWN).
THIRTY_SIXTH_PASS = ((ours, "SMALL_BLOCK_OWN", False),)
BEFORE_THIRTY_SIXTH_SETTINGS: dict = {}
# Issue 17's thirty-seventh pass: a P-Net face the re-check read nothing on is read by YuNet 10° and 20° either way of
# O-Net's roll too (finder.UNSEEN_ROLL_TRIES); one kept at a roll so turned yields to any other face accepted at its
# place (finder.TURNED_YIELDS).
THIRTY_SEVENTH_PASS = ((finder, "UNSEEN_ROLL_TRIES", ()), (finder, "TURNED_YIELDS", False))
BEFORE_THIRTY_SEVENTH_SETTINGS: dict = {}
# Issue 17's thirty-eighth pass: P-Net's peaks from detect.SMALL_NEAR_P up to SMALL_P that R-Net reads 0.9 at a quarter
# turn go on to O-Net, and their faces yield to any other face at their place (finder.NEAR_YIELDS); YuNet reads P-Net's
# unseen faces 30° either way of O-Net's roll too (finder.UNSEEN_ROLL_TRIES).
THIRTY_EIGHTH_PASS = ((ours, "SMALL_NEAR_P", None), (finder, "NEAR_YIELDS", False),
                      (finder, "UNSEEN_ROLL_TRIES", (-20.0, -10.0, 10.0, 20.0)))
BEFORE_THIRTY_EIGHTH_SETTINGS: dict = {}
# Issue 17's thirty-ninth pass: a face the mesh did not fit takes YuNet's square where YuNet reads it and it is well under
# the face's size (finder.YUNET_SIZE).
THIRTY_NINTH_PASS = ((finder, "YUNET_SIZE", False),)
BEFORE_THIRTY_NINTH_SETTINGS: dict = {}
# Issue 17's fortieth pass: where two refined faces land on one face, the one the mesh fitted is kept before the higher
# score (finder.FITTED_FIRST).
FORTIETH_PASS = ((finder, "FITTED_FIRST", False),)
BEFORE_FORTIETH_SETTINGS: dict = {}
# Issue 17's forty-first pass: a weak proposal over the second look's bound gets it through its best member within the
# bound (detect.RESCUE_MEMBERS).
FORTY_FIRST_PASS = ((ours, "RESCUE_MEMBERS", False),)
BEFORE_FORTY_FIRST_SETTINGS: dict = {}
# Issue 17's forty-second pass: a face the mesh did not fit takes the square YuNet reads around it where that is well
# over its size (finder.YUNET_GROW).
FORTY_SECOND_PASS = ((finder, "YUNET_GROW", None),)
BEFORE_FORTY_SECOND_SETTINGS: dict = {}
# Issue 17's forty-third pass: a soft candidate the re-check read under the floor is re-checked once more as a larger
# face (detect.LARGER_RETRY).
FORTY_THIRD_PASS = ((ours, "LARGER_RETRY", False),)
BEFORE_FORTY_THIRD_SETTINGS: dict = {}
# Issue 17's forty-fourth pass: what the larger retry's reading pushed out is tried where that reading is refused
# (detect.LARGER_RETRY_YIELDS).
FORTY_FOURTH_PASS = ((ours, "LARGER_RETRY_YIELDS", False),)
BEFORE_FORTY_FOURTH_SETTINGS: dict = {}
# Issue 17's forty-fifth pass: P-Net's peaks from 0.4 up to SMALL_STIR are stirred too, what they stir kept where O-Net
# reads 0.95 (detect.SMALL_FAINT).
FORTY_FIFTH_PASS = ((ours, "SMALL_FAINT", None),)
BEFORE_FORTY_FIFTH_SETTINGS: dict = {}
# Issue 17's forty-sixth pass: P-Net's stirring peaks are read at the eighth turns too (detect.SMALL_DIAGONAL), and a
# P-Net face whose own re-check reading turned from O-Net's roll is tried at that roll where the reading is refused
# (detect.SMALL_OWN_FALLBACK).
FORTY_SIXTH_PASS = ((ours, "SMALL_DIAGONAL", False), (ours, "SMALL_OWN_FALLBACK", None))
BEFORE_FORTY_SIXTH_SETTINGS: dict = {}
# Issue 17's forty-seventh pass: O-Net's word on a side-on head counts only where YuNet sees it too
# (finder.SIDE_ON_YUNET), and a face without a mesh fit kept on the two BlazeFace models' agreement alone only where
# YuNet or the back-camera model sees it (finder.AGREED_THIRD).
FORTY_SEVENTH_PASS = ((finder, "SIDE_ON_YUNET", None), (finder, "AGREED_THIRD", None))
BEFORE_FORTY_SEVENTH_SETTINGS: dict = {}

# Every pass a path can switch back, newest first: its switches, the settings before it, and its number (run_ours
# switches back those over a path's count; the newest number is every pass's).
LATER_PASSES = (
    (FORTY_SEVENTH_PASS, BEFORE_FORTY_SEVENTH_SETTINGS, 47),
    (FORTY_SIXTH_PASS, BEFORE_FORTY_SIXTH_SETTINGS, 46),
    (FORTY_FIFTH_PASS, BEFORE_FORTY_FIFTH_SETTINGS, 45),
    (FORTY_FOURTH_PASS, BEFORE_FORTY_FOURTH_SETTINGS, 44),
    (FORTY_THIRD_PASS, BEFORE_FORTY_THIRD_SETTINGS, 43),
    (FORTY_SECOND_PASS, BEFORE_FORTY_SECOND_SETTINGS, 42),
    (FORTY_FIRST_PASS, BEFORE_FORTY_FIRST_SETTINGS, 41),
    (FORTIETH_PASS, BEFORE_FORTIETH_SETTINGS, 40),
    (THIRTY_NINTH_PASS, BEFORE_THIRTY_NINTH_SETTINGS, 39),
    (THIRTY_EIGHTH_PASS, BEFORE_THIRTY_EIGHTH_SETTINGS, 38),
    (THIRTY_SEVENTH_PASS, BEFORE_THIRTY_SEVENTH_SETTINGS, 37),
    (THIRTY_SIXTH_PASS, BEFORE_THIRTY_SIXTH_SETTINGS, 36),
    (THIRTY_FIFTH_PASS, BEFORE_THIRTY_FIFTH_SETTINGS, 35),
    (THIRTY_FOURTH_PASS, BEFORE_THIRTY_FOURTH_SETTINGS, 34),
    (THIRTY_THIRD_PASS, BEFORE_THIRTY_THIRD_SETTINGS, 33),
    (THIRTY_SECOND_PASS, BEFORE_THIRTY_SECOND_SETTINGS, 32),
    (THIRTY_FIRST_PASS, BEFORE_THIRTY_FIRST_SETTINGS, 31),
    (THIRTIETH_PASS, BEFORE_THIRTIETH_SETTINGS, 30),
    (TWENTY_NINTH_PASS, BEFORE_TWENTY_NINTH_SETTINGS, 29),
    (TWENTY_EIGHTH_PASS, BEFORE_TWENTY_EIGHTH_SETTINGS, 28),
    (TWENTY_SEVENTH_PASS, BEFORE_TWENTY_SEVENTH_SETTINGS, 27),
    (TWENTY_SIXTH_PASS, BEFORE_TWENTY_SIXTH_SETTINGS, 26),
    (TWENTY_FIFTH_PASS, BEFORE_TWENTY_FIFTH_SETTINGS, 25),
    (TWENTY_FOURTH_PASS, BEFORE_TWENTY_FOURTH_SETTINGS, 24),
    (TWENTY_THIRD_PASS, BEFORE_TWENTY_THIRD_SETTINGS, 23),
    (TWENTY_SECOND_PASS, BEFORE_TWENTY_SECOND_SETTINGS, 22),
    (TWENTY_FIRST_PASS, BEFORE_TWENTY_FIRST_SETTINGS, 21),
    (TWENTIETH_PASS, BEFORE_TWENTIETH_SETTINGS, 20),
    (NINETEENTH_PASS, BEFORE_NINETEENTH_SETTINGS, 19),
    (EIGHTEENTH_PASS, BEFORE_EIGHTEENTH_SETTINGS, 18),
    (SEVENTEENTH_PASS, BEFORE_SEVENTEENTH_SETTINGS, 17),
    (SIXTEENTH_PASS, BEFORE_SIXTEENTH_SETTINGS, 16),
    (FIFTEENTH_PASS, BEFORE_FIFTEENTH_SETTINGS, 15),
    (FOURTEENTH_PASS, BEFORE_FOURTEENTH_SETTINGS, 14),
    (THIRTEENTH_PASS, BEFORE_THIRTEENTH_SETTINGS, 13),
    (TWELFTH_PASS, BEFORE_TWELFTH_SETTINGS, 12),
    (ELEVENTH_PASS, BEFORE_ELEVENTH_SETTINGS, 11),
    (TENTH_PASS, BEFORE_TENTH_SETTINGS, 10),
    (NINTH_PASS, BEFORE_NINTH_SETTINGS, 9),
    (EIGHTH_PASS, BEFORE_EIGHTH_SETTINGS, 8),
    (SEVENTH_PASS, BEFORE_SEVENTH_SETTINGS, 7),
    (SIXTH_PASS, BEFORE_SIXTH_SETTINGS, 6),
    (FIFTH_PASS, BEFORE_FIFTH_SETTINGS, 5),
    (FOURTH_PASS, BEFORE_FOURTH_SETTINGS, 4),
)
ALL_PASSES = LATER_PASSES[0][2]

# The paths the benchmark can run beside ours, by flag: the path's name, how many passes it keeps (before the cost cuts:
# none of COST_CUTS, THIRD_PASS, FOURTH_PASS, FIFTH_PASS, SIXTH_PASS, SEVENTH_PASS, EIGHTH_PASS, NINTH_PASS, TENTH_PASS,
# ELEVENTH_PASS, TWELFTH_PASS, THIRTEENTH_PASS, FOURTEENTH_PASS, FIFTEENTH_PASS, SIXTEENTH_PASS, SEVENTEENTH_PASS,
# EIGHTEENTH_PASS, NINETEENTH_PASS, TWENTIETH_PASS, TWENTY_FIRST_PASS, TWENTY_SECOND_PASS, TWENTY_THIRD_PASS,
# TWENTY_FOURTH_PASS, TWENTY_FIFTH_PASS, TWENTY_SIXTH_PASS, TWENTY_SEVENTH_PASS, TWENTY_EIGHTH_PASS,
# TWENTY_NINTH_PASS, THIRTIETH_PASS, THIRTY_FIRST_PASS, THIRTY_SECOND_PASS, THIRTY_THIRD_PASS, THIRTY_FOURTH_PASS,
# THIRTY_FIFTH_PASS, THIRTY_SIXTH_PASS, THIRTY_SEVENTH_PASS, THIRTY_EIGHTH_PASS, THIRTY_NINTH_PASS,
# FORTIETH_PASS, FORTY_FIRST_PASS, FORTY_SECOND_PASS, FORTY_THIRD_PASS, FORTY_FOURTH_PASS, FORTY_FIFTH_PASS,
# FORTY_SIXTH_PASS, FORTY_SEVENTH_PASS; then one more each), the settings it changes on top of the run's, and what it is
# (the flag's help). 47: all.
SIDE_PATHS = {
    "before-cuts": ("ours, before cost cuts", 1, {}, "the search without the cost cuts (COST_CUTS: the path before them)"),
    "before-third": ("ours, before third pass", 2, {},
                     "the search without the third cost pass (THIRD_PASS: main's path before it)"),
    "before-fourth": ("ours, before fourth pass", 3, {}, "the search before the fourth pass (FOURTH_PASS, "
                      "BEFORE_FOURTH_SETTINGS)"),
    "before-fifth": ("ours, before fifth pass", 4, {}, "the search before the fifth pass (FIFTH_PASS, BEFORE_FIFTH_SETTINGS)"),
    "before-sixth": ("ours, before sixth pass", 5, {}, "the search before the sixth pass (SIXTH_PASS)"),
    "before-seventh": ("ours, before seventh pass", 6, {}, "the search before the seventh pass (SEVENTH_PASS)"),
    "before-eighth": ("ours, before eighth pass", 7, {}, "the search before the eighth pass (EIGHTH_PASS)"),
    "before-ninth": ("ours, before ninth pass", 8, {}, "the search before the ninth pass (NINTH_PASS)"),
    "before-tenth": ("ours, before tenth pass", 9, {}, "the search before the tenth pass (TENTH_PASS)"),
    "before-eleventh": ("ours, before eleventh pass", 10, {}, "the search before the eleventh pass (ELEVENTH_PASS)"),
    "before-twelfth": ("ours, before twelfth pass", 11, {}, "the search before the twelfth pass (TWELFTH_PASS)"),
    "before-thirteenth": ("ours, before thirteenth pass", 12, {},
                          "the search before the thirteenth pass (THIRTEENTH_PASS)"),
    "before-fourteenth": ("ours, before fourteenth pass", 13, {},
                          "the search before the fourteenth pass (FOURTEENTH_PASS)"),
    "before-fifteenth": ("ours, before fifteenth pass", 14, {},
                         "the search before the fifteenth pass (FIFTEENTH_PASS)"),
    "before-sixteenth": ("ours, before sixteenth pass", 15, {},
                         "the search before the sixteenth pass (SIXTEENTH_PASS)"),
    "before-seventeenth": ("ours, before seventeenth pass", 16, {},
                           "the search before the seventeenth pass (SEVENTEENTH_PASS)"),
    "before-eighteenth": ("ours, before eighteenth pass", 17, {},
                          "the search before the eighteenth pass (EIGHTEENTH_PASS)"),
    "before-nineteenth": ("ours, before nineteenth pass", 18, {},
                          "the search before the nineteenth pass (NINETEENTH_PASS)"),
    "before-twentieth": ("ours, before twentieth pass", 19, {},
                         "the search before the twentieth pass (TWENTIETH_PASS)"),
    "before-twenty-first": ("ours, before twenty-first pass", 20, {},
                            "the search before the twenty-first pass (TWENTY_FIRST_PASS)"),
    "before-twenty-second": ("ours, before twenty-second pass", 21, {},
                             "the search before the twenty-second pass (TWENTY_SECOND_PASS)"),
    "before-twenty-third": ("ours, before twenty-third pass", 22, {},
                            "the search before the twenty-third pass (TWENTY_THIRD_PASS: the same faces, later starts)"),
    "before-twenty-fourth": ("ours, before twenty-fourth pass", 23, {},
                             "the search before the twenty-fourth pass (TWENTY_FOURTH_PASS: the same faces, the second "
                             "look's re-checks queued later)"),
    "before-twenty-fifth": ("ours, before twenty-fifth pass", 24, {},
                            "the search before the twenty-fifth pass (TWENTY_FIFTH_PASS: R-Net at the quarter turns "
                            "only, O-Net once per square)"),
    "before-twenty-sixth": ("ours, before twenty-sixth pass", 25, {},
                            "the search before the twenty-sixth pass (TWENTY_SIXTH_PASS: P-Net at its two turns only)"),
    "before-twenty-seventh": ("ours, before twenty-seventh pass", 26, {},
                              "the search before the twenty-seventh pass (TWENTY_SEVENTH_PASS: no roll search by "
                              "YuNet for refused candidates)"),
    "before-twenty-eighth": ("ours, before twenty-eighth pass", 27, {},
                             "the search before the twenty-eighth pass (TWENTY_EIGHTH_PASS: O-Net reads a refused "
                             "small square at no roll of its own eye points; a P-Net candidate's re-check reading "
                             "stands for it up to 2x its side)"),
    "before-twenty-ninth": ("ours, before twenty-ninth pass", 28, {},
                            "the search before the twenty-ninth pass (TWENTY_NINTH_PASS: a small face the mesh did not "
                            "fit keeps the box it was refined to, however large)"),
    "before-thirtieth": ("ours, before thirtieth pass", 29, {},
                         "the search before the thirtieth pass (THIRTIETH_PASS: a face the mesh fitted that the "
                         "full-range model does not see is refused whatever O-Net reads; O-Net's read around a "
                         "side-on head keeps heads of any size)"),
    "before-thirty-first": ("ours, before thirty-first pass", 30, {},
                            "the search before the thirty-first pass (THIRTY_FIRST_PASS: P-Net's small faces the "
                            "re-check reads nothing on are dropped; O-Net reads a refused small square at R-Net's turn "
                            "and half a turn on only)"),
    "before-thirty-second": ("ours, before thirty-second pass", 31, {},
                             "the search before the thirty-second pass (THIRTY_SECOND_PASS: the zoomed re-read of a face "
                             "the mesh did not fit reaches faces reported at up to 64 px only; YuNet's roll search "
                             "candidates of up to 96 px only)"),
    "before-thirty-third": ("ours, before thirty-third pass", 32, {},
                            "the search before the thirty-third pass (THIRTY_THIRD_PASS: a refused large face the mesh "
                            "did not fit is not asked YuNet and the back-camera model about; P-Net's peaks are read at "
                            "the quarter turns it skips from 0.7 up only)"),
    "before-thirty-fourth": ("ours, before thirty-fourth pass", 33, {},
                             "the search before the thirty-fourth pass (THIRTY_FOURTH_PASS: any re-check reading keeps "
                             "P-Net's small faces at its place from the re-check, whether or not refinement keeps it)"),
    "before-thirty-fifth": ("ours, before thirty-fifth pass", 34, {},
                            "the search before the thirty-fifth pass (THIRTY_FIFTH_PASS: O-Net reads a square it "
                            "refuses at no shift or scale of it)"),
    "before-thirty-sixth": ("ours, before thirty-sixth pass", 35, {},
                            "the search before the thirty-sixth pass (THIRTY_SIXTH_PASS: a reading keeps a P-Net face "
                            "from the re-check by the side of the square O-Net's retries grew, not P-Net's own)"),
    "before-thirty-seventh": ("ours, before thirty-seventh pass", 36, {},
                              "the search before the thirty-seventh pass (THIRTY_SEVENTH_PASS: YuNet reads P-Net's "
                              "unseen small faces at O-Net's roll only)"),
    "before-thirty-eighth": ("ours, before thirty-eighth pass", 37, {},
                             "the search before the thirty-eighth pass (THIRTY_EIGHTH_PASS: P-Net's peaks just under "
                             "SMALL_P are not read by R-Net, and YuNet tries P-Net's unseen faces within 20°)"),
    "before-thirty-ninth": ("ours, before thirty-ninth pass", 38, {},
                            "the search before the thirty-ninth pass (THIRTY_NINTH_PASS: a face the mesh did not fit "
                            "keeps the detectors' size where YuNet's box is much smaller)"),
    "before-fortieth": ("ours, before fortieth pass", 39, {},
                        "the search before the fortieth pass (FORTIETH_PASS: where two faces land on one, the higher "
                        "score is kept whether or not the mesh fitted it)"),
    "before-forty-first": ("ours, before forty-first pass", 40, {},
                           "the search before the forty-first pass (FORTY_FIRST_PASS: a weak proposal over the second "
                           "look's bound gets none, whatever its members)"),
    "before-forty-second": ("ours, before forty-second pass", 41, {},
                            "the search before the forty-second pass (FORTY_SECOND_PASS: a face the mesh did not fit "
                            "is never made larger by YuNet's square)"),
    "before-forty-third": ("ours, before forty-third pass", 42, {},
                           "the search before the forty-third pass (FORTY_THIRD_PASS: a soft candidate the re-check "
                           "read under the floor is not re-checked as a larger face)"),
    "before-forty-fourth": ("ours, before forty-fourth pass", 43, {},
                            "the search before the forty-fourth pass (FORTY_FOURTH_PASS: where the larger retry's "
                            "reading is refused, nothing it pushed out is tried)"),
    "before-forty-fifth": ("ours, before forty-fifth pass", 44, {},
                           "the search before the forty-fifth pass (FORTY_FIFTH_PASS: P-Net's peaks under SMALL_STIR "
                           "are not stirred)"),
    "before-forty-sixth": ("ours, before forty-sixth pass", 45, {},
                           "the search before the forty-sixth pass (FORTY_SIXTH_PASS: P-Net's stirring peaks are not "
                           "read at the eighth turns, and a P-Net face is not tried at O-Net's roll where its own "
                           "re-check reading turned from it is refused)"),
    "before-forty-seventh": ("ours, before forty-seventh pass", 46, {},
                             "the search before the forty-seventh pass (FORTY_SEVENTH_PASS: O-Net's word keeps a "
                             "side-on head without YuNet's, and the two BlazeFace models' agreement a face without a "
                             "mesh fit without a third model's)"),
    "upside-down": ("ours, upside-down levels", ALL_PASSES, {"middle_rotations": (0, 180)},
                    "ours with the levels above the finest turned 180° too (middle_rotations)"),
}
PATHS = {"ours": (ALL_PASSES, {})} | {name: (passes, changed) for name, passes, changed, _ in SIDE_PATHS.values()}


def run_ours(tally: Tally, scene: Scene, index: int, settings: FaceFinderSettings, batched: bool,
             passes: int = ALL_PASSES) -> None:
    """One ``find_faces`` call, timed and scored; ``batched`` False: one mediapipe graph call per tile (old path);
    ``passes``: how many of the cost cuts, third to forty-seventh pass the search keeps (SIDE_PATHS; 47: all)."""
    shape = (scene.image.shape[1], scene.image.shape[0])
    switched = [switch for later, _, _ in LATER_PASSES for switch in later]
    kept = {(module, name): getattr(module, name) for module, name, _ in switched}
    for later, settings_before, at in LATER_PASSES:
        if passes < at:
            settings = dataclasses.replace(settings, **settings_before)
            for module, name, before in later:
                setattr(module, name, before)
    blazeface.USE_BATCH = batched
    for module, name in COST_CUTS:
        setattr(module, name, passes >= 2)
    for module, name in THIRD_PASS:
        setattr(module, name, passes >= 3)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = find_faces(scene.image, settings=settings)
        tally.ms.setdefault(shape, []).append((time.perf_counter() - start) * 1000)
        tally.cpu_ms.setdefault(shape, []).append((time.process_time() - cpu) * 1000)
    finally:
        blazeface.USE_BATCH = True
        for module, name in COST_CUTS + THIRD_PASS:
            setattr(module, name, True)
        for (module, name), value in kept.items():
            setattr(module, name, value)
    tally.calls.append(result.detector_calls)
    faces = result.faces + [s.face for s in result.skipped]
    score(tally, scene, [found_face(f) for f in faces], index)


def run_part(name: str, scenes: list[Scene], baseline: FacePopBaseline | None, settings: FaceFinderSettings,
             tallies: dict, paths: tuple[str, ...] = ("ours",), per_tile: bool = False) -> None:
    """Every detector on every scene; the paths of ``paths`` (PATHS) alternate which runs first (cache, load)."""
    base = tallies.setdefault((name, "FacePop"), Tally()) if baseline is not None else None
    runs = [(tallies.setdefault((name, path), Tally()), PATHS[path][0], dataclasses.replace(settings, **PATHS[path][1]))
            for path in paths]
    old = tallies.setdefault((name, "ours, per-tile graph calls"), Tally()) if per_tile else None
    for i, scene in enumerate(scenes):
        shape = (scene.image.shape[1], scene.image.shape[0])
        if base is not None:
            start, cpu = time.perf_counter(), time.process_time()
            found, calls = baseline(scene.image)
            base.ms.setdefault(shape, []).append((time.perf_counter() - start) * 1000)
            base.cpu_ms.setdefault(shape, []).append((time.process_time() - cpu) * 1000)
            base.calls.append(calls)
            score(base, scene, found, i)
        for tally, passes, path_settings in runs if i % 2 == 0 else runs[::-1]:
            run_ours(tally, scene, i, path_settings, batched=True, passes=passes)
        if old is not None:
            run_ours(old, scene, i, settings, batched=False)
        print(f"  {name} {i + 1}/{len(scenes)}", file=sys.stderr, flush=True)


def run_tracking(frames: list[np.ndarray], truths: list[list[TruthFace]], baseline: FacePopBaseline,
                 settings: FaceFinderSettings, detect_every: int) -> dict[str, dict[str, str]]:
    tracker = FaceTracker(settings, detect_every=detect_every)
    tallies = {"FacePop": Tally(), "ours, FaceTracker": Tally()}
    for i, (frame, truth) in enumerate(zip(frames, truths, strict=True)):
        scene = Scene(frame, truth)
        start, cpu = time.perf_counter(), time.process_time()
        found, calls = baseline(frame)
        tallies["FacePop"].ms.setdefault((1280, 720), []).append((time.perf_counter() - start) * 1000)
        tallies["FacePop"].cpu_ms.setdefault((1280, 720), []).append((time.process_time() - cpu) * 1000)
        tallies["FacePop"].calls.append(calls)
        score(tallies["FacePop"], scene, found, i)
        start, cpu = time.perf_counter(), time.process_time()
        result = tracker.update(frame)
        t = tallies["ours, FaceTracker"]
        t.ms.setdefault((1280, 720), []).append((time.perf_counter() - start) * 1000)
        t.cpu_ms.setdefault((1280, 720), []).append((time.process_time() - cpu) * 1000)
        t.calls.append(result.detector_calls)
        score(t, scene, [found_face(f) for f in result.faces + [s.face for s in result.skipped]], i)
    return {name: report(t) for name, t in tallies.items()}


def table(columns: dict[str, dict[str, str]]) -> str:
    names = list(columns)
    metrics = list(dict.fromkeys(m for c in columns.values() for m in c))
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {m} | " + " | ".join(columns[n].get(m, "-") for n in names) + " |" for m in metrics]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 scenes per part, 20 tracked frames")
    parser.add_argument("--images", type=int, default=30, help="scenes per part (30)")
    parser.add_argument("--frames", type=int, default=40, help="frames of the tracking clip (40)")
    parser.add_argument("--detect-every", type=int, default=10, help="FaceTracker's full-detection period (10)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--part", choices=("both", "tune", "second_tune", "held_out", "fresh", "large", "turned",
                                           "turned_tune", "small", "small_tune", "real", "real_tune", "group",
                                           "group_tune", "turned_large", "turned_large_tune", "crowd", "crowd_tune"),
                        default="both",
                        help="both: every part; fresh: the part held out from the fifth pass on; second_tune: the tune part "
                             "added in the eighth (face_sources); large: faces of 128-512 px of the held-out and fresh "
                             "identities (the twelfth pass); turned: heads turned 22.5-90° (profiles too) of the held-out "
                             "and fresh identities, turned_tune: of the tune identities (the thirteenth pass); small: "
                             "faces of 24 px only of the held-out and fresh identities, small_tune: of the tune "
                             "identities (the twenty-eighth pass); real: grey scenes of LFW faces (real people) of 24 "
                             "and 32 px, the held-out half of scikit-image's subset, real_tune: its tune half (the "
                             "thirtieth pass); group: the held-out three of the six people of insightface's group "
                             "photo, whole heads at 24-96 px, group_tune: the other three (the thirty-first pass); "
                             "turned_large: the turned heads of the held-out and fresh identities at 128-512 px, "
                             "turned_large_tune: of the tune identities (the thirty-second pass); crowd: held-out and fresh "
                             "renders and the group photo's held-out heads in clusters, 10-20 faces of 24-64 px a "
                             "scene, crowd_tune: the tune identities and heads (the forty-first pass)")
    parser.add_argument("--misses", action="store_true",
                        help="list every missed face and every false positive (with the nearest pasted face)")
    parser.add_argument("--face-free", type=int, default=0, metavar="N",
                        help="also N face-free clutter scenes (seed + 7000): false positives on many images")
    parser.add_argument("--per-tile", action="store_true",
                        help="also run the old path (one mediapipe graph call per tile and re-check) on the same images")
    for flag, (_, _, _, what) in SIDE_PATHS.items():
        parser.add_argument(f"--{flag}", action="store_true", help=f"also run {what} side by side on the same images")
    parser.add_argument("--no-facepop", action="store_true",
                        help="leave out the FacePop method, the tracking clip and the cold start (quicker tune runs)")
    parser.add_argument("--proposal", type=float, default=None,
                        help="FaceFinderSettings.proposal_confidence (default: the settings' own)")
    parser.add_argument("--recheck-floor", type=float, default=None,
                        help="FaceFinderSettings.recheck_floor (default: the settings' own)")
    parser.add_argument("--rotations", type=int, nargs="+", default=None,
                        help="tile turns below the whole-image levels (default: FaceFinderSettings')")
    parser.add_argument("--oval-paste", action="store_true",
                        help="paste renders by the soft ellipse alone, studio white included (the scenes before the "
                             "fifth pass)")
    args = parser.parse_args(argv)
    global PASTE_BY_MATTE
    PASTE_BY_MATTE = not args.oval_paste
    images, frames = (6, 20) if args.quick else (args.images, args.frames)
    renders = load_renders()
    tune = [r for r in renders if not r.held_out and not r.second_tune]
    second_tune = [r for r in renders if r.second_tune]
    held = [r for r in renders if r.held_out and not r.fresh]
    fresh = [r for r in renders if r.fresh]
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    if args.rotations is not None:
        settings = dataclasses.replace(settings, rotations=tuple(args.rotations))
    if args.proposal is not None:
        settings = dataclasses.replace(settings, proposal_confidence=args.proposal)
    if args.recheck_floor is not None:
        settings = dataclasses.replace(settings, recheck_floor=args.recheck_floor)
    paths = ("ours",) + tuple(name for flag, (name, *_) in SIDE_PATHS.items() if getattr(args, flag.replace("-", "_")))
    if len(paths) > 1:
        # Each path's window shapes fit under the per-thread interpreter cap, two paths' side by side do not: the
        # cap would rebuild each other's interpreters every scene (measured: 49 instead of 10 built over 16
        # searches, +16 % CPU on the path before the third pass), so the comparison lifts it.
        runtime.INTERPRETER_PIXELS_PER_THREAD = 4_000_000
    load = os.getloadavg()[0]
    cold = {} if args.no_facepop else cold_start()
    baseline = None if args.no_facepop else FacePopBaseline()
    warm = build(args.seed + 99, 1, tune, PHOTOS)[0].image
    find_faces(warm, settings=settings)  # warm both threads' graphs and interpreters
    if args.per_tile:
        run_ours(Tally(), Scene(warm, []), 0, settings, batched=False)
    if baseline is not None:
        baseline(warm)
    tallies: dict = {}
    turned = (load_renders(turned=True)
              if args.part in ("both", "turned", "turned_tune", "turned_large", "turned_large_tune") else [])
    reals = real_faces()
    group = group_faces()
    parts = {"tune": (tune, PHOTOS, args.seed, {}), "second-tune": (second_tune, (), args.seed + 5, {}),
             "held-out": (held, (), args.seed + 1, {}), "fresh": (fresh, (), args.seed + 3, {}),
             "large": (held + fresh, (), args.seed + 9, LARGE),
             "turned": ([r for r in turned if r.held_out], (), args.seed + 11, {}),
             "turned-tune": ([r for r in turned if not r.held_out], (), args.seed + 13, {}),
             "small": (held + fresh, (), args.seed + 15, SMALL),
             "small-tune": (tune + second_tune, (), args.seed + 483, SMALL),
             "real": ([], (), args.seed + 21, REAL | {"reals": tuple(f for f in reals if f.held_out)}),
             "real-tune": ([], (), args.seed + 23, REAL | {"reals": tuple(f for f in reals if not f.held_out)}),
             "group": ([], (), args.seed + 25, {"group": tuple(f for f in group if f.held_out)}),
             "group-tune": ([], (), args.seed + 27, {"group": tuple(f for f in group if not f.held_out)}),
             "turned-large": ([r for r in turned if r.held_out], (), args.seed + 29, LARGE),
             "turned-large-tune": ([r for r in turned if not r.held_out], (), args.seed + 31, LARGE),
             "crowd": (held + fresh, (), args.seed + 33, CROWD | {"group": tuple(f for f in group if f.held_out)}),
             "crowd-tune": (tune + second_tune, (), args.seed + 35,
                            CROWD | {"group": tuple(f for f in group if not f.held_out)})}
    for name, (pool, photos, seed, shape) in parts.items():
        if args.part not in ("both", name.replace("-", "_")):
            continue
        run_part(name, build(seed, images, pool, photos, **shape), baseline, settings, tallies, paths, args.per_tile)
    if args.face_free:
        run_part("face-free", face_free(args.seed + 7000, args.face_free), baseline, settings, tallies, paths,
                 args.per_tile)
    tracking = {}
    if baseline is not None:
        clip, truth = sequence(args.seed + 2, frames, held)
        tracking = run_tracking(clip, truth, baseline, settings, args.detect_every)
    load = max(load, os.getloadavg()[0])
    faces = {name: sum(row[1] for row in t.hits.values()) for (name, who), t in tallies.items() if who == "ours"}
    print(f"\nseed {args.seed}; {images} scenes per part alternating 1440x1440 / 1280x720, faces per part {faces}; "
          f"damage cycled {'/'.join(DAMAGE)}, 30 % mirrored; {os.cpu_count()} CPUs, load average up to {load:.1f}"
          " (shared machine: timings taken under load)\n")
    print(table({f"{who} ({name})": report(t) for (name, who), t in tallies.items()}))
    if tracking:
        print(f"\ntracking: 1280x720 clip, {frames} frames, 3 held-out faces of 32, 64 and 96 px drifting and turning, "
              f"full detection every {args.detect_every} frames\n")
        print(table(tracking))
        print("\ncold start (fresh process, s): " + ", ".join(f"{k} {v:.2f}" for k, v in cold.items()))
    for against in ("FacePop", "ours, per-tile graph calls", *list(PATHS)[1:]):
        for kind in ("wall", "CPU"):
            ratio = {}
            for name in dict.fromkeys(part for part, _ in tallies):  # every part run, in order
                if (name, "ours") in tallies and (name, against) in tallies:
                    o, b = tallies[(name, "ours")], tallies[(name, against)]
                    mine, theirs = (o.ms, b.ms) if kind == "wall" else (o.cpu_ms, b.cpu_ms)
                    for shape in SHAPES:
                        if shape in mine:
                            ratio[f"{name} {shape[0]}x{shape[1]}"] = np.mean(mine[shape]) / np.mean(theirs[shape])
            if ratio:
                print(f"{kind}-time ratio ours / {against}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items()))
    if args.misses:
        for (name, who), t in tallies.items():
            if who == "ours":
                for miss in t.misses:
                    print(f"miss {name}: scene {miss[0]} {miss[1]} size {miss[2]} roll {miss[3]} at {miss[4]}")
                for index, centre, size, roll, near in t.false_positive_list:
                    where = "no face in the scene" if near is None else f"nearest face {near[0]} px away, size {near[1]}"
                    print(f"false positive {name}: scene {index} at {centre} size {size} roll {roll}; {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
