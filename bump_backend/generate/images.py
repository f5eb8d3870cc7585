"""The pixels a bump works on: loading, hashing, and the work size (pure numpy/PIL, any thread).

The model needs sides that are multiples of 8 and at most ``max_side``; the user needs the
result at the input's exact size. :func:`working_image` gives the former, :func:`to_input_size`
maps a result back to the latter, and the sidecar's face geometry follows the image.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image


def image_sha256(image: np.ndarray) -> str:
    """Hash of the pixels (shape included), independent of how the PNG was compressed."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def load_rgb(image: str | Path | np.ndarray | Image.Image) -> np.ndarray:
    """An RGB uint8 array from a file, a PIL image or an array (grey and 16-bit converted)."""
    if isinstance(image, np.ndarray):
        array = image
    else:
        if isinstance(image, (str, Path)):
            with Image.open(image) as pil:
                image = pil.convert("RGB")
        array = np.asarray(image.convert("RGB"))
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.dtype == np.uint16:
        array = (array / 257.0 + 0.5).astype(np.uint8)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] < 3:
        raise ValueError(f"expected an RGB uint8 image, got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array[:, :, :3])


def working_size(width: int, height: int, max_side: int, multiple: int = 8) -> tuple[int, int]:
    """Scale down to ``max_side`` (never up) and round to the latent grid."""
    scale = min(1.0, max_side / max(width, height))
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    return w, h


def scale_sidecar(sidecar, width: int, height: int):
    """The sidecar's face geometry in the working image's pixels."""
    if sidecar is None or (sidecar.width, sidecar.height) == (width, height):
        return sidecar
    sx, sy = width / sidecar.width, height / sidecar.height

    def pt(p):
        return (p[0] * sx, p[1] * sy)

    faces = []
    for face in sidecar.faces:
        g = face.geometry
        b = g.face_box
        geometry = replace(g, head_centre=pt(g.head_centre), right_eye=pt(g.right_eye), left_eye=pt(g.left_eye),
                           face_box=(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy),
                           eye_distance_px=g.eye_distance_px * (sx + sy) / 2)
        faces.append(replace(face, geometry=geometry))
    return replace(sidecar, width=width, height=height, faces=tuple(faces))


def working_image(source: np.ndarray, max_side: int) -> np.ndarray:
    """The image the engine works on: scaled down to ``max_side`` and to multiples of 8 (pure, any thread)."""
    h0, w0 = source.shape[:2]
    width, height = working_size(w0, h0, max_side)
    if (width, height) == (w0, h0):
        return source
    return np.asarray(Image.fromarray(source).resize((width, height), Image.Resampling.LANCZOS))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """A float mask (0..1) at another size, bilinear (soft edges stay soft)."""
    if mask.shape[:2] == (height, width):
        return mask
    resized = Image.fromarray(np.asarray(mask, np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, np.float32), 0.0, 1.0)


def to_input_size(result: np.ndarray, source: np.ndarray, bumped: np.ndarray | None) -> np.ndarray:
    """The result at the input's exact size: the work-size result resampled there and pasted through
    ``bumped`` (work pixels, 1 where a pass changed the image; None = everywhere), so every pixel that
    no pass touched is the input's own. Unchanged when the work size is the input's size."""
    height, width = source.shape[:2]
    if result.shape[:2] == (height, width):
        return result
    up = np.asarray(Image.fromarray(result).resize((width, height), Image.Resampling.LANCZOS))
    if bumped is None:
        return up
    m = resize_mask(bumped, width, height)[:, :, None]
    return np.clip(up.astype(np.float32) * m + source.astype(np.float32) * (1.0 - m) + 0.5, 0, 255).astype(np.uint8)
