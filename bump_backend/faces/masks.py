"""Face-shaped, feathered masks in crop space, person segmentation, and background removal.

Only models that ship with mediapipe are used (FacePop's MODNet weights are non-commercial).
"""

from __future__ import annotations

import cv2
import numpy as np

from bump_backend.faces import runtime


def _border_fade(size: int, width: float) -> np.ndarray:
    """1 inside, falling to 0 at the crop's edge, so a pasted crop never shows its border."""
    ramp = np.clip(np.arange(size, dtype=np.float32) / max(width, 1.0), 0, 1)  # edge pixel exactly 0
    ramp = np.minimum(ramp, ramp[::-1])
    return np.minimum(ramp[:, None], ramp[None, :])


def face_mask(size: int, landmarks: np.ndarray | None, centre: tuple[float, float], face_side: float, *,
              feather: float = 0.08, grow: float = 0.0) -> np.ndarray:
    """float32 size x size mask: the face-mesh hull (or an ellipse without landmarks), grown and feathered.

    ``feather`` and ``grow`` are fractions of the crop side; the result is 0 at the crop's border.
    """
    shape = np.zeros((size, size), np.uint8)
    sub = 4  # sub-pixel precision for the polygon edge
    if landmarks is not None and len(landmarks) >= 3:
        hull = cv2.convexHull(np.round(np.asarray(landmarks)[:, :2] * (1 << sub)).astype(np.int32))
        cv2.fillConvexPoly(shape, hull, 255, cv2.LINE_AA, sub)
    else:
        axes = (round(0.5 * face_side * (1 << sub)), round(0.6 * face_side * (1 << sub)))
        c = (round(centre[0] * (1 << sub)), round(centre[1] * (1 << sub)))
        cv2.ellipse(shape, c, axes, 0, 0, 360, 255, -1, cv2.LINE_AA, sub)
    mask = shape.astype(np.float32) / 255.0
    radius = int(round(abs(grow) * size))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.dilate(mask, kernel) if grow > 0 else cv2.erode(mask, kernel)
    sigma = feather * size / 3
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    fade = _border_fade(size, max(2.0, 2.0 * sigma))
    return np.clip(mask * fade, 0.0, 1.0).astype(np.float32)


def person_mask(crop: np.ndarray) -> np.ndarray:
    """float32 mask of the person (head, hair, shoulders) in an RGB uint8 crop: mediapipe selfie segmentation."""
    result = runtime.selfie_segmenter().process(np.ascontiguousarray(crop))
    if result.segmentation_mask is None:
        return np.zeros(crop.shape[:2], np.float32)
    return np.clip(result.segmentation_mask.astype(np.float32), 0.0, 1.0)


def remove_background(crop: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """The crop composited over a flat ``colour`` through ``mask`` (e.g. ``person_mask(crop)``)."""
    m = np.asarray(mask, np.float32)[:, :, None]
    out = crop.astype(np.float32) * m + np.asarray(colour, np.float32) * (1 - m)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
