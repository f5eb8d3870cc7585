"""P-Net's stirring peaks read at the eighth turns (detect.SMALL_DIAGONAL, issue 17's forty-sixth pass): a 24 px face
rolled about 45° off every quarter turn reads at P-Net's turns only as a stirring peak, and R-Net and O-Net, which read
a square at the quarter turns and their own retries, drop it. Read on a crop of the level turned to the eighth turn that
sees it, it is proposed at that roll."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from faces_helpers import lfw_face_alone, small_faces_near, upright_face, won_by_rule

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, groundtruth
from bump_backend.faces.transform import wrap

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
pytest.importorskip("bench_faces")
pytest.importorskip("face_sources")

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


@pytest.mark.parametrize(("index", "roll"), [(1, 45), (6, -140), (3, -45)])
def test_a_face_between_quarter_turns_is_proposed_at_its_eighth_turn_and_found(index, roll, monkeypatch):
    image, truth = lfw_face_alone(index, roll, "none")
    won_by_rule(image, truth, SETTINGS, detect.SMALL_DIAGONAL_O,
                lambda: monkeypatch.setattr(detect, "SMALL_DIAGONAL", False))


def test_diagonal_squares_need_r_nets_and_o_nets_bars(monkeypatch):
    """The same face with either bar set just over its reading is not proposed: both bars are applied to them."""
    image, truth = lfw_face_alone(1, 45, "none")
    (proposed,) = small_faces_near(image, truth)
    monkeypatch.setattr(detect, "SMALL_DIAGONAL_O", min(1.0, proposed.o_net + 1e-3))
    assert not small_faces_near(image, truth)
    monkeypatch.setattr(detect, "SMALL_DIAGONAL_O", detect.SMALL_O)
    assert small_faces_near(image, truth)
    monkeypatch.setattr(detect, "SMALL_DIAGONAL_R", 1.01)
    assert not small_faces_near(image, truth)


@pytest.mark.parametrize("roll", [45.0, 135.0, -135.0, -45.0])
def test_diagonal_peaks_land_on_the_face_at_its_roll(roll):
    """A 24 px face pasted at an eighth turn, read about a place a few pixels off its centre: P-Net's best cell on the
    crop turned to its roll maps back onto the face, at that roll (the level's turn and the crops' np.rot90 undone)."""
    image = groundtruth.clutter(np.random.default_rng(5), 240, 200)
    truth = groundtruth.place_face(image, "astronaut", (118.0, 96.0), 24.0, roll)
    level = detect.small_face_level(image)
    peaks = detect.diagonal_peaks(image, level, [(truth.centre[0] + 4.0, truth.centre[1] - 3.0)])
    at_roll = [(x, y) for x, y, score, r in peaks if r == roll]
    assert at_roll, peaks
    assert math.dist(at_roll[0], truth.centre) < 0.3 * truth.size
    assert {r for *_, r in peaks} <= set(detect.DIAGONALS)


def test_face_free_stills_report_nothing_from_diagonal_peaks():
    """Hundreds of stirring places a still are read at four more turns: on face-free stills no face is reported."""
    stills = groundtruth.face_free(62000, 3, ((1280, 720), (1440, 1440)), ("none", "jpeg"))
    for image in stills:
        level = detect.small_face_level(image)
        stirring = [(x, y) for turn in detect.SMALL_TURNS
                    for x, y, s in detect.small_face_peaks(image, turn, level=level, threshold=detect.SMALL_STIR)
                    if s < detect.SMALL_P]
        assert len(stirring) >= 30
        assert detect.diagonal_peaks(image, level, stirring)  # P-Net reads clutter at 0.9 at some eighth turn
        result = find_faces(image, settings=SETTINGS)
        assert not result.faces and not result.skipped


def _refined_from_eighth(short_range: float, fitted: bool):
    face = upright_face((100.0, 100.0), 24.0, 0.8, {"short_range": short_range})
    if fitted:
        face = dataclasses.replace(face, landmarks=np.zeros((478, 3)))
    square = detect.Candidate(np.array([100.0, 100.0]), 24.0, 45.0, 0.0, np.zeros((6, 2)), 45, eighth=True)
    return face, square


def test_a_face_from_an_eighth_turn_is_kept_only_where_the_mesh_fits_it_or_the_short_range_model_is_sure():
    """P-Net reads clutter at 0.9 at some eighth turn far more often than at its own turns: such a face must be sure
    (finder.EIGHTH_NEEDS_SURE). It is marked, and so yields to any other face at its place."""
    assert finder._marked(*_refined_from_eighth(finder.SURE_ALONE - 0.01, fitted=False)) is None
    kept = finder._marked(*_refined_from_eighth(0.6, fitted=True))
    assert kept is not None and kept.extra["p_net_eighth"] is True
    assert finder._marked(*_refined_from_eighth(finder.SURE_ALONE, fitted=False)) is not None
    other = upright_face((104.0, 98.0), 30.0, 0.7)
    assert finder._fallbacks_where_alone([kept, other]) == [other]


def test_a_clutter_square_read_at_an_eighth_turn_is_not_kept(monkeypatch):
    """A face-free still of the benchmark (seed 7017, the 56th): a square P-Net read at -135°, O-Net 0.99, refined to
    a 30 px face the mesh did not fit and the short-range model read 0.64, which O-Net's word next to it kept. YuNet's
    bar on that word (finder.SIDE_ON_YUNET, the forty-seventh pass) drops it too, so it is switched off here."""
    bench_faces = pytest.importorskip("bench_faces")
    image = bench_faces.face_free(7017, 56)[55].image
    assert not find_faces(image, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0)).faces
    monkeypatch.setattr(finder, "EIGHTH_NEEDS_SURE", False)
    assert not find_faces(image, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0)).faces
    monkeypatch.setattr(finder, "SIDE_ON_YUNET", None)
    (face,) = find_faces(image, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0)).faces
    assert face.landmarks is None and face.extra["short_range"] < finder.SURE_ALONE
    assert abs(wrap(face.roll + 135.0)) <= 10.0
