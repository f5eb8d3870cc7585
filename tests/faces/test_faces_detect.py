"""Detection on real faces at known sizes, rolls and mirroring; skip rules; false positives."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faces_helpers import match, roll_error
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import FaceFinderSettings, detect, find_faces
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import background, clutter, make_scene, place_face


def test_finds_every_face_at_any_roll(rolled_scene, rolled_result):
    faces = rolled_result.faces
    assert rolled_result.detector_calls > 0
    for t in rolled_scene.faces:
        f = match(t, faces)
        assert f is not None, f"missed the {t.size:.0f} px face at roll {t.roll:.0f}"
        assert f.source == "detector" and 0.5 <= f.score <= 1
        assert roll_error(f.roll, t.roll) <= 2.5, (t.size, t.roll, f.roll)
        assert f.landmarks is not None and f.landmarks.shape == (478, 3)
        # Eyes image-left first, each near a true eye centre.
        assert f.eyes[0][0] <= f.eyes[1][0]
        for eye in f.eyes:
            assert min(math.dist(eye, t.right_eye), math.dist(eye, t.left_eye)) < 0.12 * t.size
    assert len(faces) == len(rolled_scene.faces)  # and nothing else


def test_mirrored_image_flips_yaw_and_roll(portrait):
    settings = FaceFinderSettings()
    a = find_faces(portrait.image, settings=settings).faces
    b = find_faces(np.ascontiguousarray(portrait.image[:, ::-1]), settings=settings).faces
    assert len(a) == len(b) == 1
    assert abs(a[0].roll + b[0].roll) < 1.5
    assert abs(a[0].yaw + b[0].yaw) < 3
    w = portrait.image.shape[1]
    assert abs((w - b[0].centre[0]) - a[0].centre[0]) < 0.03 * a[0].size


def test_no_faces_in_clutter():
    rng = np.random.default_rng(5)
    for _ in range(3):
        result = find_faces(background(rng, 640, 480))
        assert result.faces == [] and result.skipped == []


def test_skip_rules_sorting_and_limits(rolled_scene, rolled_result):
    all_faces = rolled_result.faces
    by_size = sorted(f.size for f in all_faces)
    kept = find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=50, max_faces=2))
    assert [round(f.size) for f in kept.faces] == [round(s) for s in sorted(by_size, reverse=True)[:2]]
    reasons = sorted(s.reason.split(":")[0] for s in kept.skipped)
    assert reasons.count("too small") == sum(s < 50 for s in by_size)
    assert any(r.startswith("over the limit") for r in reasons)
    ltr = find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=0, sort="left_to_right"))
    xs = [f.centre[0] for f in ltr.faces]
    assert xs == sorted(xs)
    blurry = find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=0, min_sharpness=1e9))
    assert blurry.faces == [] and all(s.reason.startswith("too blurry") for s in blurry.skipped)


def test_settings_are_validated():
    with pytest.raises(ValueError):
        FaceFinderSettings(sort="random")
    with pytest.raises(ValueError):
        FaceFinderSettings(rotations=(0, 45))
    with pytest.raises(ValueError):
        FaceFinderSettings(confidence=1.5)
    with pytest.raises(ValueError, match="HxWx3"):
        find_faces(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("proposal_roll", [0.0, 30.0, -30.0])
def test_recheck_finds_small_faces_rolled_100_to_160_degrees_from_an_upright_proposal(proposal_roll):
    """The re-check's early stop (nothing at 0° and 180°) must not lose upside-down 24-32 px faces."""
    rng = np.random.default_rng(31)
    faces = [(24, 150), (28, -120), (32, 135), (30, -160), (26, 105)]
    scene = make_scene(rng, 400, 400, faces, mirror_chance=0.0)
    for truth in scene.faces:
        found, calls = detect.recheck_turns(scene.image, truth.centre, truth.size / BLAZE_TO_SQUARE,
                                            proposal_roll, detect.RECHECK_THRESHOLD)
        assert found is not None and calls == 4, (truth.size, truth.roll)
        assert roll_error(found.roll, truth.roll) < 15, (truth.size, truth.roll, found.roll)
        assert found.score >= 0.5


def test_recheck_stops_after_two_turns_where_clutter_holds_no_face():
    """Clutter seen at 0° and 180° without a face costs 2 calls, not 4 (the re-check's early stop)."""
    clutter = background(np.random.default_rng(5), 320, 320)
    for centre in [(40, 60), (160, 160), (280, 260), (120, 260)]:
        assert detect.recheck_turns(clutter, centre, 30.0, 0.0, detect.RECHECK_THRESHOLD) == (None, 2)


@pytest.mark.parametrize("source", ["astronaut", "grace_hopper"])
@pytest.mark.parametrize("roll", [0.0, 150.0, 162.0, -120.0])
def test_a_small_face_merged_into_a_larger_proposal_is_re_checked_at_its_own_size(source, roll, monkeypatch):
    """A 24 px face whose proposal merged into a cluster led by a 1.7x larger one beside it (traced on the
    benchmark: the cluster's crop, cut at the larger size, read nothing) is re-checked at its own size."""
    image = clutter(np.random.default_rng(3), 256, 256)
    truth = place_face(image, source, (128.0, 128.0), 24.0, roll)
    side = truth.size / BLAZE_TO_SQUARE
    member = detect.Candidate(np.array(truth.centre), 1.5 * side, 0.0, 0.5, np.zeros((6, 2)), 0)
    leader = detect.Candidate(np.array(truth.centre) + [12, -8], 2.8 * side, 0.0, 0.63, np.zeros((6, 2)), 0)
    leader.members = [leader, member]
    monkeypatch.setattr(detect, "SMALLER_MEMBER", False)
    assert detect.confirm(image, leader, True, 0.6) == (None, 2)
    monkeypatch.setattr(detect, "SMALLER_MEMBER", True)
    found, calls = detect.confirm(image, leader, True, 0.6)
    assert found is not None and calls == 6
    assert found.score >= 0.6 and 0.7 < found.side / side < 1.4
    assert roll_error(found.roll, truth.roll) < 15, found.roll
    assert math.dist(found.centre, truth.centre) < 0.25 * truth.size


def test_a_cluster_of_like_sized_proposals_is_re_checked_once(monkeypatch):
    """No second re-check where no member is much smaller than the cluster's best: clutter still costs 2 calls. (This
    smooth background reads soft, so the retry as a larger face, detect.LARGER_RETRY, is off here.)"""
    monkeypatch.setattr(detect, "LARGER_RETRY", False)
    clutter = background(np.random.default_rng(5), 320, 320)
    for centre in [(40, 60), (160, 160), (280, 260)]:
        leader = detect.Candidate(np.array(centre, float), 30.0, 0.0, 0.6, np.zeros((6, 2)), 0)
        twin = detect.Candidate(np.array(centre, float) + 3, 26.0, 0.0, 0.5, np.zeros((6, 2)), 0)
        leader.members = [leader, twin]
        assert detect.confirm(clutter, leader, True, 0.6) == (None, 2)


def _count_full_range(monkeypatch) -> list[int]:
    """Count the full-range model's calls (the real model still runs)."""
    count = [0]
    real = detect.blazeface.detect_full_range

    def counted(image):
        count[0] += 1
        return real(image)

    monkeypatch.setattr(detect.blazeface, "detect_full_range", counted)
    return count


def test_recheck_asks_no_full_range_opinion_for_a_reading_under_the_floor(monkeypatch):
    """A re-check whose best turn is under the caller's floor is dropped whatever the full-range model says."""
    rng = np.random.default_rng(31)
    scene = make_scene(rng, 400, 400, [(24, 150), (28, -120), (32, 135), (30, -160), (26, 105)], mirror_chance=0.0)
    count = _count_full_range(monkeypatch)
    for truth in scene.faces:
        found, _ = detect.recheck_turns(scene.image, truth.centre, truth.size / BLAZE_TO_SQUARE, 0.0,
                                        detect.RECHECK_THRESHOLD, floor=0.99)
        assert found is not None and found.score < 0.99 and found.opinion is None
    assert count[0] == 0
    for truth in scene.faces:
        detect.recheck_turns(scene.image, truth.centre, truth.size / BLAZE_TO_SQUARE, 0.0, detect.RECHECK_THRESHOLD)
    assert count[0] > 0  # without the floor these faces' contending turns are told apart by the full-range model


def test_bounded_opinions_pick_the_same_turn_with_no_more_calls(rolled_scene, monkeypatch):
    """Skipping contenders no opinion could lift past the best one changes no re-check's reading."""
    count = _count_full_range(monkeypatch)
    readings, calls = {}, {}
    for bounded in (False, True):
        monkeypatch.setattr(detect, "BOUNDED_OPINIONS", bounded)
        count[0] = 0
        readings[bounded] = [detect.recheck_turns(rolled_scene.image, t.centre, t.size / BLAZE_TO_SQUARE, t.roll + 90,
                                                  detect.RECHECK_THRESHOLD)[0] for t in rolled_scene.faces]
        calls[bounded] = count[0]
    for a, b in zip(readings[False], readings[True], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert (a.rotation, round(a.score, 6)) == (b.rotation, round(b.score, 6))
            assert a.roll == pytest.approx(b.roll)
    assert 0 < calls[True] <= calls[False]


def _same_place(a: detect.Candidate, b: detect.Candidate) -> bool:
    return float(np.hypot(*(a.centre - b.centre))) < 0.5 * max(a.side, b.side)


def _merge_one_by_one(candidates: list[detect.Candidate]) -> list[tuple]:
    """The merge's rule asked pair by pair (as it was written before it was vectorised)."""
    clusters: list[list[detect.Candidate]] = []
    for c in sorted(candidates, key=lambda c: -c.score):
        home = next((cl for cl in clusters if _same_place(c, cl[0]) and 0.5 < c.side / cl[0].side < 2.0), None)
        if home is None:
            clusters.append([c])
        else:
            home.append(c)
    return [(tuple(cl[0].centre), cl[0].side, len(cl), [tuple(m.centre) for m in cl]) for cl in clusters]


@given(st.lists(st.tuples(st.floats(0, 200), st.floats(0, 200), st.floats(8, 120), st.floats(0.3, 1.0)),
                max_size=60))
@settings(max_examples=60, deadline=None)
def test_the_vectorised_merge_keeps_the_pairwise_rule(raw):
    def fresh():
        return [detect.Candidate(np.array([x, y]), side, 0.0, score, np.zeros((6, 2)), 0) for x, y, side, score in raw]

    merged = detect.merge(fresh())
    assert [(tuple(c.centre), c.side, c.hits, [tuple(m.centre) for m in c.members]) for c in merged] == \
        _merge_one_by_one(fresh())
