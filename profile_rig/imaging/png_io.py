"""Minimal PNG writing and reading with numpy + zlib.

Blender's Python has numpy but neither Pillow nor OpenCV; the package writer and the contact
sheet must work there too. Writes 8- or 16-bit grey/RGB/RGBA; reads the non-interlaced files
that Blender and this module write.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from bump_contracts.atomic_io import write_bytes_atomic

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


class PNGError(ValueError):
    """The file is not a PNG this module can read."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray, text: dict[str, str] | None = None, level: int = 6) -> bytes:
    """PNG bytes of an HxW or HxWxC (C in 1..4) uint8/uint16 array."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in _COLOR_TYPES:
        raise ValueError(f"expected HxW or HxWxC with C in 1..4, got shape {array.shape}")
    if array.dtype == np.uint8:
        depth = 8
    elif array.dtype == np.uint16:
        depth = 16
        array = array.astype(">u2")
    else:
        raise ValueError(f"expected uint8 or uint16 pixels, got {array.dtype}")
    height, width, channels = array.shape
    raw = np.ascontiguousarray(array).view(np.uint8).reshape(height, -1)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), raw], axis=1)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, depth, _COLOR_TYPES[channels], 0, 0, 0)
    body = _SIGNATURE + _chunk(b"IHDR", header)
    for key, value in (text or {}).items():
        body += _chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace"))
    body += _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b"")
    return body


def write_png(path: str | os.PathLike, image: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Write atomically: a crash never leaves a truncated PNG under the final name."""
    write_bytes_atomic(path, encode_png(image, text))


def _unfilter(data: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo PNG row filters. Sub/Avg/Paeth depend on the left pixel, so those rows loop in Python."""
    out = np.zeros((height, stride), np.uint8)
    buf = np.frombuffer(data, np.uint8)
    if buf.size != height * (stride + 1):
        raise PNGError("PNG data is truncated or has an unexpected size")
    rows = buf.reshape(height, stride + 1)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        kind = rows[y, 0]
        line = rows[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 2:
            cur = (line + prev) & 0xFF
        else:
            cur = np.zeros(stride, np.int32)
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b = prev[x]
                c = prev[x - bpp] if x >= bpp else 0
                if kind == 1:
                    pred = a
                elif kind == 3:
                    pred = (a + b) >> 1
                elif kind == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                else:
                    raise PNGError(f"unknown PNG filter type {kind}")
                cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    return out


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a non-interlaced grey/RGB/RGBA PNG (uint8 or uint16). Slow for filtered files."""
    data = Path(path).read_bytes()
    if not data.startswith(_SIGNATURE):
        raise PNGError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        if pos + 8 > len(data):
            raise PNGError(f"{path}: truncated chunk")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        payload = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat.append(payload)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise PNGError(f"{path}: missing IHDR or IDAT")
    width, height, depth, color_type, _, _, interlace = header
    channels = {v: k for k, v in _COLOR_TYPES.items()}.get(color_type)
    if channels is None or depth not in (8, 16) or interlace:
        raise PNGError(f"{path}: unsupported PNG (colour type {color_type}, depth {depth}, interlace {interlace})")
    bpp = channels * depth // 8
    raw = _unfilter(zlib.decompress(b"".join(idat)), height, width * bpp, bpp)
    if depth == 16:
        return raw.view(">u2").astype(np.uint16).reshape(height, width, channels)
    return raw.reshape(height, width, channels)
