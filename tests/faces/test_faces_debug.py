"""The debug image: every face's label is drawn whole, wherever the face lies."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bump_backend.faces.debug import draw_faces, label_origin
from bump_backend.faces.types import Face, FaceSearchResult


@given(width=st.integers(10, 200), height=st.integers(5, 20), baseline=st.integers(0, 6),
       x0=st.floats(-300, 700), y0=st.floats(-300, 700), side=st.floats(1, 300),
       rows=st.integers(40, 600), cols=st.integers(210, 600))
def test_label_lies_inside_the_image(width, height, baseline, x0, y0, side, rows, cols):
    box = (x0, y0, x0 + side, y0 + side)
    x, y = label_origin((width, height), baseline, box, (rows, cols))
    assert x >= 0 and x + width <= cols
    assert y - height >= 0 and y + baseline <= rows
    if 0 <= x0 <= cols - width and y0 - 4 - height - baseline >= 0 and y0 - 4 <= rows:
        assert (x, y + baseline) == (int(x0), int(y0) - 4)  # room above the box: right above it, where it starts


def _face(centre: tuple[float, float], side: float = 40.0) -> Face:
    cx, cy = centre
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    eyes = ((cx - 8, cy - 5), (cx + 8, cy - 5))
    return Face(box=box, score=0.93, eyes=eyes, roll=0.0, yaw=-35.0, pitch=0.0, source="detector")


def _label_pixels(canvas: np.ndarray) -> int:
    """Pixels of the labels' dark outline (nothing else is drawn dark)."""
    return int((canvas.max(axis=2) < 80).sum())


def test_a_face_at_the_edges_keeps_its_whole_label():
    blank = np.full((200, 300, 3), 255, np.uint8)
    middle = _label_pixels(draw_faces(blank, FaceSearchResult(faces=[_face((150, 120))], skipped=[], ms=0.0)))
    for centre in ((285, 120), (150, 15), (285, 185), (15, 15)):  # right edge, top, bottom-right corner, top-left
        # As much label as in the middle, where nothing is cut.
        assert _label_pixels(draw_faces(blank, FaceSearchResult(faces=[_face(centre)], skipped=[], ms=0.0))) >= 0.9 * middle, centre
