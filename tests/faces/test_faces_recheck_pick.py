"""The reading the re-check hands on, and its roll through refinement: the face's roll whichever turn wins, only a
turn the caller keeps (detect.PICK_ABOVE_FLOOR), and a face the mesh does not fit keeps that roll
(finder.SNAP_GUESSED_EYES; issue 17's eleventh pass)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faces_helpers import one_pasted_face, roll_error
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import FaceFinderSettings, detect, finder, transform
from bump_backend.faces.finder import BLAZE_TO_SQUARE
from bump_backend.faces.groundtruth import make_scene

pytest.importorskip("mediapipe")


def test_faces_at_any_roll_under_an_upright_proposal_are_read_within_15_degrees():
    """Twenty pasted faces, 32-96 px, any roll: the re-check's roll is the face's, whichever turn wins."""
    for seed in range(2000, 2020):
        scene = one_pasted_face(seed)
        truth = scene.faces[0]
        found, _ = detect.recheck_turns(scene.image, truth.centre, truth.size / BLAZE_TO_SQUARE, 0.0,
                                        detect.RECHECK_THRESHOLD, 0.6, 0.6)
        assert found is not None and roll_error(found.roll, truth.roll) < 15, (seed, truth.roll, found)


def test_a_turn_under_the_floor_does_not_contend(monkeypatch):
    """Two contending turns of one face: the right way up reading 0.58, a quarter turn off 0.7. The full-range model
    prefers the first, which the caller then drops for its short-range score: with PICK_ABOVE_FLOOR the
    reading that goes on is the one the caller keeps, and refinement turns it the right way up."""
    scene = one_pasted_face(2000)
    truth = scene.faces[0]
    side = truth.size / BLAZE_TO_SQUARE

    def turns():
        right = detect.Candidate(np.array(truth.centre, float), side, truth.roll, 0.58, np.zeros((6, 2)), 0)
        off = detect.Candidate(np.array(truth.centre, float), side, float(transform.wrap(truth.roll + 90)), 0.7,
                               np.zeros((6, 2)), 90)
        return [off, right]

    monkeypatch.setattr(detect, "PICK_ABOVE_FLOOR", False)
    lost = detect._choose_turn(scene.image, turns(), 0.0, 0.6)
    assert lost.score < 0.6 and lost.opinion >= 0.5  # the full-range model's pick, which the caller drops
    monkeypatch.setattr(detect, "PICK_ABOVE_FLOOR", True)
    kept = detect._choose_turn(scene.image, turns(), 0.0, 0.6)
    assert kept.score >= 0.6 and kept.opinion is None  # the only contender left: no full-range call
    face = finder._face_from_candidate(scene.image, kept, refine=True)  # the mesh finds the face's own roll
    assert finder._accepted(face, FaceFinderSettings()) and roll_error(face.roll, truth.roll) < 15


def _profile_points(centre: np.ndarray, size: float, roll: float) -> np.ndarray:
    """BlazeFace's six points of a face at ``roll`` seen nearly from the side (the eyes together, the nose beside an
    ear): a yaw of over 60° by keypoint_yaw."""
    a = math.radians(roll)
    along, down = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    half = 0.45 * size
    return np.array([centre - 0.03 * size * along, centre + 0.03 * size * along, centre + 0.99 * half * along,
                     centre + 0.3 * size * down, centre - half * along, centre + half * along])


@pytest.mark.parametrize("seed, size, roll", [(3, 40.0, 37.0), (4, 32.0, -41.0), (5, 48.0, 130.0), (6, 40.0, -140.0)])
def test_a_face_without_a_mesh_fit_keeps_its_readings_roll(seed, size, roll, monkeypatch):
    """Nose and ears that read yaw > 60° once sent such a face to the image's nearest quarter turn, 35-45° off here
    (a 32 px three-quarter face at 37° went to 0°, where the full-range model read nothing)."""
    scene = make_scene(np.random.default_rng(seed), 320, 320, [(size, roll)], mirror_chance=0.0)
    truth = scene.faces[0]
    centre = np.array(truth.centre, float)
    points = _profile_points(centre, truth.size, truth.roll)
    assert finder.keypoint_yaw(points, truth.roll, truth.size) > 60
    rolls = {}
    for snap in (True, False):
        monkeypatch.setattr(finder, "SNAP_GUESSED_EYES", snap)
        candidate = detect.Candidate(centre, truth.size / BLAZE_TO_SQUARE, truth.roll, 0.8, points, 0)
        face = finder._refined(scene.image, candidate, False, 0.5, False)  # refine=False: no mesh fit
        assert face.landmarks is None
        rolls[snap] = roll_error(face.roll, truth.roll)
    assert rolls[True] > 30 and rolls[False] < 1, rolls


@settings(deadline=None, max_examples=60)
@given(yaw=st.floats(-89, 89), roll=st.floats(-180, 180), side=st.floats(20, 400), mirrored=st.booleans())
def test_keypoint_yaw_reads_the_nose_and_eyes_at_any_roll(yaw, roll, side, mirrored):
    """The nose tip NOSE_REACH x side x sin(yaw) beside the eye midpoint and the eyes EYE_SPAN x side x cos(yaw) apart
    read ``yaw`` whatever the roll and size; mirrored, the opposite yaw. The ear points play no part (on three-quarter
    views the far one is a guess)."""
    a = math.radians(roll)
    along, down = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    centre = np.array([500.0, 400.0])
    offset = finder.NOSE_REACH * side * math.sin(math.radians(yaw))
    spread = finder.EYE_SPAN * side * math.cos(math.radians(yaw))
    sign = -1.0 if mirrored else 1.0
    points = np.array([centre - spread / 2 * along, centre + spread / 2 * along, centre + sign * offset * along
                       + 0.1 * side * down, centre + 0.3 * side * down, centre - 0.5 * side * along, centre])
    assert finder.keypoint_yaw(points, roll, side) == pytest.approx(sign * yaw, abs=1e-6)


@settings(deadline=None, max_examples=60)
@given(roll=st.floats(-180, 180), side=st.floats(20, 400), facing_right=st.booleans(), spread=st.floats(0.0, 0.15))
def test_a_side_on_reading_takes_its_roll_from_the_mouth(roll, side, facing_right, spread):
    """Eye points closer than SIDE_ON_SPREAD x side: the roll is the mouth-to-eyes line's, turned MOUTH_LEAN toward the
    nose's side, whatever the eye line says; eyes apart as on a face seen from the front: the eye line's."""
    a = math.radians(roll)
    along = np.array([math.cos(a), math.sin(a)])
    sign = 1.0 if facing_right else -1.0
    lean = math.radians(sign * detect.MOUTH_LEAN)
    # The mouth sits below the eyes on a line leaning MOUTH_LEAN off the face's own vertical.
    up_seen = np.array([math.sin(a - lean), -math.cos(a - lean)])
    eyes = np.array([400.0, 300.0])
    tilt = np.array([along[1], -along[0]])  # the eye points' own, misleading line: across the face's vertical
    points = np.array([eyes - spread * side / 2 * tilt, eyes + spread * side / 2 * tilt, eyes + sign * 0.3 * side * along,
                       eyes - 0.45 * side * up_seen, eyes - 0.4 * sign * side * along, eyes])
    assert abs(transform.wrap(detect.keypoint_roll(points, side) - roll)) < 1e-6
    frontal = points.copy()
    frontal[0], frontal[1] = eyes - 0.2 * side * along, eyes + 0.2 * side * along
    assert abs(transform.wrap(detect.keypoint_roll(frontal, side) - roll)) < 1e-6


@settings(deadline=None, max_examples=60)
@given(roll=st.floats(-180, 180), side=st.floats(10, 600), x=st.floats(0, 2000), y=st.floats(0, 2000),
       shift=st.floats(0.05, 0.3))
def test_nearby_squares_lie_shift_off_in_the_faces_own_frame(roll, side, x, y, shift):
    """The squares O-Net reads around a side-on face (finder.SIDE_ON_SEARCH): seen in the face's upright crop, the
    eight others of a 3x3 grid ``shift`` x side apart, same side and roll."""
    squares = finder.nearby_squares((x, y), side, roll, shift)
    to_upright = transform.upright((x, y), roll, 1.0, (0.0, 0.0))
    offsets = transform.apply(to_upright, np.array([c for c, _, _ in squares])) / (shift * side)
    grid = sorted((i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if i or j)
    assert sorted((round(float(u)), round(float(v))) for u, v in offsets) == grid
    assert np.allclose(offsets, np.round(offsets), atol=1e-6)
    assert all(s == side and r == roll for _, s, r in squares)
