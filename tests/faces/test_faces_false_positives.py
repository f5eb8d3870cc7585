"""The checks on clutter that passed as a face: a mesh fit must be seen on its own crop, a mesh-vouched face
by the full-range model as is or mirrored, a moderate agreement mirrored too (fifth pass), the mirrored crop
read at the re-check floor (sixth pass)."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import background, face_free, make_scene

pytest.importorskip("mediapipe")

CHECKS = ("MESH_NEEDS_RECHECK", "VOUCH_NEEDS_SIGHT", "MIRROR_CHECK")
# Weak proposals (0.35) show the most clutter; one thread keeps the search's order fixed.
SETTINGS = FaceFinderSettings(min_face_size=24, skip_smaller_than=0, proposal_confidence=0.35, workers=1)


@pytest.mark.parametrize("seed, size, roll", [(4, 56, 30), (2, 40, -120), (5, 72, 170)])
def test_a_mirrored_opinion_is_the_opinion_on_the_mirrored_image(seed, size, roll):
    """Mirroring the full-range crop is mirroring the image about the face: centre x -> W - x, roll -> -roll."""
    scene = make_scene(np.random.default_rng(seed), 320, 320, [(size, roll)], mirror_chance=0.0)
    truth = scene.faces[0]
    side = truth.size / BLAZE_TO_SQUARE
    mirrored = detect.second_opinion(scene.image, truth.centre, side, truth.roll, mirrored=True)
    flipped = np.ascontiguousarray(scene.image[:, ::-1])
    as_seen = detect.second_opinion(flipped, (320 - truth.centre[0], truth.centre[1]), side, -truth.roll)
    assert mirrored >= detect.SECOND_ENOUGH and mirrored == pytest.approx(as_seen, abs=2e-3)


@pytest.mark.parametrize("seed", [309, 445])
def test_clutter_that_passed_as_a_face_is_dropped(seed, monkeypatch):
    """Found by searching 500 clutter images: each passed as one face before these checks, none after. (YuNet's word,
    finder.YUNET_CHECK, drops them too: it is off here, so these checks are tested alone.)"""
    image = background(np.random.default_rng(seed), 384, 384)
    monkeypatch.setattr(finder, "YUNET_CHECK", False)
    for name in CHECKS:
        monkeypatch.setattr(finder, name, False)
    before = find_faces(image, settings=SETTINGS)
    assert len(before.faces) + len(before.skipped) == 1
    for name in CHECKS:
        monkeypatch.setattr(finder, name, True)
    after = find_faces(image, settings=SETTINGS)
    assert not after.faces and not after.skipped


def test_real_faces_pass_the_checks():
    """Faces of 24-96 px at any roll are still found, and nothing else."""
    scene = make_scene(np.random.default_rng(11), 640, 640, [(24, 20), (32, -100), (48, 160), (64, 75), (96, -30)])
    result = find_faces(scene.image, settings=SETTINGS)
    found = result.faces + [s.face for s in result.skipped]
    for truth in scene.faces:
        assert any(np.hypot(f.centre[0] - truth.centre[0], f.centre[1] - truth.centre[1]) < 0.5 * truth.size
                   and 0.6 < f.size / truth.size < 1.6 for f in found), truth
    assert len(found) == len(scene.faces)


def test_the_mirrored_crop_must_read_what_a_re_check_must(monkeypatch):
    """A 1440x1440 clutter image that passed as one face: the full-range model lost it mirrored, the short-range
    model saw the mirrored crop at 0.58, under the 0.6 a re-check needs (issue 17's sixth pass)."""
    assert FaceFinderSettings.recheck_floor == finder.MIRROR_FLOOR
    # The benchmark's face-free image 14 of seed 7017 (bench_faces.py --face-free, its shapes and damage)
    image = face_free(7017, 15, ((1440, 1440), (1280, 720)), ("none", "noise", "blur", "jpeg"))[14]
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    monkeypatch.setattr(detect, "RESCUE", False)  # the search of then (the eighth pass's second look: below)
    monkeypatch.setattr(finder, "SNAP_GUESSED_EYES", True)  # as then (the eleventh pass keeps the reading's roll)
    # ... with the yaw and roll readings of then (the thirteenth pass: the snap above reads the yaw)
    monkeypatch.setattr(finder, "YAW_FROM_NOSE", False)
    monkeypatch.setattr(detect, "SIDE_ON_ROLL", False)
    monkeypatch.setattr(finder, "SIDE_ON_VOUCH", False)
    monkeypatch.setattr(finder, "MIRROR_FLOOR", detect.RECHECK_THRESHOLD)
    before = find_faces(image, settings=settings)
    found = before.faces + [s.face for s in before.skipped]  # the image is blurred: skipped as too blurry
    assert len(found) == 1 and found[0].extra["full_range_mirrored"] == 0.0
    monkeypatch.setattr(finder, "MIRROR_FLOOR", FaceFinderSettings.recheck_floor)
    after = find_faces(image, settings=settings)
    assert not after.faces and not after.skipped
    monkeypatch.setattr(detect, "RESCUE", True)
    monkeypatch.setattr(finder, "SNAP_GUESSED_EYES", False)
    monkeypatch.setattr(finder, "YAW_FROM_NOSE", True)
    monkeypatch.setattr(detect, "SIDE_ON_ROLL", True)
    monkeypatch.setattr(finder, "SIDE_ON_VOUCH", True)
    now = find_faces(image, settings=settings)
    assert not now.faces and not now.skipped
