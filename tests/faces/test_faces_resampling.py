"""The search's cheaper resampling keeps its pixels: whole-pixel area steps before a shrinking warp of its crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bump_backend.faces import align, transform


@st.composite
def spans(draw):
    length = draw(st.integers(1, 3000))
    start = draw(st.integers(0, length - 1))
    end = draw(st.integers(start + 1, length))
    return start, end, draw(st.integers(1, 40)), length


@given(spans())
def test_regions_become_whole_steps_inside_the_image(span):
    start, end, step, length = span
    a, b = align._multiple_of(start, end, step, length)
    assert 0 <= a <= b <= length and (b - a) % step == 0
    if -(-(end - start) // step) * step <= length:
        assert a <= start and b >= end  # grown (and moved back from the far edge where needed): nothing lost
    else:
        assert a == start and end - step < b <= end  # the whole image is too short: less than a step lost


def _smooth(seed: int, size: int, detail: float) -> np.ndarray:
    """Colour noise whose finest detail is ``detail`` px: what a level or crop at 1/``detail`` or more can hold
    (finer content is aliased differently by any two resamplings, and by both differently from the truth)."""
    cells = max(2, round(size / detail))
    noise = np.random.default_rng(seed).integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC), (0, 0), detail / 3)


@pytest.mark.parametrize("scale", [0.39, 0.3, 0.2, 0.11, 0.05])
@pytest.mark.parametrize("roll", [0.0, 37.0, 180.0])
def test_whole_step_area_warps_match_the_exact_ones(scale, roll, monkeypatch):
    image = _smooth(1, 900, 3 / scale)
    for centre in [(450.0, 450.0), (40.0, 860.0)]:  # inside, and reaching past two edges
        matrix = transform.upright(centre, roll, scale, (64.0, 64.0))
        fast = align.warp(image, matrix, (128, 128), whole_steps=True).astype(float)
        exact = align.warp(image, matrix, (128, 128)).astype(float)  # the bump's own crops and paste-back
        monkeypatch.setattr(align, "INTEGER_AREA", False)
        assert np.array_equal(align.warp(image, matrix, (128, 128), whole_steps=True), exact)
        monkeypatch.undo()
        assert np.abs(fast - exact).mean() < 1.5 and np.abs(fast - exact).max() < 40, (scale, roll, centre)
