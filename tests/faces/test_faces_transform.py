"""Property tests for the transform maths: exact inverses, upright crops, the quarter-turn maps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import transform
from bump_backend.faces.detect import rot90_back
from bump_backend.faces.types import rotated_square_bounds, upright_side

coords = st.floats(-5000, 5000, allow_nan=False)
rolls = st.floats(-180, 180, allow_nan=False)
scales = st.floats(0.01, 100, allow_nan=False)


@given(coords, coords, rolls, scales, coords, coords)
def test_upright_inverse_is_exact(cx, cy, roll, scale, ox, oy):
    m = transform.upright((cx, cy), roll, scale, (ox, oy))
    inv = transform.invert(m)
    pts = np.array([[cx, cy], [cx + 10, cy - 3], [0.0, 0.0]])
    back = transform.apply(inv, transform.apply(m, pts))
    assert np.allclose(back, pts, atol=1e-6 * max(1.0, np.abs(pts).max()) / min(scale, 1.0))
    assert np.allclose(transform.compose(m, inv), [[1, 0, 0], [0, 1, 0]], atol=1e-9 * max(1, abs(ox), abs(oy)) / min(scale, 1))


@given(rolls, scales)
def test_upright_undoes_roll(roll, scale):
    # A face rolled clockwise by `roll`: its "up" direction in the image is (sin, -cos).
    centre = (300.0, 200.0)
    t = math.radians(roll)
    top_of_head = (centre[0] + 50 * math.sin(t), centre[1] - 50 * math.cos(t))
    m = transform.upright(centre, roll, scale, (64.0, 64.0))
    c, top = transform.apply(m, np.array([centre, top_of_head]))
    assert np.allclose(c, (64, 64), atol=1e-6)
    assert abs(top[0] - 64) < 1e-6 * scale * 50 + 1e-6 and top[1] < 64


@given(st.floats(1, 500), rolls)
def test_rotated_square_bounds_round_trip(side, roll):
    box = rotated_square_bounds((100.0, 50.0), side, roll)
    assert math.isclose(upright_side(box, roll), side, rel_tol=1e-9)


@given(st.integers(0, 3), st.integers(1, 9), st.integers(1, 9))
@settings(max_examples=60)
def test_rot90_back_maps_pixel_centres(k, w, h):
    index = np.arange(w * h).reshape(h, w)
    rotated = np.rot90(index, k)
    back = rot90_back(k, w, h)
    rh, rw = rotated.shape
    for v in range(rh):
        for u in range(rw):
            x, y = transform.apply(back, np.array([[u + 0.5, v + 0.5]]))[0]
            assert index[int(math.floor(y)), int(math.floor(x))] == rotated[v, u]


@given(st.floats(-40, 40), st.floats(-40, 40), rolls, st.floats(0.5, 2.5))
@settings(max_examples=20, deadline=None)
def test_to_index_matches_opencv_pixel_centres(dx, dy, roll, scale):
    # A round blob centred on pixel (50, 50) must land where the pixel-centre matrix sends (50.5, 50.5).
    yy, xx = np.mgrid[0:101, 0:101]
    src = np.exp(-((xx - 50) ** 2 + (yy - 50) ** 2) / (2 * 4.0**2)).astype(np.float32)
    centre = (50.5, 50.5)
    m = transform.upright(centre, roll, scale, (128.0 + dx, 128.0 + dy))
    out = cv2.warpAffine(src, transform.to_index(m), (256, 256), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(out > 0.05)
    weights = out[ys, xs]
    got = (float((xs * weights).sum() / weights.sum()) + 0.5, float((ys * weights).sum() / weights.sum()) + 0.5)
    assert math.dist(got, (128.0 + dx, 128.0 + dy)) < 0.1  # a half-pixel convention slip would be 0.7


def test_invert_rejects_singular():
    import pytest

    with pytest.raises(ValueError, match="singular"):
        transform.invert(np.zeros((2, 3)))


@given(st.floats(-1000, 1000))
def test_wrap_range(angle):
    w = transform.wrap(angle)
    assert -180 < w <= 180
    assert math.isclose(math.cos(math.radians(w)), math.cos(math.radians(angle)), abs_tol=1e-9)


entries = st.floats(-1000, 1000, allow_nan=False)
affine = st.lists(entries, min_size=6, max_size=6).map(lambda v: np.array(v, float).reshape(2, 3))


def _square(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


@given(affine, affine)
def test_compose_and_to_index_are_the_3x3_products(outer, inner):
    """Both are written out on plain floats (numpy's small stacks cost more than the maths): the same maps as
    the 3x3 products, to rounding."""
    product = (_square(outer) @ _square(inner))[:2]
    scale = 1.0 + np.abs(outer).max() * (1.0 + np.abs(inner).max())
    assert np.allclose(transform.compose(outer, inner), product, rtol=0, atol=1e-12 * scale)
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    index = (np.linalg.inv(shift) @ _square(outer) @ shift)[:2]
    assert np.allclose(transform.to_index(outer), index, rtol=0, atol=1e-12 * (1.0 + np.abs(outer).max()))


@given(coords, coords, rolls, st.floats(0.02, 4.0), st.integers(1, 256), st.integers(1, 256))
@settings(max_examples=200)
def test_footprint_holds_the_mapped_crop_corners(cx, cy, roll, scale, width, height):
    """The ROI is the mapped corners' bounding box, padded and clipped to the image (written on plain floats)."""
    inverse = transform.invert(transform.upright((cx, cy), roll, scale, (width / 2, height / 2)))
    corners = transform.apply(inverse, np.array([[0, 0], [width, 0], [0, height], [width, height]], float))
    roi = transform.footprint(inverse, width, height, (720, 960, 3), pad=3)
    lo, hi = np.floor(corners.min(axis=0)).astype(int) - 3, np.ceil(corners.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(lo[0], 0), max(lo[1], 0), min(hi[0], 960), min(hi[1], 720)
    assert roi == (None if x1 <= x0 or y1 <= y0 else (x0, y0, x1, y1))


def test_matrices_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="2x3"):
        transform.compose(np.eye(2), np.eye(3)[:2])
    with pytest.raises(ValueError, match="2x3"):
        transform.invert(np.eye(2))
