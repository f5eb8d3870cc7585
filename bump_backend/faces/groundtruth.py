"""Ground-truth face scenes built in code from faces that ship inside PyPI packages.

The detector, the aligner and the benchmark need images where every face's box, eyes and roll are
known exactly. Real faces (scikit-image's astronaut, matplotlib's Grace Hopper) are pasted with a
similarity transform (size, roll, optional mirror) onto real clutter (scikit-image's sample
photos), so the truth follows from the transform and the measured eye centres of each source.
"""

from __future__ import annotations

import functools
import io
import math
import os
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FaceSource:
    """A photo with one face whose eye centres and face square were measured once (mesh irises)."""

    name: str
    right_eye: tuple[float, float]  # the subject's right eye (image-left in this upright photo)
    left_eye: tuple[float, float]
    centre: tuple[float, float]  # centre of the face square (brow to chin, cheek to cheek)
    side: float  # side of the face square, pixels


# Iris centres (face-mesh points 468/473) and face-mesh bounds (centre, longer side) measured once on the
# original images; the detector reports its faces with the same definition.
SOURCES: dict[str, FaceSource] = {
    "astronaut": FaceSource("astronaut", (203.5, 101.1), (246.6, 103.5), (224.8, 124.3), 106.2),
    "grace_hopper": FaceSource("grace_hopper", (222.6, 191.3), (306.2, 187.5), (264.5, 232.9), 201.3),
}
BACKGROUNDS = ("coffee", "chelsea", "rocket", "brick", "grass", "gravel", "hubble_deep_field",
               "immunohistochemistry", "retina", "clock", "text", "colorwheel", "moon")
# ("coins" is left out: its coins carry relief portraits, which are faces.)


@functools.cache
def source_image(name: str) -> np.ndarray:
    """The RGB uint8 source photo (read-only)."""
    if name == "astronaut":
        from skimage import data

        image = data.astronaut()
    elif name == "grace_hopper":
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        raise KeyError(f"unknown face source {name!r}; known: {', '.join(SOURCES)}")
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


@functools.cache
def _background_image(name: str) -> np.ndarray:
    from skimage import data

    image = np.asarray(getattr(data, name)())
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = image[:, :, :3]
    if image.dtype != np.uint8:
        image = (255 * (image.astype(np.float64) / max(float(image.max()), 1e-9))).astype(np.uint8)
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


@dataclass(frozen=True)
class TruthFace:
    """Where a pasted face landed: the values a perfect detector would report."""

    box: tuple[float, float, float, float]
    right_eye: tuple[float, float]
    left_eye: tuple[float, float]
    roll: float
    size: float  # side of the upright face square
    source: str
    mirrored: bool
    yaw: float | None = None  # known for rendered heads (their package's manifest), not for photos

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A cluttered RGB canvas: a random sample photo, resized/cropped, plus random shapes."""
    name = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    photo = _background_image(name)
    scale = max(width / photo.shape[1], height / photo.shape[0]) * float(rng.uniform(1.0, 1.6))
    big = cv2.resize(photo, (math.ceil(photo.shape[1] * scale), math.ceil(photo.shape[0] * scale)),
                     interpolation=cv2.INTER_LINEAR)
    x = int(rng.integers(0, big.shape[1] - width + 1))
    y = int(rng.integers(0, big.shape[0] - height + 1))
    canvas = np.ascontiguousarray(big[y:y + height, x:x + width])
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p = (int(rng.integers(width)), int(rng.integers(height)))
        r = int(rng.integers(4, max(5, min(width, height) // 6)))
        if rng.random() < 0.5:
            cv2.circle(canvas, p, r, colour, -1 if rng.random() < 0.5 else 2, cv2.LINE_AA)
        else:
            q = (p[0] + int(rng.integers(-2 * r, 2 * r)), p[1] + int(rng.integers(-2 * r, 2 * r)))
            cv2.rectangle(canvas, p, q, colour, -1 if rng.random() < 0.5 else 2)
    return canvas


def similarity(centre_from: tuple[float, float], centre_to: tuple[float, float], scale: float,
               roll: float, mirror: bool = False) -> np.ndarray:
    """2x3 matrix: optional mirror about centre_from, scale, clockwise-on-screen roll, then move."""
    t = math.radians(roll)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    linear = np.array([[c, -s], [s, c]])
    if mirror:
        linear = linear @ np.array([[-1.0, 0.0], [0.0, 1.0]])
    offset = np.asarray(centre_to) - linear @ np.asarray(centre_from)
    return np.hstack([linear, offset[:, None]])


def _apply(matrix: np.ndarray, p: tuple[float, float]) -> tuple[float, float]:
    x, y = matrix @ np.array([p[0], p[1], 1.0])
    return (float(x), float(y))


def place_face(canvas: np.ndarray, source: str, centre: tuple[float, float], size: float, roll: float,
               mirror: bool = False) -> TruthFace:
    """Paste a source face (with some hair and neck, soft edges) in place; return its truth."""
    return paste_photo(canvas, source_image(source), SOURCES[source], centre, size, roll, mirror)


def paste_photo(canvas: np.ndarray, photo: np.ndarray, src: FaceSource, centre: tuple[float, float], size: float,
                roll: float, mirror: bool = False, ellipse: tuple[float, float] = (0.95, 1.25)) -> TruthFace:
    """Paste the face ``src`` measures in ``photo`` so it is ``size`` px, turned ``roll``; return its truth.

    The soft ellipse around the head is ``ellipse`` face sides wide and tall (half-axes, its centre 0.1 side above the
    face's, for the hair): a photo of several people takes a smaller one than a portrait.
    """
    k = size / src.side
    matrix = similarity(src.centre, centre, k, roll, mirror)
    # Pixel-centre convention: warpAffine indexes pixels, whose centres sit at +0.5 in our coordinates.
    m3 = np.vstack([matrix, [0, 0, 1]])
    to_index = (np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ m3 @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]))[:2]
    h, w = canvas.shape[:2]
    reach = 1.6 * size
    x0, y0 = max(int(centre[0] - reach), 0), max(int(centre[1] - reach), 0)
    x1, y1 = min(int(centre[0] + reach) + 1, w), min(int(centre[1] + reach) + 1, h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("face lies outside the canvas")
    local = to_index.copy()
    local[:, 2] -= (x0, y0)
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    if k < 0.5:  # pre-shrink so small faces are anti-aliased like a real long shot
        blur = 0.5 / k * 0.6
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    patch = cv2.warpAffine(photo, local, (x1 - x0, y1 - y0), flags=interp, borderMode=cv2.BORDER_REFLECT)
    # Soft ellipse around the head in source space (a little wider below for the neck).
    yy, xx = np.mgrid[0:photo.shape[0], 0:photo.shape[1]].astype(np.float32)
    ex = (xx + 0.5 - src.centre[0]) / (ellipse[0] * src.side)
    ey = (yy + 0.5 - src.centre[1] + 0.1 * src.side) / (ellipse[1] * src.side)
    alpha_src = np.clip((1.0 - np.sqrt(ex * ex + ey * ey)) / 0.25, 0, 1).astype(np.float32)
    alpha = cv2.warpAffine(alpha_src, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)[:, :, None]
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    canvas[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + patch.astype(np.float32) * alpha + 0.5, 0, 255).astype(
        np.uint8)
    right, left = (src.left_eye, src.right_eye) if mirror else (src.right_eye, src.left_eye)
    right_c, left_c = _apply(matrix, right), _apply(matrix, left)
    corners = [_apply(matrix, (src.centre[0] + dx * src.side / 2, src.centre[1] + dy * src.side / 2))
               for dx in (-1, 1) for dy in (-1, 1)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    eye_roll = math.degrees(math.atan2(left_c[1] - right_c[1], left_c[0] - right_c[0]))
    return TruthFace(box=(min(xs), min(ys), max(xs), max(ys)), right_eye=right_c, left_eye=left_c,
                     roll=eye_roll, size=size, source=src.name, mirrored=mirror)


def clutter(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-crop background with shapes (``background``), half the time under a noise texture."""
    canvas = background(rng, width, height)
    if rng.random() < 0.5:
        small = rng.normal(0, 1, (height // 24 + 1, width // 24 + 1, 3)).astype(np.float32)
        texture = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        texture += rng.normal(0, 0.5, (height, width, 3)).astype(np.float32)
        canvas = np.clip(canvas + 25 * texture, 0, 255).astype(np.uint8)
    return canvas


def face_free(seed: int, count: int, shapes: tuple[tuple[int, int], ...],
              damage: tuple[str, ...]) -> list[np.ndarray]:
    """``count`` clutter images with no face, cycling through ``shapes`` (w, h) and ``damage`` (``degrade`` kinds).

    Every face found on them is a false positive (benchmarks/bench_faces.py ``--face-free``; tests rebuild its images).
    """
    rng = np.random.default_rng(seed)
    return [degrade(clutter(rng, *shapes[i % len(shapes)]), damage[i % len(damage)], rng) for i in range(count)]


def degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Camera-like damage: 'noise', 'blur', 'jpeg' or 'none'."""
    if kind == "none":
        return image
    if kind == "noise":
        noisy = image.astype(np.float32) + rng.normal(0, 8, image.shape).astype(np.float32)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), 1.2)
    if kind == "jpeg":
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=40)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    raise ValueError(f"unknown degradation {kind!r}")


@dataclass
class Scene:
    image: np.ndarray
    faces: list[TruthFace]


def make_scene(rng: np.random.Generator, width: int, height: int, faces: list[tuple[float, float]],
               *, mirror_chance: float = 0.3, damage: str = "none") -> Scene:
    """A cluttered canvas with one face per (size, roll) pair, placed without overlap."""
    canvas = background(rng, width, height)
    placed: list[TruthFace] = []
    taken: list[tuple[float, float, float]] = []
    for size, roll in faces:
        for _attempt in range(200):
            margin = 0.8 * size
            cx = float(rng.uniform(margin, width - margin)) if width > 2 * margin else width / 2
            cy = float(rng.uniform(margin, height - margin)) if height > 2 * margin else height / 2
            if all(math.hypot(cx - x, cy - y) > 1.7 * (size + r) for x, y, r in taken):
                break
        else:
            continue
        source = list(SOURCES)[int(rng.integers(len(SOURCES)))]
        placed.append(place_face(canvas, source, (cx, cy), size, roll, bool(rng.random() < mirror_chance)))
        taken.append((cx, cy, size))
    return Scene(degrade(canvas, damage, rng), placed)
