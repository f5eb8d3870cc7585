"""Safe image loading: size checked from the header before decoding, every mode turned into RGB uint8.

Renders come as 16-bit PNGs, cut-outs as RGBA, scans as greyscale, phone photos as EXIF-rotated
JPEGs; a 30000x30000 PNG of a few kilobytes must not be decoded into 2.7 GB.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")  # what a folder is searched for
MAX_PIXELS = 64_000_000  # ~8000x8000; the bump path scales to 1440 px anyway
MIN_SIDE = 16


class ImageError(ValueError):
    """An input that is not a usable image; the message says why in one line."""


def _to_rgb8(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(image).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or data.max() > 255 else 255.0
        grey = np.clip(data / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        data = np.asarray(image).astype(np.float64)
        top = 1.0 if np.nanmax(data) <= 1.0 else 255.0
        grey = np.clip(np.nan_to_num(data) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        flat.alpha_composite(rgba)
        return np.asarray(flat.convert("RGB"))
    return np.asarray(image.convert("RGB"))


def image_paths(inputs: list[str]) -> list[str]:
    """Files and folders (their images with IMAGE_SUFFIXES, sorted, not recursive) -> image paths, in order.

    Every header is checked here (missing, not an image, too small or too large) so a batch fails
    before any model loads, never halfway through: one ImageError that names every bad file.
    """
    paths: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item)
                           if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(item, n)))
            if not found:
                raise ImageError(f"{item}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        else:
            paths.append(item)
    problems = []
    for path in paths:
        try:
            check_header(path)
        except ImageError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise ImageError(problems[0])
    if problems:
        raise ImageError(f"{len(problems)} of {len(paths)} images cannot be searched:\n  " + "\n  ".join(problems))
    return paths


def check_header(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> tuple[int, int]:
    """(width, height) read from the header only; ImageError for anything ``load_image`` would refuse up front."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a folder, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(name) as image:
                width, height = image.size
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unknown or unsupported format)") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: above the {max_pixels / 1e6:.0f} MP limit, refused before decoding ({exc})") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot read ({exc})") from None
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} MP, above the "
                         f"{max_pixels / 1e6:.0f} MP limit; scale it down first")
    if min(width, height) < min_side:
        raise ImageError(f"{name}: {width}x{height} is too small to hold a face (at least {min_side} px a side)")
    return width, height


def load_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE,
               background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """HxWx3 uint8 RGB, upright per EXIF; transparency is composited over ``background`` (white studio).

    Raises ImageError for a missing, unreadable, truncated, tiny or oversized file.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise ImageError(f"{name}: no such file")
    if os.path.isdir(name):
        raise ImageError(f"{name}: is a folder, not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(name) as image:
                width, height = image.size  # from the header: nothing decoded yet
                if width * height > max_pixels:
                    raise ImageError(
                        f"{name}: {width}x{height} is {width * height / 1e6:.0f} MP, above the {max_pixels / 1e6:.0f} MP "
                        "limit; scale it down first")
                if min(width, height) < min_side:
                    raise ImageError(f"{name}: {width}x{height} is too small to hold a face (at least {min_side} px a side)")
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = _to_rgb8(upright, background)
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (unknown or unsupported format)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{name}: above the {max_pixels / 1e6:.0f} MP limit, refused before decoding ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: cannot decode ({exc}); the file may be truncated or corrupt") from None
        except MemoryError:
            raise ImageError(f"{name}: not enough memory to decode it") from None
    return np.ascontiguousarray(rgb)


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB uint8 (or a float 0..1 / uint8 greyscale mask) as PNG or JPEG by extension."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array.astype(np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    name = os.fspath(path)
    try:
        folder = os.path.dirname(name)
        if folder:
            os.makedirs(folder, exist_ok=True)
        Image.fromarray(array).save(name)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageError(f"cannot write {name}: {exc}") from None
