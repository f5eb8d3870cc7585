"""Studio presets and the equirectangular HDRI they light with, generated in numpy.

The HDRI is written as Radiance RGBE (``.hdr``) by our own encoder: it works in Blender's Python
(no OpenCV there) and stores linear values as they are (bpy's own HDR writer sRGB-encodes them).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bump_contracts.atomic_io import write_bytes_atomic


@dataclass(frozen=True)
class AreaLight:
    """A soft light placed relative to the head (azimuth from the face, toward its left = +)."""

    name: str
    azimuth: float
    elevation: float
    distance: float
    size: float
    power_w: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class StudioPreset:
    name: str
    description: str
    horizon: float  # radiance at the horizon (linear)
    zenith: float
    nadir: float
    background: float  # what camera rays see (linear); 0.92 -> sRGB 246
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    key: tuple[float, float, float, float] | None = None  # azimuth, elevation, angular radius, gain
    lights: tuple[AreaLight, ...] = field(default_factory=tuple)
    strength: float = 1.0


STUDIOS: dict[str, StudioPreset] = {
    "almost_white": StudioPreset(
        name="almost_white",
        description="near-white, soft and even: the package default",
        horizon=0.72,
        zenith=0.9,
        nadir=0.4,
        background=0.92,
        key=(35.0, 35.0, 40.0, 0.5),
        lights=(AreaLight("key", 35.0, 30.0, 1.6, 1.2, 40.0),),
    ),
    "soft_key": StudioPreset(
        name="soft_key",
        description="white background, stronger key and softer fill for more facial shape",
        horizon=0.55,
        zenith=0.8,
        nadir=0.3,
        background=0.92,
        key=(40.0, 30.0, 30.0, 3.0),
        lights=(AreaLight("key", 40.0, 30.0, 1.5, 1.0, 120.0), AreaLight("fill", -50.0, 10.0, 1.8, 1.5, 35.0)),
    ),
    "grey": StudioPreset(
        name="grey",
        description="mid-grey seamless background, even light",
        horizon=0.9,
        zenith=1.1,
        nadir=0.5,
        background=0.22,
        key=(35.0, 35.0, 40.0, 0.6),
    ),
}


class StudioError(ValueError):
    """Unknown studio preset or unusable HDRI."""


def get_studio(name: str) -> StudioPreset:
    if name not in STUDIOS:
        raise StudioError(f"unknown studio {name!r}; presets: {', '.join(STUDIOS)}")
    return STUDIOS[name]


def equirect_directions(width: int, height: int) -> np.ndarray:
    """Unit world directions (Z up) of each pixel of an equirectangular map, as Blender samples it."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height  # file rows run top to bottom
    # Cycles: u = 0.5 - atan2(y, x) / 2pi, v(bottom-up) = 0.5 + elevation / pi
    phi, elevation = np.meshgrid((0.5 - u) * 2 * math.pi, (0.5 - v) * math.pi)
    x = np.cos(elevation) * np.cos(phi)
    y = np.cos(elevation) * np.sin(phi)
    z = np.sin(elevation)
    return np.stack([x, y, z], axis=-1)


def render_hdri(preset: StudioPreset, width: int = 512, height: int = 256, facing=(0.0, -1.0, 0.0)) -> np.ndarray:
    """Linear float32 RGB equirect map: sky gradient plus an optional soft key patch.

    ``facing`` is the character's facing direction, so the key patch stays on the same side of
    the face whatever way the character stands.
    """
    dirs = equirect_directions(width, height)
    z = dirs[..., 2]
    sky = np.where(
        z >= 0,
        preset.horizon + (preset.zenith - preset.horizon) * np.sqrt(np.clip(z, 0, 1)),
        preset.horizon + (preset.nadir - preset.horizon) * np.sqrt(np.clip(-z, 0, 1)),
    )
    image = sky[..., None] * np.asarray(preset.tint, dtype=np.float64)[None, None, :]
    if preset.key is not None:
        azimuth, elevation, radius, gain = preset.key
        key_dir = _direction_from_face(np.asarray(facing, dtype=float), azimuth, elevation)
        angle = np.degrees(np.arccos(np.clip(dirs @ key_dir, -1, 1)))
        image = image + gain * np.exp(-0.5 * (angle / (radius / 2)) ** 2)[..., None]
    return image.astype(np.float32)


def _direction_from_face(facing: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    facing = facing / np.linalg.norm(facing)
    up = np.array([0.0, 0.0, 1.0])
    left = np.cross(up, facing)
    if np.linalg.norm(left) < 1e-9:
        left = np.array([1.0, 0.0, 0.0])
    left /= np.linalg.norm(left)
    a, e = math.radians(azimuth), math.radians(elevation)
    horizontal = facing * math.cos(a) + left * math.sin(a)
    return horizontal * math.cos(e) + up * math.sin(e)


def light_position(head_centre, facing, light: AreaLight) -> np.ndarray:
    return np.asarray(head_centre, dtype=float) + _direction_from_face(
        np.asarray(facing, dtype=float), light.azimuth, light.elevation
    ) * light.distance


def encode_rgbe(image: np.ndarray) -> np.ndarray:
    """Float RGB -> RGBE bytes (Greg Ward's shared-exponent format)."""
    rgb = np.clip(np.asarray(image, dtype=np.float64), 0, None)
    brightest = rgb.max(axis=-1)
    mantissa, exponent = np.frexp(brightest)
    scale = np.where(brightest > 1e-32, mantissa * 256.0 / np.where(brightest > 1e-32, brightest, 1), 0)
    out = np.zeros(rgb.shape[:-1] + (4,), np.uint8)
    out[..., :3] = np.clip(rgb * scale[..., None], 0, 255).astype(np.uint8)
    out[..., 3] = np.where(brightest > 1e-32, np.clip(exponent + 128, 0, 255), 0).astype(np.uint8)
    return out


def decode_rgbe(rgbe: np.ndarray) -> np.ndarray:
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0)
    return (rgbe[..., :3].astype(np.float64) + 0.5) * scale[..., None] * (exponent > 0)[..., None]


def write_hdr(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a flat (uncompressed) Radiance .hdr file atomically."""
    path = Path(path)
    height, width = image.shape[:2]
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\nEXPOSURE=1.0\n\n-Y {height} +X {width}\n".encode("ascii")
    return write_bytes_atomic(path, header + encode_rgbe(image).tobytes())


def read_hdr(path: str | os.PathLike) -> np.ndarray:
    """Read a flat Radiance .hdr written by :func:`write_hdr` (no RLE)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"#?RADIANCE") and not data.startswith(b"#?RGBE"):
        raise StudioError(f"{path}: not a Radiance HDR file")
    head_end = data.index(b"\n\n") + 2
    line_end = data.index(b"\n", head_end)
    parts = data[head_end:line_end].split()
    height, width = int(parts[1]), int(parts[3])
    pixels = np.frombuffer(data[line_end + 1 :], np.uint8)
    if pixels.size != width * height * 4:
        raise StudioError(f"{path}: run-length encoded or truncated HDR; only flat files are read here")
    return decode_rgbe(pixels.reshape(height, width, 4))


_IMAGE_MAGIC = {
    b"\x76\x2f\x31\x01": "OpenEXR",
    b"\x89PNG": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def check_environment_image(path: str | os.PathLike) -> str:
    """Refuse a lighting image Blender could not load, before anything renders; returns its format.

    Cycles renders an unreadable environment image as magenta without failing, so a junk
    ``--hdri`` used to give a package of magenta faces and exit 0. Radiance files are checked in
    full (header, size line, pixel data: flat or run-length scanlines); other formats by their
    signature.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
            size = path.stat().st_size
    except OSError as exc:
        raise StudioError(f"HDRI {path}: cannot read it ({exc.strerror or exc})") from None
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        _check_radiance(path, head, size)
        return "Radiance HDR"
    for magic, name in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return name
    raise StudioError(f"HDRI {path}: not an image Blender can light with (expected .hdr, .exr, .png, .jpg or .tif)")


def _check_radiance(path: Path, head: bytes, size: int) -> None:
    end = head.find(b"\n\n")
    line_end = head.find(b"\n", end + 2) if end >= 0 else -1
    parts = head[end + 2 : line_end].split() if line_end >= 0 else []
    if len(parts) != 4 or parts[0] not in (b"-Y", b"+Y") or parts[2] not in (b"+X", b"-X"):
        raise StudioError(f"HDRI {path}: Radiance header without a size line like '-Y 512 +X 1024'")
    try:
        height, width = int(parts[1]), int(parts[3])
    except ValueError:
        raise StudioError(f"HDRI {path}: bad size line {head[end + 2 : line_end]!r}") from None
    if not (0 < width <= 65536 and 0 < height <= 65536):
        raise StudioError(f"HDRI {path}: size {width}x{height} is out of range")
    data = head[line_end + 1 :]
    run_length = data[:2] == b"\x02\x02" and 8 <= width < 32768
    if not run_length and size - (line_end + 1) < width * height * 4:
        raise StudioError(f"HDRI {path}: truncated ({size} bytes for {width}x{height} pixels)")
    if run_length and size - (line_end + 1) < height * 4:
        raise StudioError(f"HDRI {path}: truncated ({size} bytes for {height} scanlines)")
