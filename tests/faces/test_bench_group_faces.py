"""The benchmark's group parts (bench_faces.py --part group / group_tune): the six people of the group photo that
insightface's wheel ships, their whole heads pasted with known geometry."""

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


def test_the_group_photo_s_six_faces_split_into_three_tuned_on_and_three_held_out():
    photo = face_sources.group_photo()
    assert photo.shape == (886, 1280, 3) and photo.dtype == np.uint8 and not photo.flags.writeable
    faces = face_sources.group_faces()
    assert [f.name for f in faces] == [f"group/{i}" for i in range(6)]
    assert [f.held_out for f in faces] == [False, True] * 3
    assert [f.source.centre[0] for f in faces] == sorted(f.source.centre[0] for f in faces)  # left to right


def test_the_measured_geometry_is_the_search_s_own_face_square_and_eyes():
    """GROUP_FACES was measured once by the search; it still reads the photo so (the truth's definition)."""
    result = find_faces(face_sources.group_photo(), settings=FaceFinderSettings(skip_smaller_than=0, workers=1))
    assert len(result.faces) == 6
    for face in face_sources.group_faces():
        src = face.source
        found = min(result.faces, key=lambda f: math.dist(f.centre, src.centre))
        assert math.dist(found.centre, src.centre) < 0.03 * src.side
        assert found.size == pytest.approx(src.side, rel=0.05)
        assert found.landmarks is not None  # mesh-fitted: its eyes are the irises
        assert math.dist(found.eyes[0], src.right_eye) < 3 and math.dist(found.eyes[1], src.left_eye) < 3


@pytest.mark.parametrize("mirror", [False, True])
def test_a_pasted_group_face_s_truth_follows_its_size_roll_and_mirror(mirror):
    face = face_sources.group_faces()[3]
    src = face.source
    canvas = np.full((240, 240, 3), 128, np.uint8)
    truth = bench_faces.place_group(canvas, face, (120.0, 110.0), 48.0, 40.0, mirror)
    assert truth.centre == pytest.approx((120.0, 110.0), abs=1e-6)
    assert truth.box[2] - truth.box[0] == pytest.approx(48 * (math.cos(math.radians(40)) + math.sin(math.radians(40))))
    lean = math.degrees(math.atan2(src.left_eye[1] - src.right_eye[1], src.left_eye[0] - src.right_eye[0]))
    assert truth.roll == pytest.approx(40 + (-lean if mirror else lean), abs=0.01)
    assert math.dist(truth.right_eye, truth.left_eye) == pytest.approx(
        math.dist(src.right_eye, src.left_eye) * 48 / src.side, rel=1e-6)
    assert truth.source == "group/3" and truth.mirrored is mirror
    # Pasted through its ellipse: the canvas changed around the head, not far from it.
    changed = np.argwhere(np.abs(canvas.astype(int) - 128).max(axis=2) > 0)
    reach = 48 * (max(face_sources.GROUP_ELLIPSE) + 0.1)
    assert changed.size and np.abs(changed - [110, 120]).max() <= reach + 1


def test_a_group_part_s_scenes_hold_faces_of_its_own_half_at_every_size():
    held = tuple(f for f in face_sources.group_faces() if f.held_out)
    scenes = bench_faces.build(42, 4, [], (), group=held)
    faces = [t for scene in scenes for t in scene.faces]
    assert faces and all(int(t.source.split("/")[1]) % 2 == 1 for t in faces)
    assert {t.size for t in faces} <= set(map(float, bench_faces.SIZES)) and len({t.size for t in faces}) > 2
    assert not np.array_equal(scenes[0].image[:, :, 0], scenes[0].image[:, :, 2])  # colour


def test_a_pasted_group_face_is_found_where_its_truth_says():
    face = face_sources.group_faces()[2]
    rng = np.random.default_rng(5)
    canvas = bench_faces.clutter(rng, 320, 240)
    truth = bench_faces.place_group(canvas, face, (160.0, 120.0), 32.0, 150.0, False)
    result = find_faces(canvas, settings=FaceFinderSettings(min_face_size=24, skip_smaller_than=0, workers=1))
    found = [bench_faces.found_face(f) for f in result.faces + [s.face for s in result.skipped]]
    assert any(bench_faces.matches(truth, f) for f in found)
