"""Temporal coherence in the face's aligned frame: where each crop pixel was one frame earlier.

The previous frame's bumped face is carried into the current aligned crop by the motion, and
blended into the img2img start where the motion is trusted. Two motion sources:

* renders: the renderer's motion (``FLOW_SUFFIX`` files: per image pixel, the offset to where it
  was in the previous frame), composed with both frames' crop transforms; exact, no estimation;
* footage: OpenCV's DIS optical flow between the two aligned *input* crops (the alignment already
  cancels most of the face's motion, so the residual flow is small), with a forward-backward check
  that marks occluded or unreliable pixels.

Either way a pixel is carried only where the previous *input*, moved by the motion, matches the
current input (``photometric_valid``): a flat object passing in front has a consistent flow but
is not the face.
"""

from __future__ import annotations

import cv2
import numpy as np

from bump_backend.faces import transform

FLOW_SIDE = 256  # crops are compared at this size (flow scaled back up): DIS cost stays flat with face_size
FB_TOLERANCE = 1.0  # forward-backward disagreement (px at FLOW_SIDE) above which a pixel counts as occluded
COLOUR_TOLERANCE = 24.0  # grey levels between a pixel and its warped source above which it is not the same surface


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _dis() -> cv2.DISOpticalFlow:
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis


def crop_flow(previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel of ``current`` (a square crop), its (x, y) index position in ``previous``, and a
    float mask (1 trusted, 0 occluded: the forward-backward check fails or it falls outside)."""
    size = current.shape[0]
    side = min(FLOW_SIDE, size)
    a = cv2.cvtColor(cv2.resize(current, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(cv2.resize(previous, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    dis = _dis()
    back = dis.calc(a, b, None)  # current -> previous
    fwd = dis.calc(b, a, None)  # previous -> current
    xs, ys = _grid(side)
    px, py = xs + back[..., 0], ys + back[..., 1]
    fx = cv2.remap(fwd[..., 0], px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fy = cv2.remap(fwd[..., 1], px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    error = np.hypot(back[..., 0] + fx, back[..., 1] + fy)
    valid = (error <= FB_TOLERANCE) & (px >= 0) & (py >= 0) & (px <= side - 1) & (py <= side - 1)
    k = size / side
    if side != size:
        back = cv2.resize(back, (size, size), interpolation=cv2.INTER_LINEAR) * k
        valid = cv2.resize(valid.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST).astype(bool)
    gx, gy = _grid(size)
    mapping = np.stack([gx + back[..., 0], gy + back[..., 1]], -1)
    return mapping, valid.astype(np.float32) * photometric_valid(previous, current, mapping)


def photometric_valid(previous: np.ndarray, current: np.ndarray, mapping: np.ndarray,
                      tolerance: float = COLOUR_TOLERANCE) -> np.ndarray:
    """1 where the previous input, carried by ``mapping``, matches the current input: what the flow's
    own consistency cannot see (something new and flat in front of the face, a disocclusion)."""
    warped = warp_previous(previous, mapping).astype(np.float32)
    diff = np.abs(warped - current.astype(np.float32)).mean(-1)
    diff = cv2.GaussianBlur(diff, (0, 0), 1.0)
    return (diff <= tolerance).astype(np.float32)


def motion_mapping(motion: np.ndarray, current_matrix: np.ndarray, previous_matrix: np.ndarray,
                   size: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop-to-crop mapping from the renderer's per-image backward motion and both crops' transforms
    (image -> crop, pixel-centre convention). Pixels whose source leaves the previous crop are not trusted."""
    xs, ys = _grid(size)
    points = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], -1)
    in_image = transform.apply(transform.invert(current_matrix), points)  # pixel-centre image coordinates
    ix = (in_image[:, 0] - 0.5).reshape(size, size).astype(np.float32)
    iy = (in_image[:, 1] - 0.5).reshape(size, size).astype(np.float32)
    mx = cv2.remap(motion[..., 0], ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    my = cv2.remap(motion[..., 1], ix, iy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    before = np.stack([in_image[:, 0] + mx.ravel(), in_image[:, 1] + my.ravel()], -1)
    in_prev = transform.apply(previous_matrix, before) - 0.5
    h, w = motion.shape[:2]
    inside = (ix >= 0) & (iy >= 0) & (ix <= w - 1) & (iy <= h - 1)
    mapping = in_prev.reshape(size, size, 2).astype(np.float32)
    valid = inside & (mapping[..., 0] >= 0) & (mapping[..., 1] >= 0) & (mapping[..., 0] <= size - 1) & (
        mapping[..., 1] <= size - 1)
    return mapping, valid.astype(np.float32)


def warp_previous(previous: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """The previous crop resampled at ``mapping`` (current crop's pixels -> previous crop's positions)."""
    return cv2.remap(previous, mapping[..., 0], mapping[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def blend_start(crop: np.ndarray, warped: np.ndarray, valid: np.ndarray, strength: float,
                feather: float = 0.02) -> np.ndarray:
    """The img2img start: ``strength`` of the warped previous result where the motion is trusted (a
    soft edge of ``feather`` x the crop side around occlusions), the current input elsewhere."""
    if strength <= 0:
        return crop
    sigma = max(0.5, feather * crop.shape[0])
    alpha = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), sigma) * np.float32(strength)
    alpha = np.minimum(alpha, valid * np.float32(strength) + 0.0)  # never trust an occluded pixel
    out = crop.astype(np.float32) * (1 - alpha[..., None]) + warped.astype(np.float32) * alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def image_flow(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Dense backward flow for whole frames (current pixel -> offset to the previous frame), DIS."""
    a = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY)
    return _dis().calc(a, b, None)
