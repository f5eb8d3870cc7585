"""P-Net's small faces the short-range re-check reads nothing on (detect.SMALL_UNSEEN), O-Net's read of a refused
small square at the quarter turns beside R-Net's (detect.ONET_RETRY_QUARTERS), and P-Net's peaks read at the quarter
turns it skips from 0.5 up (detect.SMALL_STIR): real people's 24 px faces (LFW tune crops) that the search found only
with each."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from faces_helpers import found_matching, lfw_face_alone, p_net_turn_reads

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, groundtruth  # noqa: E402

SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1)


def test_a_small_face_the_re_check_does_not_read_is_judged_by_yunet_and_the_full_range_model(monkeypatch):
    image, truth = lfw_face_alone(0, -60, "blur")
    # The forty-third pass's retry reads this face over the floor; that reading stands in place of the hand-on and is
    # refused, and the hand-on is then tried in its place (LARGER_RETRY_YIELDS, test_faces_larger_retry.py): the retry
    # is off here, so the rule is seen alone.
    monkeypatch.setattr(detect, "LARGER_RETRY", False)
    monkeypatch.setattr(detect, "SMALL_UNSEEN", False)
    assert not found_matching(image, truth, SETTINGS)
    monkeypatch.setattr(detect, "SMALL_UNSEEN", True)
    # The candidate is P-Net's, read by O-Net, handed on under the floor with O-Net's reading for a score ...
    candidates, _ = detect.detect(image, min_face=24, rotations=(0,), proposal=SETTINGS.proposal_confidence,
                                  floor=SETTINGS.recheck_floor, workers=1)
    unseen = [c for c in candidates if c.under_floor and c.o_net and math.dist(c.centre, truth.centre) < 12]
    assert unseen and unseen[0].score == unseen[0].o_net >= detect.SMALL_UNSEEN_O
    # ... and kept as finder.UNDER_FLOOR keeps such readings: YuNet and the full-range model agree.
    (face,) = found_matching(image, truth, SETTINGS)
    assert face.extra["yunet"] >= finder.YUNET_VOUCHES and face.extra["agreed"] >= detect.SECOND_ENOUGH


def test_without_its_rule_no_other_switch_finds_that_face(monkeypatch):
    image, truth = lfw_face_alone(0, -60, "blur")
    monkeypatch.setattr(detect, "SMALL_UNSEEN", False)
    monkeypatch.setattr(detect, "ONET_RETRY_QUARTERS", False)
    assert not found_matching(image, truth, SETTINGS)


def test_such_candidates_on_clutter_are_refused_and_get_no_roll_search(monkeypatch):
    """YuNet's best of eight rolls (finder.ROLL_SEARCH_UNDER_FLOOR) is for re-check readings only: on P-Net's faces
    the re-check never read it kept clutter (a false positive on the held-out and the fresh part each). A blurred
    face-free image where O-Net reads many clutter squares >= 0.8 that the re-check does not: YuNet and the full-range
    model refuse every one, and none is searched by roll."""
    image = groundtruth.face_free(9, 1, ((1280, 720),), ("blur",))[0]
    agreed, turned = [], []
    three_agree, yunet_turned = finder._three_agree, finder._yunet_turned

    def spy_agree(image, c, confidence):
        face = three_agree(image, c, confidence)
        agreed.append((c.o_net, face))
        return face

    monkeypatch.setattr(finder, "_three_agree", spy_agree)
    monkeypatch.setattr(finder, "_yunet_turned", lambda image, c, *a: turned.append(c) or yunet_turned(image, c, *a))
    result = find_faces(image, settings=SETTINGS)
    unseen = [face for o_net, face in agreed if o_net]
    assert len(unseen) >= 5 and all(face is None for face in unseen)
    assert not [c for c in turned if c.o_net]
    assert not result.faces and not result.skipped


def test_a_refused_small_square_is_read_at_the_quarter_turns_beside_r_net_s(monkeypatch):
    image, truth = lfw_face_alone(40, -120, "none")
    monkeypatch.setattr(detect, "ONET_RETRY_QUARTERS", False)
    assert not found_matching(image, truth, SETTINGS)
    monkeypatch.setattr(detect, "ONET_RETRY_QUARTERS", True)
    assert found_matching(image, truth, SETTINGS)


def test_a_real_face_p_net_reads_only_at_a_skipped_turn_is_proposed_where_its_turns_read_it_from_0_5(monkeypatch):
    """detect.SMALL_STIR at 0.5 (issue 17's thirty-third pass; 0.7 before): a 24 px face at 80° that P-Net reads 0.58
    at best at the turns it reads (detect.SMALL_TURNS) and 0.99 a quarter turn on is proposed and found."""
    image, truth = lfw_face_alone(0, 80, "none")
    read = p_net_turn_reads(image, truth)
    assert detect.SMALL_STIR <= max(read[0], read[2]) < 0.7 and max(read[1], read[3]) >= detect.SMALL_P
    (face,) = found_matching(image, truth, SETTINGS)
    assert face.score >= SETTINGS.confidence
    monkeypatch.setattr(detect, "SMALL_STIR", 0.7)
    monkeypatch.setattr(detect, "SMALL_FAINT", None)  # under SMALL_STIR it would stir the peak (the forty-fifth pass)
    assert not found_matching(image, truth, SETTINGS)
