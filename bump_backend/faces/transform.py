"""2x3 affine maths in pixel-centre coordinates (pure numpy, no OpenCV state).

Every matrix in the face pipeline maps continuous image coordinates where pixel (i, j) covers
[i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5): the convention of the render sidecar.
OpenCV's warps index pixel centres at integers, so ``to_index`` converts just before a warp.
"""

from __future__ import annotations

import math

import numpy as np


def invert(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine matrix (raises for a singular one).

    Closed form: ``np.linalg.inv`` on a 2x2 goes through LAPACK and cost ~2 ms a call on the busy
    machine (55 calls per 1440 px image).
    """
    (a, b, e), (c, d, f) = _rows(matrix)
    det = a * d - b * c
    if abs(det) < 1e-12:
        raise ValueError("the transform is singular (zero scale)")
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * e + ib * f)], [ic, id_, -(ic * e + id_ * f)]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer`` after ``inner``.

    On plain floats: a still composes ~700 of these, under the interpreter lock, and stacking each
    into 3x3 numpy arrays took ~4.6 µs a call against ~1.5 (run alone).
    """
    (a, b, c), (d, e, f) = _rows(outer)
    (p, q, r), (s, t, u) = _rows(inner)
    return np.array([[a * p + b * s, a * q + b * t, a * r + b * u + c],
                     [d * p + e * s, d * q + e * t, d * r + e * u + f]])


def _rows(matrix: np.ndarray) -> list[list[float]]:
    """A 2x3 matrix's two rows as Python floats."""
    rows = np.asarray(matrix, dtype=np.float64).tolist()
    if len(rows) < 2 or len(rows[0]) != 3 or len(rows[1]) != 3:
        raise ValueError(f"expected a 2x3 affine matrix, got shape {np.shape(matrix)}")
    return rows[:2]


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map Nx2 (or Nx3: z scaled by the matrix's scale) points."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    out = pts.copy()
    out[..., :2] = pts[..., :2] @ m[:, :2].T + m[:, 2]
    if pts.shape[-1] == 3:
        out[..., 2] = pts[..., 2] * math.sqrt(abs(float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))
    return out


def to_index(matrix: np.ndarray) -> np.ndarray:
    """The same map between OpenCV pixel indices (centres at integers), for ``cv2.warpAffine``:
    ``x_out - 0.5 = M (x_in + 0.5)``, so the offset gains half the linear part's row sums less a half."""
    (a, b, c), (d, e, f) = _rows(matrix)
    return np.array([[a, b, c + 0.5 * (a + b) - 0.5], [d, e, f + 0.5 * (d + e) - 0.5]])


def upright(centre: tuple[float, float], roll: float, scale: float, out_centre: tuple[float, float],
            shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Image -> crop: undo ``roll`` (clockwise degrees) about ``centre``, scale, land on ``out_centre``.

    ``shift`` moves the crop window in the upright face's own frame (image pixels), e.g. toward the
    side a profile looks to.
    """
    t = math.radians(-roll)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    (x, y), (u, v), (dx, dy) = (map(float, centre), map(float, out_centre), map(float, shift))
    return np.array([[c, -s, u - (c * x - s * y) - scale * dx], [s, c, v - (s * x + c * y) - scale * dy]])


def scale_of(matrix: np.ndarray) -> float:
    m = np.asarray(matrix, dtype=np.float64)
    return math.sqrt(abs(float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


def footprint(matrix_inverse: np.ndarray, width: int, height: int, image_shape: tuple[int, ...],
              pad: int = 2) -> tuple[int, int, int, int] | None:
    """Integer ROI (x0, y0, x1, y1) of the image covered by a width x height crop, clipped; None if outside.

    The four corners on plain floats (~4 against ~20 µs through ``apply``): every warp asks for one, ~150 a still."""
    (a, b, c), (d, e, f) = _rows(matrix_inverse)
    xs = (c, a * width + c, b * height + c, a * width + b * height + c)
    ys = (f, d * width + f, e * height + f, d * width + e * height + f)
    x0 = max(math.floor(min(xs)) - pad, 0)
    y0 = max(math.floor(min(ys)) - pad, 0)
    x1 = min(math.ceil(max(xs)) + pad, image_shape[1])
    y1 = min(math.ceil(max(ys)) + pad, image_shape[0])
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1, y1)


def roll_of(right_eye: tuple[float, float], left_eye: tuple[float, float]) -> float:
    """Roll (clockwise degrees) of the line from the subject's right eye to their left eye."""
    return math.degrees(math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0]))


def wrap(angle: float) -> float:
    """Angle in (-180, 180]."""
    a = (angle + 180.0) % 360.0 - 180.0
    return 180.0 if a == -180.0 else a
