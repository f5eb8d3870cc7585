"""Posed package views against the face pipeline: the manifest's projected eyes must land on the
irises mediapipe finds (within 3 % of the width), and over-the-shoulder views must show a face the
detector finds, turned as the manifest says (yaw within 10 degrees)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, find_faces

pytest.importorskip("bpy")
pytest.importorskip("mediapipe")

VIEWS = ("over_shoulder_left", "over_shoulder_right", "up", "down")
EXPRESSIONS = ("smile",)
EYE_TOLERANCE = 0.03  # share of the image width
YAW_TOLERANCE = 10.0


@pytest.fixture(scope="module")
def posed(tmp_path_factory):
    """{view: (RGB image, ViewRecord)} of a posed demo package, 256 px, PREVIEW quality."""
    from bump_contracts.package_manifest import load_package
    from bump_contracts.views import resolve_views
    from profile_rig.blender.package_render import PackageOptions
    from profile_rig.blender.scene_session import prepare_scene
    from profile_rig.core.phenotype import PRESETS
    from profile_rig.core.render_presets import PREVIEW
    from profile_rig.imaging.png_io import read_png

    session = prepare_scene(demo=PRESETS["demo_man"])
    options = PackageOptions(views=resolve_views(",".join(VIEWS)), resolution=(256, 256),
                             preset=PREVIEW.with_overrides(samples=4), expressions=EXPRESSIONS)
    result = session.render(tmp_path_factory.mktemp("posed") / "pkg", options)
    manifest = load_package(result.path)
    out = {}
    for view in manifest.views:
        image = read_png(result.path / view.file)
        if image.dtype != np.uint8:
            image = (image.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
        out[view.name] = (np.ascontiguousarray(image[..., :3]), view)
    return out


def _found(image, view):
    faces = find_faces(image, settings=FaceFinderSettings(skip_smaller_than=0)).faces
    g = view.face
    mid = ((g.right_eye[0] + g.left_eye[0]) / 2, (g.right_eye[1] + g.left_eye[1]) / 2)
    near = [f for f in faces if math.dist(((f.eyes[0][0] + f.eyes[1][0]) / 2, (f.eyes[0][1] + f.eyes[1][1]) / 2), mid)
            < 0.1 * view.width]
    assert len(near) == 1, (view.name, [f.to_dict() for f in faces])
    return near[0]


@pytest.mark.parametrize("name", [*VIEWS, "front_smile", "three_quarter_left_smile"])
def test_posed_views_eyes_land_on_the_irises(posed, name):
    image, view = posed[name]
    assert view.pose is not None
    face = _found(image, view)
    truth = sorted([view.face.right_eye, view.face.left_eye])
    errors = [math.dist(a, b) / view.width for a, b in zip(truth, face.eyes, strict=True)]
    print(f"{name}: eye error {max(errors) * 100:.2f} % of width, yaw {face.yaw:+.1f} vs {view.face.yaw:+.1f}")
    assert max(errors) <= EYE_TOLERANCE, (name, errors)


@pytest.mark.parametrize("name", ["over_shoulder_left", "over_shoulder_right"])
def test_over_shoulder_shows_the_face_turned_as_recorded(posed, name):
    image, view = posed[name]
    assert abs(view.pose["body_turn"]) == 135  # the camera is behind the shoulder
    face = _found(image, view)
    assert abs(face.yaw - view.face.yaw) <= YAW_TOLERANCE, (name, face.yaw, view.face.yaw)
    assert np.sign(face.yaw) == np.sign(view.face.yaw)
