"""align.warp's shrinking path: halvings by exact area-averaging (align.HALVING_AA) in place of one area-average to
AA_SCALE at a fractional factor, which OpenCV runs ~15x slower (a 128 px crop of a 300 px face: ~3.5 against ~0.5 ms)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from bump_backend.faces import align, transform


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if error == 0 else 10 * np.log10(255.0 ** 2 / error)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.astronaut(), (1440, 1440), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("side", [120.0, 200.0, 300.0, 600.0])
@pytest.mark.parametrize("roll", [0.0, 33.0, -140.0])
def test_a_shrinking_warp_by_halvings_matches_the_one_step_area_average(photo, side, roll, monkeypatch):
    matrix = transform.upright((700.0, 600.0), roll, 0.35 * 128 / side, (64.0, 64.0))
    halved = align.warp(photo, matrix, (128, 128))
    monkeypatch.setattr(align, "HALVING_AA", False)
    one_step = align.warp(photo, matrix, (128, 128))
    assert _psnr(halved, one_step) >= 35.0  # measured 37-50 dB (lowest: a 600 px face reaching past the border)


@pytest.mark.parametrize("scale", [1.5, 1.0, 0.5])
def test_a_warp_that_shrinks_by_at_most_aa_scale_is_unchanged(photo, scale, monkeypatch):
    matrix = transform.upright((700.0, 600.0), 20.0, scale, (64.0, 64.0))
    halved = align.warp(photo, matrix, (128, 128))
    monkeypatch.setattr(align, "HALVING_AA", False)
    assert np.array_equal(halved, align.warp(photo, matrix, (128, 128)))


@pytest.mark.parametrize("shrink", [3.0, 5.5, 11.0])
def test_halvings_keep_the_warp_s_geometry(shrink, monkeypatch):
    """A blob's centre lands where the matrix says, through the halvings as through the one-step average."""
    image = np.zeros((900, 900, 3), np.uint8)
    yy, xx = np.mgrid[0:900, 0:900]
    centre = (437.3, 461.8)  # pixel-centre coordinates: pixel (i, j) covers [i, i+1) x [j, j+1)
    blob = np.exp(-((xx + 0.5 - centre[0]) ** 2 + (yy + 0.5 - centre[1]) ** 2) / (2 * (6.0 * shrink) ** 2))
    image[...] = (255 * blob)[..., None].astype(np.uint8)
    matrix = transform.upright((450.0, 450.0), 27.0, 1 / shrink, (40.0, 40.0))
    expected = transform.apply(matrix, np.array([centre]))[0]
    for halving in (True, False):
        monkeypatch.setattr(align, "HALVING_AA", halving)
        out = align.warp(image, matrix, (80, 80))[..., 0].astype(np.float64)
        oy, ox = np.mgrid[0:80, 0:80]
        found = ((ox + 0.5) * out).sum() / out.sum(), ((oy + 0.5) * out).sum() / out.sum()
        assert np.hypot(*np.subtract(found, expected)) < 0.15, (halving, found, expected)
