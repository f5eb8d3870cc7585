"""Input images: type from magic bytes, size from the header (before any decoding), then decoding.

A 30000x30000 PNG of a few kilobytes is refused from its header; only PNG, JPEG, WebP and
OpenEXR are accepted, whatever the file name says. EXR (a Blender render) is linear light: it is
composited over white (premultiplied alpha) and encoded to sRGB 8-bit, as the bump works in sRGB.
"""

from __future__ import annotations

import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bump_contracts.bump_job import IMAGE_TYPES, sniff_image_type

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class InputImageError(ValueError):
    """An input image that is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422, code: str = "bad_image") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def exr_size(path: Path) -> tuple[int, int]:
    """Width and height from an OpenEXR header's ``dataWindow`` (reads at most 64 kB)."""
    with open(path, "rb") as handle:
        head = handle.read(65536)
    pos = 8
    while pos < len(head):
        end = head.find(b"\0", pos)
        if end < 0 or end == pos:
            break
        name = head[pos:end]
        tend = head.find(b"\0", end + 1)
        if tend < 0 or tend + 5 > len(head):
            break
        kind = head[end + 1:tend]
        (size,) = struct.unpack_from("<i", head, tend + 1)
        value_at = tend + 5
        if size < 0 or value_at + size > len(head):
            break
        if name == b"dataWindow" and kind == b"box2i" and size == 16:
            x0, y0, x1, y1 = struct.unpack_from("<iiii", head, value_at)
            return x1 - x0 + 1, y1 - y0 + 1
        pos = value_at + size
    raise InputImageError(f"{path.name}: EXR header has no readable dataWindow")


def inspect_image(path: Path, *, max_pixels: int, min_side: int, what: str = "image") -> tuple[str, int, int]:
    """(type, width, height) of an upload, without decoding its pixels; raises InputImageError."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    kind = sniff_image_type(head)
    if kind is None:
        raise InputImageError(f"{what}: not a PNG, JPEG, WebP or EXR file (accepted: {', '.join(IMAGE_TYPES)})",
                              415, "unsupported_type")
    if kind == "exr":
        width, height = exr_size(path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                with Image.open(path, formats=[PIL_FORMATS[kind]]) as image:
                    width, height = image.size
            except Image.DecompressionBombError as exc:
                raise InputImageError(f"{what}: refused before decoding as a decompression bomb ({exc})", 413,
                                      "too_many_pixels") from None
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                reason = str(exc).replace(str(path), "the upload")  # never the server's own paths
                raise InputImageError(f"{what}: unreadable {kind.upper()} header ({reason})") from None
    if width <= 0 or height <= 0:
        raise InputImageError(f"{what}: invalid size {width}x{height}")
    if width * height > max_pixels:
        raise InputImageError(f"{what}: {width}x{height} is {width * height / 1e6:.1f} MP, above the server's "
                              f"{max_pixels / 1e6:.1f} MP limit (refused before decoding); scale it down", 413,
                              "too_many_pixels")
    if min(width, height) < min_side:
        raise InputImageError(f"{what}: {width}x{height} is too small (at least {min_side} px a side)")
    return kind, width, height


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def decode_exr(path: Path) -> np.ndarray:
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read by OpenCV when it first opens an EXR
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputImageError(f"{path.name}: cannot decode this EXR (corrupt, or OpenEXR support missing)")
    data = data.astype(np.float32)
    if data.ndim == 2:
        data = np.repeat(data[:, :, None], 3, axis=2)
    if data.shape[2] == 4:
        rgb, alpha = data[:, :, 2::-1], np.clip(data[:, :, 3:4], 0.0, 1.0)
        rgb = rgb + (1.0 - alpha)  # premultiplied over a white studio
    else:
        rgb = data[:, :, 2::-1] if data.shape[2] >= 3 else np.repeat(data[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(np.round(_linear_to_srgb(rgb) * 255.0).astype(np.uint8))


def decode_image(path: Path, kind: str, *, max_pixels: int, min_side: int) -> np.ndarray:
    """HxWx3 uint8 sRGB; EXIF orientation applied, transparency over white."""
    if kind == "exr":
        return decode_exr(path)
    from bump_backend.faces.image_io import ImageError, load_image

    try:
        return load_image(path, max_pixels=max_pixels, min_side=min_side)
    except ImageError as exc:
        raise InputImageError(str(exc).replace(str(path), path.name)) from None
