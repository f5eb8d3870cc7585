"""Put processed face crops back: inverse warp of the face region only, blended through the mask."""

from __future__ import annotations

import cv2
import numpy as np

from bump_backend.faces import transform
from bump_backend.faces.align import warp
from bump_backend.faces.types import AlignedFace


def _to_region(aligned: AlignedFace, image_shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    h, w = aligned.mask.shape
    roi = transform.footprint(aligned.inverse, w, h, image_shape)
    if roi is None:
        return None
    x0, y0, _, _ = roi
    return roi, transform.compose(np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), aligned.inverse)


def _mask_in_region(aligned: AlignedFace, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = warp(aligned.mask, matrix, size, interpolation=cv2.INTER_LINEAR, border=cv2.BORDER_CONSTANT)
    return np.clip(mask, 0.0, 1.0, out=mask)


def match_colour(processed: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift ``processed``'s Lab mean and spread inside ``mask`` to those of ``reference``."""
    weight = mask > 0.5
    if weight.sum() < 16:
        return processed
    src = cv2.cvtColor(processed, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    out = src.copy()
    for c in range(3):
        s, r = src[:, :, c][weight], ref[:, :, c][weight]
        gain = (r.std() + 1e-3) / (s.std() + 1e-3)
        out[:, :, c] = (src[:, :, c] - s.mean()) * min(max(gain, 0.5), 2.0) + r.mean()
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def paste_back(image: np.ndarray, aligned: AlignedFace, processed_crop: np.ndarray, *,
               color_match: bool = False) -> np.ndarray:
    """A copy of ``image`` with ``processed_crop`` warped back through the face mask.

    Pixels where the warped mask is 0 are bit-identical to ``image``. A processed crop of another
    size (a generator's output) is resized to the aligned crop first.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    processed = np.asarray(processed_crop)
    if processed.ndim != 3 or processed.shape[2] != 3 or processed.dtype != np.uint8:
        raise ValueError(f"processed crop must be HxWx3 uint8, got {processed.shape} {processed.dtype}")
    h, w = aligned.mask.shape
    if processed.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if processed.shape[0] > h else cv2.INTER_CUBIC
        processed = cv2.resize(processed, (w, h), interpolation=interp)
    if color_match:
        processed = match_colour(processed, aligned.crop, aligned.mask)
    out = image.copy()
    placed = _to_region(aligned, image.shape)
    if placed is None:
        return out
    (x0, y0, x1, y1), matrix = placed
    size = (x1 - x0, y1 - y0)
    mask = _mask_in_region(aligned, matrix, size)
    inside = mask > 0
    if not inside.any():
        return out
    pixels = warp(processed, matrix, size, border=cv2.BORDER_REPLICATE).astype(np.float32)
    region = out[y0:y1, x0:x1]
    m = mask[:, :, None]
    blended = np.clip(region.astype(np.float32) * (1 - m) + pixels * m + 0.5, 0, 255).astype(np.uint8)
    region[inside] = blended[inside]
    return out


def combined_mask(image_shape: tuple[int, ...], aligned_faces: list[AlignedFace]) -> np.ndarray:
    """float32 HxW mask of all faces in image space (maximum where faces overlap)."""
    h, w = image_shape[:2]
    out = np.zeros((h, w), np.float32)
    for aligned in aligned_faces:
        placed = _to_region(aligned, out.shape)
        if placed is None:
            continue
        (x0, y0, x1, y1), matrix = placed
        np.maximum(out[y0:y1, x0:x1], _mask_in_region(aligned, matrix, (x1 - x0, y1 - y0)),
                   out=out[y0:y1, x0:x1])
    return out
