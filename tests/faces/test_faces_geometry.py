"""Faces from the render sidecar: exact at any size, no detector calls, scaled with the image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faces_helpers import match

from bump_backend.faces import FaceFinderSettings, align_face, find_faces, transform
from bump_backend.faces.geometry import GeometryMismatch
from bump_backend.faces.groundtruth import make_scene
from bump_contracts.face_geometry import FaceGeometry
from bump_contracts.render_sidecar import RenderSidecar, SidecarFace, loads


def sidecar_for(scene, *, width=None, height=None, yaw=0.0, in_frame=True) -> RenderSidecar:
    h, w = scene.image.shape[:2]
    faces = []
    for i, t in enumerate(scene.faces):
        g = FaceGeometry(head_centre=t.centre, right_eye=t.right_eye, left_eye=t.left_eye, face_box=t.box,
                         roll=t.roll, yaw=yaw, pitch=0.0, eye_distance_px=math.dist(t.right_eye, t.left_eye),
                         depth_m=3.0, in_frame=in_frame)
        faces.append(SidecarFace(character_id=f"hero{i}", character_name=f"Hero {i}", geometry=g))
    return RenderSidecar(width=width or w, height=height or h, faces=tuple(faces))


@pytest.fixture(scope="module")
def tiny_scene():
    return make_scene(np.random.default_rng(2), 400, 300, [(16, 30), (20, -170), (100, 95)], mirror_chance=0.0)


def test_geometry_is_exact_with_no_detector_calls(tiny_scene):
    sidecar = loads(sidecar_for(tiny_scene).dumps())  # through the JSON contract
    result = find_faces(tiny_scene.image, sidecar, FaceFinderSettings(skip_smaller_than=0))
    assert result.detector_calls == 0
    assert len(result.faces) == 3
    for t in tiny_scene.faces:
        f = match(t, result.faces)
        assert f is not None and f.source == "geometry" and f.character_id.startswith("hero")
        assert math.isclose(f.roll, t.roll, abs_tol=1e-3)
        assert np.allclose(f.box, t.box, atol=1e-3)  # passed through exactly
        assert math.isclose(f.size, t.size, rel_tol=0.05)  # box vs eye roll: the source photo's own ~3° tilt
    as_json = result.to_dict()
    assert as_json["faces"][0]["source"] == "geometry" and "character_id" in as_json["faces"][0]


def test_default_rules_skip_the_16_px_face_with_a_reason(tiny_scene):
    result = find_faces(tiny_scene.image, sidecar_for(tiny_scene))
    assert len(result.faces) == 1 and len(result.skipped) == 2
    assert all(s.reason.startswith("too small") for s in result.skipped)


def test_sidecar_for_a_larger_render_is_scaled(tiny_scene):
    big = sidecar_for(tiny_scene)
    faces = []
    for f in big.faces:
        g = f.geometry
        s = lambda p: (p[0] * 2, p[1] * 2)  # noqa: E731
        faces.append(SidecarFace(f.character_id, f.character_name, FaceGeometry(
            head_centre=s(g.head_centre), right_eye=s(g.right_eye), left_eye=s(g.left_eye),
            face_box=tuple(v * 2 for v in g.face_box), roll=g.roll, yaw=g.yaw, pitch=g.pitch,
            eye_distance_px=g.eye_distance_px * 2, depth_m=g.depth_m)))
    doubled = RenderSidecar(width=800, height=600, faces=tuple(faces))
    result = find_faces(tiny_scene.image, doubled, FaceFinderSettings(skip_smaller_than=0))
    for t in tiny_scene.faces:
        assert match(t, result.faces) is not None
    with pytest.raises(GeometryMismatch, match="aspect"):
        find_faces(tiny_scene.image, sidecar_for(tiny_scene, width=400, height=400))


def test_out_of_frame_and_full_profile(tiny_scene):
    result = find_faces(tiny_scene.image, sidecar_for(tiny_scene, in_frame=False))
    assert result.faces == [] and all("out of frame" in s.reason for s in result.skipped)
    profile = find_faces(tiny_scene.image, sidecar_for(tiny_scene, yaw=-90.0)).faces[0]
    aligned = align_face(tiny_scene.image, profile, size=128)
    # Roll still comes from the geometry; the window moves toward where the nose points (image-left).
    centre_in_crop = transform.apply(aligned.matrix, np.array([profile.centre]))[0]
    assert centre_in_crop[0] > 64 + 10
    assert aligned.face.roll == profile.roll


def test_cross_check_runs_the_detector_and_annotates(tiny_scene):
    result = find_faces(tiny_scene.image, sidecar_for(tiny_scene),
                        FaceFinderSettings(cross_check=True, skip_smaller_than=0))
    assert result.detector_calls > 0
    big = max(result.faces, key=lambda f: f.size)
    assert big.source == "geometry" and big.extra["detector_score"] >= 0.5
    assert abs(transform.wrap(big.extra["detector_roll"] - big.roll)) < 3


def test_a_too_small_reason_shows_a_size_just_under_the_bar():
    """A 31.6 px face under a 32 px bar read "32 px < 32 px" when the size was rounded to whole pixels."""
    from bump_backend.faces.finder import apply_rules
    from bump_backend.faces.types import Face, FaceFinderSettings

    face = Face(box=(10.0, 10.0, 41.6, 41.6), score=0.9, eyes=((20.0, 22.0), (32.0, 22.0)), roll=0.0, yaw=0.0,
                pitch=0.0, source="detector")
    kept, skipped = apply_rules([face], [], FaceFinderSettings(skip_smaller_than=32), (100, 100, 3))
    assert not kept and skipped[0].reason == "too small: 31.6 px < 32 px"
