import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profile_rig.core.studio_hdri import (
    STUDIOS,
    decode_rgbe,
    encode_rgbe,
    equirect_directions,
    read_hdr,
    render_hdri,
    write_hdr,
)
from profile_rig.imaging.contact_sheet import label_lines, make_contact_sheet, resize_area
from profile_rig.imaging.png_io import PNGError, read_png, write_png


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_and_opencv_agrees(tmp_path, channels, dtype):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, np.iinfo(dtype).max, size=(7, 11, channels), dtype=dtype)
    path = tmp_path / "x.png"
    write_png(path, image, text={"parameters": "hello"})
    assert np.array_equal(read_png(path), image)
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if channels == 1:
        decoded = decoded[:, :, None]
    elif channels == 3:
        decoded = decoded[:, :, ::-1]
    else:
        decoded = decoded[:, :, [2, 1, 0, 3]]
    assert np.array_equal(decoded, image)


def test_png_reader_handles_filtered_files_from_other_writers(tmp_path):
    image = (np.arange(5 * 6 * 3).reshape(5, 6, 3) * 7 % 256).astype(np.uint8)
    path = tmp_path / "cv.png"
    cv2.imwrite(str(path), image[:, :, ::-1])  # OpenCV uses adaptive filters
    assert np.array_equal(read_png(path), image)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(PNGError):
        read_png(tmp_path / "bad.png")


def test_contact_sheet_tiles_and_labels():
    images = [np.full((64, 64, 3), v, np.uint8) for v in (0, 128, 255)]
    sheet = make_contact_sheet(images, ["front", "left", "right"], tile=100, title="demo")
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert (sheet == 0).any() and (sheet == 255).any()
    with pytest.raises(ValueError):
        make_contact_sheet(images, ["one"])


def test_contact_sheet_long_labels_wrap_instead_of_being_cut():
    """A view name and its angles wider than the tile go on a second line (they used to be cut)."""
    lines = label_lines("three_quarter_left +45/+0", 20)
    assert lines == ["three_quarter_left", "+45/+0"]
    images = [np.full((64, 64, 3), 200, np.uint8)] * 2
    short = make_contact_sheet(images, ["front", "up"], tile=240)
    wrapped = make_contact_sheet(images, ["front", "three_quarter_left +45/+0"], tile=240)
    assert wrapped.shape[0] > short.shape[0]  # room for the second line
    first_top = 6 + 240 + 4  # gap, tile, padding
    second_line = wrapped[first_top + 18 : first_top + 18 + 14, 6 + 246 : 6 + 246 + 240]
    assert (second_line == 0).any()  # "+45/+0" drawn under the name


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ +-/0123456789", max_size=60), st.integers(1, 40))
def test_label_lines_fit_the_tile(label, max_chars):
    lines = label_lines(label, max_chars)
    assert 1 <= len(lines) <= 2 and all(len(line) <= max_chars for line in lines)
    if len(label.strip()) <= max_chars:
        assert lines == [label.strip()]
    elif "".join(lines).replace(" ", "") == label.replace(" ", ""):
        assert not lines[-1].endswith("..") or label.replace(" ", "").endswith("..")


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(4, 32))
def test_resize_area_preserves_flat_colour(h, w, size):
    image = np.full((h, w, 3), 77, np.uint8)
    out = resize_area(image, size)
    assert out.shape == (size, size, 3)
    if h == w:
        assert (out == 77).all()


def test_rgbe_round_trip_and_opencv_reads_our_hdr(tmp_path):
    image = render_hdri(STUDIOS["almost_white"], 64, 32)
    assert np.allclose(decode_rgbe(encode_rgbe(image)), image, rtol=0.01, atol=1e-6)
    path = write_hdr(tmp_path / "s.hdr", image)
    ours = read_hdr(path)
    theirs = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.allclose(theirs, image, rtol=0.01)
    assert np.allclose(ours, image, rtol=0.01)


def test_equirect_mapping_follows_cycles_convention():
    dirs = equirect_directions(8, 4)
    # u = 0.5 - atan2(y, x) / 2pi  ->  column centre of u=0.5 looks along +X
    u = 0.5 - np.arctan2(dirs[..., 1], dirs[..., 0]) / (2 * np.pi)
    expected_u = (np.arange(8) + 0.5) / 8
    assert np.allclose(np.mod(u, 1.0), expected_u[None, :])
    assert (dirs[0, :, 2] > 0).all() and (dirs[-1, :, 2] < 0).all()  # top rows are the sky


def test_white_studio_is_bright_and_even():
    image = render_hdri(STUDIOS["almost_white"], 128, 64)
    luminance = image.mean(axis=-1)
    assert luminance.min() > 0.3
    assert luminance.max() / np.median(luminance) < 3.0  # soft key, no hard sun
