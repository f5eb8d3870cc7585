"""O-Net's read of a refused small square a little off and larger about it (detect.ONET_SHIFT_STEP, issue 17's
thirty-fifth pass): P-Net's cells lie 4 px apart, and O-Net refused real people's 24 px faces (LFW tune crops) on the
square it was given that it read 0.99-1.0 a sixth of a side away. R-Net ranks the shifted squares, and O-Net reads the
best few (detect.ONET_SHIFT_KEEP)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from faces_helpers import found_matching, lfw_face_alone

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")

from bump_backend.faces import FaceFinderSettings, detect, find_faces, groundtruth, mtcnn  # noqa: E402

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


def test_the_shifted_squares_surround_the_square_at_each_scale_and_leave_it_out():
    squares = detect.shifted_squares((100.0, 50.0), 24.0, 30.0)
    assert len(squares) == 9 * len(detect.ONET_SHIFT_SCALES) - 1
    assert ((100.0, 50.0), 24.0, 30.0) not in squares
    assert all(turn == 30.0 for _, _, turn in squares)
    step = detect.ONET_SHIFT_STEP * 24.0
    offsets = {(round((x - 100.0) / step), round((y - 50.0) / step)) for (x, y), _, _ in squares}
    assert offsets == {(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    assert {side for _, side, _ in squares} == {24.0 * scale for scale in detect.ONET_SHIFT_SCALES}


def test_o_net_reads_the_shifted_squares_r_net_reads_best_of_each():
    image, truth = lfw_face_alone(28, -120, "none")
    squares = [(truth.centre, truth.size, 0.0), ((60.0, 60.0), 24.0, 90.0)]
    kept = detect._shifts_worth_reading(image, [0, 1], squares)
    assert [i for i, _ in kept] == [0] * detect.ONET_SHIFT_KEEP + [1] * detect.ONET_SHIFT_KEEP
    for i in (0, 1):
        around = detect.shifted_squares(*squares[i])
        read = dict(zip(around, mtcnn.scores(image, around, small=True), strict=True))
        chosen = [square for k, square in kept if k == i]
        assert min(read[square] for square in chosen) >= max(v for square, v in read.items() if square not in chosen)
    assert detect._shifts_worth_reading(image, [], squares) == []


@pytest.mark.parametrize("index, roll", [(28, -120), (82, 120)])
def test_a_small_face_o_net_refuses_on_its_square_is_found_on_a_shifted_one(monkeypatch, index, roll):
    image, truth = lfw_face_alone(index, roll, "none")
    read = []
    o_net_rolls = detect.o_net_rolls

    def spy(image, squares, threshold):
        scores, rolls, picked = o_net_rolls(image, squares, threshold)
        read.extend(zip(squares, picked, scores, strict=True))
        return scores, rolls, picked

    monkeypatch.setattr(detect, "o_net_rolls", spy)
    (face,) = found_matching(image, truth, SETTINGS)
    assert face.score >= SETTINGS.confidence
    assert abs(face.size - truth.size) <= 0.25 * truth.size
    # O-Net passed the face on a square other than P-Net's own, a shift or scale of it
    moved = [(given, picked) for given, picked, score in read
             if score >= detect.ONET_EYE_BAR and picked != given and picked[2] == given[2]
             and math.dist(given[0], truth.centre) < 0.5 * truth.size]
    assert any(picked in detect.shifted_squares(*given) for given, picked in moved)

    monkeypatch.setattr(detect, "ONET_SHIFT_STEP", None)
    assert not found_matching(image, truth, SETTINGS)


def test_the_shifted_reads_keep_no_clutter_on_face_free_images(monkeypatch):
    """A blurred face-free still where O-Net refuses clutter squares it reads from ONET_SHIFT_FROM up: each is read
    shifted, and no face is reported."""
    shifted = []
    shifted_squares = detect.shifted_squares
    monkeypatch.setattr(detect, "shifted_squares", lambda *square: shifted.append(square) or shifted_squares(*square))
    (image,) = groundtruth.face_free(9, 1, ((1280, 720),), ("blur",))
    result = find_faces(image, settings=SETTINGS)
    assert len(shifted) >= 3
    assert not result.faces and not result.skipped
