"""Measures of a bumped sequence against known motion (benchmark and tests): flicker, crop jitter.

Flicker is the mean absolute difference between a frame and the previous frame warped onto it by
the true motion, inside the face; divided by the same figure for the input, it says how much
temporal noise the bump added (1.0: none beyond what warping the input itself leaves).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def face_disk(shape: tuple[int, ...], eyes: tuple[tuple[float, float], tuple[float, float]], size: float) -> np.ndarray:
    """A boolean disk over the face: centred a little below the eye midpoint, 0.45 of the face size."""
    (x0, y0), (x1, y1) = eyes
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    d = math.hypot(x1 - x0, y1 - y0)
    nx, ny = -(y1 - y0) / max(d, 1e-6), (x1 - x0) / max(d, 1e-6)  # towards the chin
    cx, cy = cx + 0.25 * d * nx, cy + 0.25 * d * ny
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    return np.hypot(xs + 0.5 - cx, ys + 0.5 - cy) <= 0.45 * size


def warp_error(previous: np.ndarray, current: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Mean |current - previous warped by the backward ``flow``| over ``mask`` (grey levels, 0-255)."""
    h, w = current.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    inside = mask & (mx >= 0) & (my >= 0) & (mx <= w - 1) & (my <= h - 1)
    warped = cv2.remap(previous, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    diff = np.abs(current.astype(np.float32) - warped.astype(np.float32)).mean(-1)
    return float(diff[inside].mean()) if inside.any() else float("nan")


def flicker_ratio(outputs: list[np.ndarray], inputs: list[np.ndarray], flows: list[np.ndarray | None],
                  masks: list[np.ndarray]) -> float:
    """Mean warp error of the output over that of the input, frames 1..n-1."""
    out_err, in_err = [], []
    for t in range(1, len(outputs)):
        if flows[t] is None:
            continue
        out_err.append(warp_error(outputs[t - 1], outputs[t], flows[t], masks[t]))
        in_err.append(warp_error(inputs[t - 1], inputs[t], flows[t], masks[t]))
    return float(np.mean(out_err) / max(np.mean(in_err), 1e-6))


def aligned_eye_jitter(eyes: list[tuple[tuple[float, float], tuple[float, float]]], matrices: list[np.ndarray]) -> float:
    """Standard deviation (px, crop space) of the true eye points seen through each frame's crop transform:
    0 when the crop follows the face exactly."""
    pts = []
    for (a, b), m in zip(eyes, matrices, strict=True):
        p = np.array([a, b], dtype=np.float64)
        pts.append((p @ m[:, :2].T + m[:, 2]).ravel())
    arr = np.array(pts)
    return float(np.sqrt((arr.std(0) ** 2).mean()))
