"""Character thumbnails for list views, made from the most frontal view of the active package.

Blender's Python has no image library, and ``png_io.read_png`` decodes filtered PNGs (what most
programs write) in pure Python, which takes seconds for 720x720. The library needs no image
library of its own (it runs the same in Blender, the command line and the backend), so it makes
thumbnails from unfiltered PNGs (what ``png_io`` writes for every rendered or imported package) and
otherwise none: the UI then shows the view file itself (:func:`thumbnail_source`).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from bump_contracts.package_manifest import PackageManifest
from profile_rig.imaging.contact_sheet import resize_area
from profile_rig.imaging.png_io import PNGError, read_png, write_png

THUMBNAIL_SIZE = 128


def thumbnail_source(package_path: Path, manifest: PackageManifest) -> Path:
    """The view closest to the front (smallest yaw, then pitch)."""
    view = min(manifest.views, key=lambda v: (abs(v.yaw) + 0.5 * abs(v.pitch), v.name))
    return package_path / view.file


def _png_unfiltered(path: Path) -> bool:
    """True when every row uses filter 0, so ``read_png`` decodes it with numpy alone."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, idat, header = 8, [], None
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8 : pos + 21])
        elif kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None or not idat:
        return False
    width, height, depth, color_type, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color_type)
    if channels is None or interlace or depth not in (8, 16):
        return False
    stride = width * channels * depth // 8 + 1
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error:
        return False
    return raw.size == stride * height and not raw[::stride].any()


def load_pixels(path: Path) -> np.ndarray | None:
    """RGB(A) pixels of an unfiltered PNG; None for any other file (no fast decoder for it here)."""
    try:
        return read_png(path) if _png_unfiltered(path) else None
    except (OSError, PNGError):
        return None


def write_thumbnail(package_path: Path, manifest: PackageManifest, dest: Path) -> bool:
    """Write ``dest`` from the most frontal view; on failure remove a stale one and return False."""
    pixels = load_pixels(thumbnail_source(package_path, manifest))
    if pixels is None:
        dest.unlink(missing_ok=True)
        return False
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float64) / (65535.0 if pixels.dtype == np.uint16 else 255.0)
        top = 65535.0 if pixels.dtype == np.uint16 else 255.0
        pixels = (pixels[:, :, :3] * alpha + top * (1 - alpha)).astype(pixels.dtype)
    write_png(dest, resize_area(pixels, THUMBNAIL_SIZE))
    return True
