"""Issue 17's forty-third pass: a soft candidate the re-check read nothing on is re-checked once more as a larger face
(detect.LARGER_RETRY): blurred faces are often proposed well under their size."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from bump_backend.faces import detect
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import clutter, degrade

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")


def _group_head(size: float, roll: float, damage: str):
    """Head 0 of the group photo (a tune head) pasted at ``size`` and ``roll`` at the centre of a 256 px clutter
    scene, then ``damage``d."""
    rng = np.random.default_rng(int(roll + size))
    image = clutter(rng, 256, 256)
    truth = bench_faces.place_group(image, face_sources.group_faces()[0], (128.0, 128.0), size, roll, False)
    return degrade(image, damage, rng), truth


def _proposal(truth, ratio: float) -> detect.Candidate:
    """An upright proposal at the face's centre, ``ratio`` times its detector side."""
    return detect.Candidate(np.array(truth.centre), ratio * truth.size / BLAZE_TO_SQUARE, 0.0, 0.6, np.zeros((6, 2)), 0)


@pytest.mark.parametrize(("size", "roll"), [(32.0, 120.0), (48.0, 300.0)])
def test_a_blurred_face_proposed_at_six_tenths_of_its_size_is_read_on_the_larger_retry(size, roll, monkeypatch):
    image, truth = _group_head(size, roll, "blur")
    proposal = _proposal(truth, 0.6)
    assert detect.sharpness(image, tuple(proposal.centre), proposal.side, 0.0) < detect.LARGER_RETRY_SOFT
    monkeypatch.setattr(detect, "LARGER_RETRY", False)
    assert detect.confirm(image, proposal, True, 0.6) == (None, 2)
    monkeypatch.setattr(detect, "LARGER_RETRY", True)
    found, calls = detect.confirm(image, proposal, True, 0.6)
    assert found is not None and calls == 6
    assert found.score >= 0.6
    assert 0.8 < found.side * BLAZE_TO_SQUARE / truth.size < 1.25
    assert math.dist(found.centre, truth.centre) < 0.2 * truth.size


def test_a_sharp_candidate_gets_no_retry(monkeypatch):
    """Clutter reads sharp at a small square: the retry's calls are not spent on it."""
    image = clutter(np.random.default_rng(1), 256, 256)
    centres = [(60.0, 70.0), (190.0, 120.0), (100.0, 200.0), (128.0, 128.0)]
    sharp = [c for c in centres if detect.sharpness(image, c, 30.0, 0.0) >= detect.LARGER_RETRY_SOFT]
    assert len(sharp) >= 2
    for centre in sharp:
        proposal = detect.Candidate(np.array(centre), 30.0, 0.0, 0.6, np.zeros((6, 2)), 0)
        monkeypatch.setattr(detect, "LARGER_RETRY", True)
        on = detect.confirm(image, proposal, True, 0.6)
        monkeypatch.setattr(detect, "LARGER_RETRY_SOFT", 1000.0)  # every square soft: the retry is made
        retried = detect.confirm(image, proposal, True, 0.6)
        monkeypatch.undo()
        assert on == (None, 2) and retried[1] > on[1]


def test_a_candidate_over_the_bound_gets_no_retry(monkeypatch):
    image, truth = _group_head(96.0, 120.0, "blur")
    proposal = _proposal(truth, 0.6)
    assert proposal.side > detect.LARGER_RETRY_MAX_SIDE
    monkeypatch.setattr(detect, "LARGER_RETRY", False)
    off = detect.confirm(image, proposal, True, 0.6)
    monkeypatch.setattr(detect, "LARGER_RETRY", True)
    on = detect.confirm(image, proposal, True, 0.6)
    assert on[1] == off[1]
