"""P-Net's small faces where a re-check reading already stands (issue 17's thirty-fourth pass): one more than twice
their side does not stand for them (detect.SMALL_BLOCK_RATIO), and where the one that does is refused, the small face
is refined in its place (detect.SMALL_FALLBACK, finder._fallen_back); so is one whose own re-check reading turned far
from O-Net's roll (detect.SMALL_OWN_FALLBACK, the forty-sixth pass). Real people's 24 px faces (LFW tune crops) that
the search found only with each."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from faces_helpers import found_matching, lfw_face_alone, upright_face

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")

from bump_backend.faces import Face, FaceFinderSettings, detect, finder  # noqa: E402

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


def _beside_a_large_face():
    """A 400 px grey scene: an LFW tune face of 120 px at its centre and another of 24 px, rolled 90°, 58 px right of
    it (a small face in the background beside a near one)."""
    reals = face_sources.real_faces()
    rng = np.random.default_rng(212)
    canvas = bench_faces._grey(bench_faces.clutter(rng, 400, 400))
    large = bench_faces.place_real(canvas, reals[2], (200.0, 200.0), 120.0, 0.0, False)
    small = bench_faces.place_real(canvas, reals[12], (258.0, 200.0), 24.0, 90.0, False)
    return bench_faces._grey(canvas), large, small


def test_a_reading_more_than_twice_a_small_faces_side_does_not_keep_it_from_the_re_check(monkeypatch):
    image, large, small = _beside_a_large_face()
    assert found_matching(image, large, SETTINGS) and found_matching(image, small, SETTINGS)
    monkeypatch.setattr(detect, "SMALL_BLOCK_RATIO", None)  # any reading at its place keeps it from the re-check
    assert found_matching(image, large, SETTINGS) and not found_matching(image, small, SETTINGS)


@pytest.mark.parametrize("index, roll, damage", [(12, 90, "jpeg"), (24, -90, "jpeg")])
def test_a_small_face_whose_place_holds_a_refused_reading_is_refined_in_its_place(monkeypatch, index, roll, damage):
    image, truth = lfw_face_alone(index, roll, damage)
    # The re-check read the face, but refinement refuses that reading; P-Net's small face there went with it ...
    candidates, _ = detect.detect(image, min_face=24, rotations=(0,), proposal=SETTINGS.proposal_confidence,
                                  floor=SETTINGS.recheck_floor, workers=1)
    standing = [c for c in candidates if math.dist(c.centre, truth.centre) < 0.5 * max(c.side, truth.size)]
    assert any(c.fallbacks for c in standing)
    assert all(f.o_net >= detect.SMALL_O for c in standing for f in c.fallbacks)
    # ... and is refined in its place from the short-range model's reading at O-Net's roll.
    (face,) = found_matching(image, truth, SETTINGS)
    assert face.extra["p_net_fallback"] >= detect.SMALL_O
    assert face.score >= SETTINGS.confidence

    monkeypatch.setattr(detect, "SMALL_FALLBACK", False)
    assert not found_matching(image, truth, SETTINGS)


@pytest.mark.parametrize("index, roll, damage", [(3, -170, "jpeg"), (6, 30, "jpeg"), (11, 55, "jpeg")])
def test_a_small_face_whose_own_re_check_turned_it_is_refined_at_o_nets_roll(monkeypatch, index, roll, damage):
    """Issue 17's forty-sixth pass (detect.SMALL_OWN_FALLBACK): O-Net read the face within 11° of its roll, the
    re-check of that square read it over the floor 90-120° off, and refinement refused that reading."""
    image, truth = lfw_face_alone(index, roll, damage)
    (small,) = [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]
    assert small.o_net >= detect.SMALL_O and abs(detect.transform.wrap(small.roll - truth.roll)) <= 15.0
    reading, _ = detect.confirm(image, small, True, SETTINGS.recheck_floor)
    assert reading.score >= SETTINGS.recheck_floor
    assert abs(detect.transform.wrap(reading.roll - small.roll)) > detect.SMALL_OWN_FALLBACK
    (face,) = found_matching(image, truth, SETTINGS)
    assert face.extra["p_net_fallback"] >= detect.SMALL_O
    assert abs(detect.transform.wrap(face.roll - truth.roll)) <= 10.0

    # YuNet's word on the P-Net square at O-Net's roll is asked first (0.87-0.91 here; 0 on a clutter patch the mesh
    # fitted and O-Net vouched for on crowd tune)
    assert detect.yunet_opinion(image, tuple(small.centre), small.side, small.roll) >= detect.SMALL_OWN_YUNET
    monkeypatch.setattr(detect, "SMALL_OWN_YUNET", 0.95)
    assert not found_matching(image, truth, SETTINGS)
    monkeypatch.setattr(detect, "SMALL_OWN_FALLBACK", None)
    monkeypatch.setattr(detect, "SMALL_OWN_YUNET", 0.0)
    assert not found_matching(image, truth, SETTINGS)


def _face(centre: tuple[float, float], size: float, score: float, fallback: bool) -> Face:
    return upright_face(centre, size, score, {"p_net_fallback": 0.99} if fallback else None)


def test_a_face_refined_from_a_p_net_face_never_displaces_another_face_at_its_place():
    """A 24 px square on a 48 px face read it at 27 px, scoring over the 48 px reading: the dedupe would have kept it."""
    whole, too_small = _face((100.0, 100.0), 48.0, 0.6, False), _face((108.0, 110.0), 27.0, 0.9, True)
    alone = _face((300.0, 100.0), 24.0, 0.7, True)
    kept = finder._dedupe(finder._fallbacks_where_alone([whole, too_small, alone]))
    assert sorted(kept, key=lambda f: f.centre[0]) == [whole, alone]
    assert finder._dedupe([whole, too_small, alone])[0] is too_small  # what the dedupe alone keeps
