"""Read uncompressed OpenEXR files (single- or multi-part scanline, as Blender writes multilayer
renders with codec NONE) into numpy, without OpenImageIO or OpenEXR bindings (neither ships with
the ``bpy`` module). Enough for render passes: half and float channels, one line per chunk.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = 20000630
_PIXEL_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}


class ExrError(ValueError):
    """Not an EXR this reader handles (the message says why)."""


def _header(data: bytes, i: int) -> tuple[dict[str, tuple[str, bytes]], int]:
    attributes = {}
    while True:
        end = data.index(b"\0", i)
        name = data[i:end].decode("ascii")
        i = end + 1
        if not name:
            return attributes, i
        end = data.index(b"\0", i)
        kind = data[i:end].decode("ascii")
        (size,) = struct.unpack_from("<i", data, end + 1)
        attributes[name] = (kind, data[end + 5 : end + 5 + size])
        i = end + 5 + size


def _channels(raw: bytes) -> list[tuple[str, np.dtype]]:
    out, i = [], 0
    while raw[i] != 0:
        end = raw.index(b"\0", i)
        name = raw[i:end].decode("ascii")
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", raw, end + 1)
        if (x_sampling, y_sampling) != (1, 1) or pixel_type not in _PIXEL_TYPES:
            raise ExrError(f"channel {name}: subsampled or unknown pixel type")
        out.append((name, _PIXEL_TYPES[pixel_type]))
        i = end + 1 + 16
    return out


def read_exr(path: str | Path) -> dict[str, np.ndarray]:
    """Every channel by its full name (``ViewLayer.Vector.X``) as a (H, W) float32 array, top row first."""
    data = Path(path).read_bytes()
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != MAGIC:
        raise ExrError(f"{path}: not an OpenEXR file")
    (version,) = struct.unpack_from("<i", data, 4)
    if version & 0x200 or version & 0x800:
        raise ExrError(f"{path}: tiled or deep EXR")
    multipart = bool(version & 0x1000)
    headers, i = [], 8
    while True:
        header, i = _header(data, i)
        headers.append(header)
        if not multipart or data[i] == 0:
            i += 1 if multipart else 0
            break
    parts = []
    for header in headers:
        if header.get("compression", ("", b"\0"))[1] != b"\0":
            raise ExrError(f"{path}: compressed EXR (write it with codec NONE)")
        x0, y0, x1, y1 = struct.unpack("<4i", header["dataWindow"][1])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        chunks = struct.unpack("<i", header["chunkCount"][1])[0] if "chunkCount" in header else height
        parts.append((_channels(header["channels"][1]), width, height, y0, chunks))
    offsets = []
    for *_, chunks in parts:
        offsets.append(struct.unpack_from(f"<{chunks}Q", data, i))
        i += 8 * chunks
    result: dict[str, np.ndarray] = {}
    for index, (channels, width, height, y0, _) in enumerate(parts):
        planes = {name: np.empty((height, width), np.float32) for name, _ in channels}
        for offset in offsets[index]:
            pos = offset + (4 if multipart else 0)
            y, size = struct.unpack_from("<ii", data, pos)
            pos += 8
            for name, dtype in channels:
                values = np.frombuffer(data, dtype, width, pos)
                planes[name][y - y0] = values
                pos += width * dtype.itemsize
        result.update(planes)
    return result
