"""Safe image loading: every awkward input gives RGB uint8 or one clear ImageError."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bump_backend.faces import ImageError, load_image


def png_header_only(path, width, height):
    """A tiny PNG whose header claims width x height (nothing real behind it)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_and_grey(tmp_path):
    import cv2

    rgb16 = np.zeros((20, 30, 3), np.uint16)
    rgb16[..., 0] = 65535  # red in RGB order
    rgb16[..., 2] = 257 * 100
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])
    out = load_image(tmp_path / "rgb16.png")
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    assert tuple(out[0, 0]) == (255, 0, 100)
    grey16 = np.full((20, 30), 257 * 77, np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    assert tuple(load_image(tmp_path / "g16.png")[5, 5]) == (77, 77, 77)


def test_rgba_grey_and_palette(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:10, :, 3] = 255  # top half opaque red, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[-1, -1]) == (255, 255, 255)
    Image.fromarray(np.full((20, 20), 9, np.uint8), "L").save(tmp_path / "l.png")
    assert tuple(load_image(tmp_path / "l.png")[0, 0]) == (9, 9, 9)
    Image.fromarray(np.full((20, 20, 3), 40, np.uint8)).convert("P").save(tmp_path / "p.gif")
    assert load_image(tmp_path / "p.gif").shape == (20, 20, 3)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path):
    array = np.zeros((40, 60, 3), np.uint8)
    array[:, :10] = 255  # white stripe on the stored image's left
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # stored turned: viewers rotate 90° clockwise
    image.save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (60, 40, 3)
    assert out[:10].mean() > 200 and out[-10:].mean() < 50  # the stripe is now on top


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b"not an image at all"), "not an image"),
        (lambda p: Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(p, format="PNG"), "too small"),
        (lambda p: png_header_only(p, 30000, 30000), "MP"),
        (lambda p: p.write_bytes(b""), "not an image"),
    ],
)
def test_bad_inputs_raise_clear_errors(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_truncated_missing_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    assert issubclass(ImageError, ValueError)
