"""2x3 affine maths in pixel-centre coordinates (pure numpy, no OpenCV state).

Every matrix in the face pipeline maps continuous image coordinates where pixel (i, j) covers
[i, i+1) x [j, j+1) and its centre is (i + 0.5, j + 0.5): the convention of the render sidecar.
OpenCV's warps index pixel centres at integers, so ``to_index`` converts just before a warp.
"""

from __future__ import annotations

import math

import numpy as np

_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_MINUS_HALF = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def to3(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Exact inverse of a 2x3 affine matrix (raises for a singular one).

    Closed form: ``np.linalg.inv`` on a 2x2 goes through LAPACK and cost ~2 ms a call on the busy
    machine (55 calls per 1440 px image).
    """
    m = np.asarray(matrix, dtype=np.float64)
    a, b, c, d = float(m[0, 0]), float(m[0, 1]), float(m[1, 0]), float(m[1, 1])
    det = a * d - b * c
    if abs(det) < 1e-12:
        raise ValueError("the transform is singular (zero scale)")
    inv = np.array([[d / det, -b / det], [-c / det, a / det]])
    return np.hstack([inv, (-inv @ m[:, 2])[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer`` after ``inner``."""
    return (to3(outer) @ to3(inner))[:2]


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
    """The same map between OpenCV pixel indices (centres at integers), for ``cv2.warpAffine``."""
    return (_MINUS_HALF @ to3(matrix) @ _HALF)[:2]


def upright(centre: tuple[float, float], roll: float, scale: float, out_centre: tuple[float, float],
            shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Image -> crop: undo ``roll`` (clockwise degrees) about ``centre``, scale, land on ``out_centre``.

    ``shift`` moves the crop window in the upright face's own frame (image pixels), e.g. toward the
    side a profile looks to.
    """
    t = math.radians(-roll)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    linear = np.array([[c, -s], [s, c]])
    offset = np.asarray(out_centre, float) - linear @ np.asarray(centre, float) - scale * np.asarray(shift, float)
    return np.hstack([linear, offset[:, None]])


def scale_of(matrix: np.ndarray) -> float:
    m = np.asarray(matrix, dtype=np.float64)
    return math.sqrt(abs(float(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


def footprint(matrix_inverse: np.ndarray, width: int, height: int, image_shape: tuple[int, ...],
              pad: int = 2) -> tuple[int, int, int, int] | None:
    """Integer ROI (x0, y0, x1, y1) of the image covered by a width x height crop, clipped; None if outside."""
    corners = apply(matrix_inverse, np.array([[0, 0], [width, 0], [0, height], [width, height]], float))
    x0 = max(int(math.floor(corners[:, 0].min())) - pad, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - pad, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + pad, image_shape[1])
    y1 = min(int(math.ceil(corners[:, 1].max())) + pad, image_shape[0])
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
