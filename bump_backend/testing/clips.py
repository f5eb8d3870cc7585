"""Clips with known motion, built from real photos, for the sequence job's tests and benchmark.

``photo_clip``: scikit-image's astronaut moved, zoomed and rotated by a known similarity per frame,
so every frame's eye centres and its exact backward flow (each pixel's position one frame earlier)
are known. ``crossing_clip``: two real faces (astronaut, Grace Hopper) crossing over a still,
cluttered background. ``write_video``: a clip as an H.264 file with an optional AAC tone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from bump_backend.faces import groundtruth


@dataclass(frozen=True)
class ClipFrame:
    image: np.ndarray  # HxWx3 uint8
    flow: np.ndarray | None  # HxWx2 float32 backward flow (None on the first frame)
    eyes: list[tuple[tuple[float, float], tuple[float, float]]]  # per face, image-left eye first
    sizes: list[float]


def _to_index(matrix: np.ndarray) -> np.ndarray:
    m3 = np.vstack([matrix, [0, 0, 1]])
    return (np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]]) @ m3 @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]))[:2]


def _apply(matrix: np.ndarray, p: tuple[float, float]) -> tuple[float, float]:
    x, y = matrix @ np.array([p[0], p[1], 1.0])
    return (float(x), float(y))


def photo_motion(t: int, frames: int, width: int, height: int, face: float, still: bool = False
                 ) -> tuple[tuple[float, float], float, float]:
    """Centre, face size and roll of frame ``t``: a slow drift, a zoom of 1.3x and a roll of +-8 degrees."""
    if still:
        return (width / 2, height / 2), face, 0.0
    u = t / max(1, frames - 1)
    centre = (width * (0.42 + 0.16 * u), height * (0.5 + 0.04 * math.sin(2 * math.pi * u)))
    return centre, face * (1.0 + 0.3 * u), 8.0 * math.sin(2 * math.pi * u)


def photo_clip(frames: int, width: int = 192, height: int = 160, face: float = 56.0, *,
               still: bool = False, noise: float = 0.0, seed: int = 0) -> Iterator[ClipFrame]:
    """The astronaut photo under a known similarity per frame (``still``: the same frame every time),
    with optional per-frame Gaussian sensor noise of ``noise`` grey levels."""
    rng = np.random.default_rng(seed)
    src = groundtruth.SOURCES["astronaut"]
    photo = groundtruth.source_image("astronaut")
    previous = None
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    points = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(xs.size)])
    for t in range(frames):
        centre, size, roll = photo_motion(t, frames, width, height, face, still)
        matrix = groundtruth.similarity(src.centre, centre, size / src.side, roll)
        k = size / src.side
        blurred = cv2.GaussianBlur(photo, (0, 0), 0.5 / k * 0.6) if k < 0.5 else photo
        image = cv2.warpAffine(blurred, _to_index(matrix), (width, height), flags=cv2.INTER_AREA if k < 1
                               else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if noise > 0:
            image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
        flow = None
        if previous is not None:
            inv = cv2.invertAffineTransform(matrix)
            back = np.vstack([previous, [0, 0, 1]]) @ np.vstack([inv, [0, 0, 1]])
            moved = back[:2] @ points
            flow = np.stack([(moved[0] - points[0]).reshape(height, width),
                             (moved[1] - points[1]).reshape(height, width)], -1).astype(np.float32)
        previous = matrix
        eyes = (_apply(matrix, src.right_eye), _apply(matrix, src.left_eye))
        yield ClipFrame(image=image, flow=flow, eyes=[eyes], sizes=[size])


def crossing_clip(frames: int, width: int = 256, height: int = 144, face: float = 52.0,
                  seed: int = 5) -> Iterator[ClipFrame]:
    """Astronaut left-to-right, Grace Hopper right-to-left, crossing mid-clip (Hopper in front)."""
    rng = np.random.default_rng(seed)
    base = groundtruth.background(rng, width, height)
    for t in range(frames):
        u = t / max(1, frames - 1)
        canvas = base.copy()
        a = groundtruth.place_face(canvas, "astronaut", (width * (0.2 + 0.6 * u), height * 0.48), face, 0.0)
        g = groundtruth.place_face(canvas, "grace_hopper", (width * (0.8 - 0.6 * u), height * 0.52), face, 0.0)
        yield ClipFrame(image=canvas, flow=None, eyes=[(a.right_eye, a.left_eye), (g.right_eye, g.left_eye)],
                        sizes=[face, face])


def write_folder(clip: Iterator[ClipFrame], folder: Path, *, flow: bool = False, prefix: str = "frame_") -> Path:
    """Frames as ``<prefix>0001.png`` (+ ``.flow.npy`` motion when ``flow``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(clip):
        Image.fromarray(frame.image).save(folder / f"{prefix}{i + 1:04d}.png")
        if flow and frame.flow is not None:
            np.save(folder / f"{prefix}{i + 1:04d}.flow.npy", frame.flow)
    return folder


def write_video(images: Iterator[np.ndarray], path: Path, fps: int = 24, *, audio: bool = True, crf: int = 10,
                timecode: str | None = None) -> Path:
    """An H.264 yuv420p file (limited range) with an optional 440 Hz AAC tone as long as the video."""
    images = list(images) if not hasattr(images, "__len__") else images
    with av.open(str(path), "w") as out:
        if timecode:
            out.metadata["timecode"] = timecode
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf)}
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=48000)
            astream.layout = "mono"
        for img in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if astream is not None:
            total = int(48000 * len(images) / fps)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / 48000)).astype(np.float32)
            for start in range(0, total, 1024):
                chunk = tone[None, start:start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate = 48000
                frame.pts = start
                frame.time_base = Fraction(1, 48000)
                for packet in astream.encode(frame):
                    out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path
