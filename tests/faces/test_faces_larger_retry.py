"""Issue 17's forty-third pass: a soft candidate the re-check read nothing on is re-checked once more as a larger face
(detect.LARGER_RETRY): blurred faces are often proposed well under their size. The forty-fourth: what the retry's
reading pushed out is tried where that reading is refused (detect.LARGER_RETRY_YIELDS)."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from faces_helpers import found_matching, lfw_face_alone

from bump_backend.faces import FaceFinderSettings, detect
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


def test_a_small_face_the_retry_reads_is_handed_on_where_that_reading_is_refused(monkeypatch):
    """The forty-third pass's known loss: the retry read this P-Net face (LFW, 24 px at -60°, blurred) over the floor,
    refinement refused that reading, and the hand-on under the floor (detect.SMALL_UNSEEN) that finds it without the
    retry was never made."""
    image, truth = lfw_face_alone(0, -60, "blur")
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)
    monkeypatch.setattr(detect, "LARGER_RETRY_YIELDS", False)
    assert not found_matching(image, truth, settings)
    monkeypatch.setattr(detect, "LARGER_RETRY_YIELDS", True)
    (face,) = found_matching(image, truth, settings)
    assert "p_net_fallback" in face.extra and "yunet" in face.extra  # refined from the hand-on, as finder judges it


def _reading(side: float, score: float) -> detect.Candidate:
    return detect.Candidate(np.array([100.0, 100.0]), side, 10.0, score, np.zeros((6, 2)), 0)


def test_what_the_retry_pushes_out_is_what_would_have_stood():
    """The re-check's own reading from UNDER_FLOOR_FROM up; else, for P-Net's small faces, O-Net's word; both marked
    under the floor, and nothing over the under-floor bound or for a window proposal read under UNDER_FLOOR_FROM."""
    proposal = _reading(30.0, 0.6)
    weak = _reading(28.0, 0.55)
    (held,) = detect._pushed_out(proposal, weak)
    assert held.under_floor and held.score == 0.55 and held.side == 28.0 and not weak.under_floor
    assert detect._pushed_out(proposal, None) == [] and detect._pushed_out(proposal, _reading(28.0, 0.3)) == []
    p_net = dataclasses.replace(proposal, score=0.0, o_net=0.95, members=[proposal])
    (handed,) = detect._pushed_out(p_net, None)
    assert handed.under_floor and handed.score == 0.95 and handed.members == []
    assert detect._pushed_out(dataclasses.replace(p_net, o_net=0.5), None) == []
    over = detect.UNDER_FLOOR_MAX_SIDE + 1
    assert detect._pushed_out(_reading(over, 0.6), _reading(over, 0.55)) == []


def test_a_reading_merged_under_a_stronger_one_hands_its_fallbacks_to_it():
    strong, retried = _reading(30.0, 0.9), _reading(32.0, 0.7)
    pushed = _reading(28.0, 0.55)
    retried.fallbacks.append(pushed)
    (cluster,) = detect.fallbacks_merged(detect.merge([retried, strong]))
    assert cluster is strong and cluster.fallbacks == [pushed]
