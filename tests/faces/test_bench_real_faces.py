"""The benchmark's real parts (bench_faces.py --part real / real_tune): LFW faces of real people from scikit-image's
subset, pasted with known geometry into grey scenes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")

from bump_backend.faces import FaceFinderSettings, find_faces  # noqa: E402


def test_the_lfw_faces_split_into_a_tune_half_and_a_held_out_half():
    faces = face_sources.real_faces()
    assert len(faces) == 100
    assert all(f.image.shape == (25, 25) and f.image.dtype == np.uint8 for f in faces)
    assert sum(f.held_out for f in faces) == 50
    assert {f.index % 2 for f in faces if f.held_out} == {1}
    assert faces[3].name == "lfw/3"


@pytest.mark.parametrize("mirror", [False, True])
def test_a_pasted_lfw_face_s_truth_follows_its_size_roll_and_mirror(mirror):
    face = face_sources.real_faces()[2]
    canvas = np.full((200, 200, 3), 128, np.uint8)
    truth = bench_faces.place_real(canvas, face, (100.0, 90.0), 32.0, 40.0, mirror)
    assert truth.centre == pytest.approx((100.0, 90.0), abs=1e-6)
    # The face square turned 40°: its bounds are side * (cos + sin).
    assert truth.box[2] - truth.box[0] == pytest.approx(32 * (math.cos(math.radians(40)) + math.sin(math.radians(40))))
    # The crop's own eye line leans -3.2° (face_sources.LFW_EYES); mirrored, the other way.
    lean = math.degrees(math.atan2(face_sources.LFW_EYES[1][1] - face_sources.LFW_EYES[0][1],
                                   face_sources.LFW_EYES[1][0] - face_sources.LFW_EYES[0][0]))
    assert truth.roll == pytest.approx(40 + (-lean if mirror else lean), abs=0.01)
    eye_gap = (face_sources.LFW_EYES[1][0] - face_sources.LFW_EYES[0][0]) / face_sources.LFW_SIDE * 32
    assert math.dist(truth.right_eye, truth.left_eye) == pytest.approx(eye_gap, rel=0.02)
    assert truth.source == "lfw/2" and truth.mirrored is mirror
    # Pasted inside its disc: the canvas changed around the face, not far from it.
    changed = np.argwhere(np.abs(canvas.astype(int) - 128).max(axis=2) > 0)
    assert np.abs(changed - [90, 100]).max() <= 32 / face_sources.LFW_SIDE / 2 * 1.5


def test_a_real_part_s_scenes_are_grey_with_faces_of_24_and_32_px_from_its_own_half():
    held = tuple(f for f in face_sources.real_faces() if f.held_out)
    scenes = bench_faces.build(38, 2, [], (), reals=held, **bench_faces.REAL)
    for scene in scenes:
        assert np.array_equal(scene.image[:, :, 0], scene.image[:, :, 1])
        assert np.array_equal(scene.image[:, :, 1], scene.image[:, :, 2])
        assert scene.faces and {t.size for t in scene.faces} <= {24.0, 32.0}
        assert all(int(t.source.split("/")[1]) % 2 == 1 for t in scene.faces)


def test_a_pasted_lfw_face_is_found_where_its_truth_says():
    """The truth is the search's own definition of a face square: a clear face pasted at 32 px is matched."""
    face = face_sources.real_faces()[2]
    rng = np.random.default_rng(5)
    canvas = bench_faces.clutter(rng, 320, 240)
    canvas = bench_faces._grey(canvas)
    truth = bench_faces.place_real(canvas, face, (160.0, 120.0), 32.0, 0.0, False)
    result = find_faces(canvas, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1))
    found = [bench_faces.found_face(f) for f in result.faces + [s.face for s in result.skipped]]
    assert any(bench_faces.matches(truth, f) for f in found)
