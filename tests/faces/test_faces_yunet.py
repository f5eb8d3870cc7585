"""YuNet (the yuface wheel) and the finder's use of it (finder.YUNET_CHECK: a mesh-fitted face that would be kept at a
modest score is dropped where YuNet, read upright at its roll, sees no face; finder.YUNET_VOUCH and finder.UNDER_FLOOR,
tested on the demo character's turned heads in test_faces_demo_renders.py; UNDER_FLOOR on clutter here)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from faces_helpers import clutter_squares

from bump_backend.faces import FaceFinderSettings, detect, find_faces, finder, transform, yunet
from bump_backend.faces.groundtruth import background, face_free

pytest.importorskip("mediapipe")
needs_yunet = pytest.mark.skipif(not yunet.available(), reason="yuface is not installed")
SETTINGS = FaceFinderSettings(skip_smaller_than=0)


@needs_yunet
def test_yunet_takes_rgb_uint8_images_only():
    with pytest.raises(ValueError, match="RGB uint8"):
        yunet.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        yunet.detect(np.zeros((64, 64, 3), np.float32))
    assert all(score < finder.YUNET_FLOOR for score, _ in yunet.detect(np.zeros((64, 64, 3), np.uint8)))


@needs_yunet
def test_loading_yunet_leaves_the_environment_as_it_was(monkeypatch):
    before = dict(os.environ)
    monkeypatch.setattr(yunet, "_module", None)
    yunet._load()  # imported again: sys.modules has it, the first call is made again
    assert yunet._module is not None
    assert dict(os.environ) == before


@needs_yunet
def test_yunet_reads_real_faces_at_their_roll(rolled_scene):
    """Six photo faces of 32-180 px at rolls all round: each reads well over the floor upright, where it is."""
    for t in rolled_scene.faces:
        reading = detect.yunet_opinion(rolled_scene.image, t.centre, t.size, t.roll)
        assert reading >= 0.7, (t.size, t.roll, reading)


@needs_yunet
@pytest.mark.parametrize("off", [90.0, 180.0, -90.0, 37.0])
def test_yunet_reads_a_face_best_at_its_own_roll_from_any_start(rolled_scene, off):
    """detect.yunet_roll: a face square read starting ``off`` its roll comes back at its roll, reading YUNET_VOUCHES."""
    for t in rolled_scene.faces:
        reading, roll = detect.yunet_roll(rolled_scene.image, t.centre, t.size, t.roll + off)
        assert reading >= finder.YUNET_VOUCHES and abs(transform.wrap(roll - t.roll)) <= 15.0, (t.size, t.roll, roll)


@needs_yunet
def test_yunet_finds_no_roll_for_clutter():
    image, squares = clutter_squares(8, 40)
    readings = [detect.yunet_roll(image, *square) for square in squares]
    assert all(reading < finder.YUNET_VOUCHES for reading, _ in readings), readings
    assert all(roll == square[2] for (reading, roll), square in zip(readings, squares, strict=True) if reading == 0.0)


@needs_yunet
def test_a_candidate_read_a_quarter_turn_off_is_refined_at_yunet_s_roll(rolled_scene, monkeypatch):
    """finder._yunet_turned: each face's square, read by the short-range model 90° off its roll, is refined again at the
    roll YuNet reads best and accepted there, the 180 and 120 px faces too (finder.ROLL_SEARCH_MAX_SIDE: no bound since
    the thirty-second pass); under a bound, a larger candidate is left as it was, and so is a clutter square's."""
    image = rolled_scene.image
    for t in rolled_scene.faces:
        side = t.size / finder.BLAZE_TO_SQUARE
        wrong = detect.recheck(image, t.centre, side, t.roll + 90.0, detect.RECHECK_THRESHOLD)
        assert wrong is not None
        if wrong.side > detect.UNDER_FLOOR_MAX_SIDE:  # the 180 and 120 px faces
            with monkeypatch.context() as bounded:
                bounded.setattr(finder, "ROLL_SEARCH_MAX_SIDE", detect.UNDER_FLOOR_MAX_SIDE)
                assert finder._yunet_turned(image, wrong, None, SETTINGS.confidence) is None
        face = finder._yunet_turned(image, wrong, None, SETTINGS.confidence)
        assert face is not None and finder._passes(face, SETTINGS.confidence), (t.size, t.roll)
        assert face.extra["yunet_turn"] >= finder.YUNET_VOUCHES and abs(transform.wrap(face.roll - t.roll)) <= 20.0
    clutter, squares = clutter_squares(8, 40)
    for centre, side, roll in squares[:10]:
        c = detect.Candidate(np.array(centre), side / finder.BLAZE_TO_SQUARE, roll, 0.6, np.zeros((6, 2)), 0)
        assert finder._yunet_turned(clutter, c, None, SETTINGS.confidence) is None


@needs_yunet
def test_a_candidate_under_the_floor_read_a_quarter_turn_off_is_refined_at_yunet_s_roll(rolled_scene, monkeypatch):
    """A re-check reading under the floor (``under_floor``) 90° off a face's roll: YuNet and a full-range model do not
    see it at that roll (finder.UNDER_FLOOR), YuNet's best roll does (finder.ROLL_SEARCH_UNDER_FLOOR)."""
    image = rolled_scene.image
    for t in rolled_scene.faces[3:]:  # 64, 40 and 32 px
        wrong = detect.recheck(image, t.centre, t.size / finder.BLAZE_TO_SQUARE, t.roll + 90.0, detect.RECHECK_THRESHOLD)
        wrong.under_floor = True
        monkeypatch.setattr(finder, "ROLL_SEARCH_UNDER_FLOOR", False)
        assert finder._face_from_candidate(image, wrong, True, SETTINGS.confidence, True) is None
        monkeypatch.setattr(finder, "ROLL_SEARCH_UNDER_FLOOR", True)
        face = finder._face_from_candidate(image, wrong, True, SETTINGS.confidence, True)
        assert finder._passes(face, SETTINGS.confidence) and abs(transform.wrap(face.roll - t.roll)) <= 20.0


@needs_yunet
def test_yunet_sees_no_face_in_clutter():
    image, squares = clutter_squares(8, 40)
    readings = [detect.yunet_opinion(image, *square) for square in squares]
    assert sum(r >= finder.YUNET_FLOOR for r in readings) <= 1, readings


@needs_yunet
@pytest.mark.parametrize("seed", [368, 1105])
def test_clutter_the_mesh_and_both_blazeface_models_took_for_a_face_is_dropped(seed, monkeypatch):
    """Found by searching 1500 384 px clutter images (12 such faces, 10 dropped now): the mesh fitted it and both
    BlazeFace models agreed, so it was kept; YuNet reads no face there."""
    image = background(np.random.default_rng(seed), 384, 384)
    monkeypatch.setattr(finder, "YUNET_CHECK", False)
    before = find_faces(image, settings=SETTINGS)
    kept = before.faces + [s.face for s in before.skipped]
    assert len(kept) == 1 and kept[0].landmarks is not None and kept[0].score < finder.YUNET_BELOW
    monkeypatch.setattr(finder, "YUNET_CHECK", True)
    after = find_faces(image, settings=SETTINGS)
    assert not after.faces and not after.skipped


@needs_yunet
def test_clutter_read_a_little_under_the_re_check_floor_is_not_kept():
    """Re-check readings from detect.UNDER_FLOOR_FROM up to the floor on face-free clutter, away from the survivors,
    are handed on marked ``under_floor``, and refinement keeps none: YuNet and a full-range model must both see a face
    there (finder.UNDER_FLOOR). So are P-Net's small faces the re-check read nothing on (detect.SMALL_UNSEEN, O-Net's
    reading for a score). Without the second look none is handed on."""
    search = dict(min_face=24, rotations=(0,), proposal=0.45, floor=0.6, workers=1, coarse_rotations=(0, 90, 180, 270))
    marked_in_all = 0
    for image in face_free(7017, 9, ((640, 480),), ("none", "noise", "blur", "jpeg")):
        candidates, _ = detect.detect(image, **search)
        marked = [c for c in candidates if c.under_floor]
        assert all((detect.UNDER_FLOOR_FROM <= c.score < search["floor"] if not c.o_net
                    else c.score == c.o_net >= detect.SMALL_UNSEEN_O) and c.side <= detect.UNDER_FLOOR_MAX_SIDE
                   for c in marked)
        assert detect.near_none(marked, [c for c in candidates if not c.under_floor]) == marked
        assert all(finder._face_from_candidate(image, c, True, SETTINGS.confidence, True) is None for c in marked)
        marked_in_all += len(marked)
        assert not any(c.under_floor for c in detect.detect(image, **search, second_look=False)[0])
    assert marked_in_all >= 3


@needs_yunet
def test_real_faces_keep_through_yunets_word(rolled_result, rolled_scene):
    """Every face is still found. Of the faces the mesh fitted, those under YUNET_BELOW were asked (a sure face costs
    no call) and read over the floor; a face the mesh did not fit carries a reading only where YuNet vouched for it."""
    assert len(rolled_result.faces) == len(rolled_scene.faces)
    for face in rolled_result.faces:
        asked = "yunet" in face.extra
        if face.landmarks is not None:
            assert asked == (face.score < finder.YUNET_BELOW), face.extra
            assert not asked or face.extra["yunet"] >= finder.YUNET_FLOOR
        else:
            assert not asked or face.extra["yunet"] >= finder.YUNET_VOUCHES


def test_without_yuface_the_search_goes_on(rolled_scene, monkeypatch):
    monkeypatch.setitem(sys.modules, "yuface", None)  # as where the wheel is not installed: importing it fails
    monkeypatch.setattr(yunet, "_module", None)
    monkeypatch.setattr(yunet, "_missing", False)
    assert not yunet.available()
    faces = find_faces(rolled_scene.image, settings=SETTINGS).faces
    assert len(faces) == len(rolled_scene.faces)
    assert not any("yunet" in f.extra for f in faces)
    with pytest.raises(RuntimeError, match="yuface"):
        yunet.detect(np.zeros((64, 64, 3), np.uint8))
