import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bump_contracts.views import VIEWS, ViewSpec
from profile_rig.core.camera_math import (
    Framing,
    Intrinsics,
    face_geometry,
    head_frame_from_eyes,
    look_at_matrix,
    place_camera,
    project_points,
)

FRAME = head_frame_from_eyes([-0.031, -0.1, 1.6], [0.031, -0.1, 1.6])


def test_head_frame_faces_minus_y_with_left_eye_at_plus_x():
    assert np.allclose(FRAME.forward, [0, -1, 0])
    assert np.allclose(FRAME.left, [1, 0, 0])
    assert np.allclose(FRAME.up, [0, 0, 1])
    assert FRAME.centre[1] > FRAME.eye_mid[1]  # centre is behind the eyes


def test_front_view_centres_head_and_places_eyes_symmetrically():
    intr = Intrinsics(width=720, height=720)
    matrix, shifted = place_camera(FRAME, VIEWS["front"], intr, Framing(face_fill=0.4, head_above_centre=0.1))
    geo = face_geometry(FRAME, matrix, shifted)
    assert geo.head_centre[0] == pytest.approx(360, abs=1e-6)
    assert geo.head_centre[1] == pytest.approx(720 * 0.4, abs=1e-6)
    # subject's right eye is on the image's left in a frontal view
    assert geo.right_eye[0] < 360 < geo.left_eye[0]
    assert geo.right_eye[1] == pytest.approx(geo.left_eye[1])
    assert geo.roll == pytest.approx(0, abs=1e-9) and geo.yaw == pytest.approx(0, abs=1e-9)
    face_height = geo.face_box[3] - geo.face_box[1]
    assert 0.35 * 720 < face_height < 0.5 * 720


@pytest.mark.parametrize("name,face_yaw", [("three_quarter_left", -45), ("three_quarter_right", 45), ("profile_left", -90), ("profile_right", 90)])
def test_view_yaw_maps_to_face_yaw_and_nose_side(name, face_yaw):
    intr = Intrinsics(width=256, height=256)
    matrix, shifted = place_camera(FRAME, VIEWS[name], intr)
    geo = face_geometry(FRAME, matrix, shifted)
    assert geo.yaw == pytest.approx(face_yaw, abs=1e-6)
    nose = FRAME.eye_mid + FRAME.forward * 0.03 - FRAME.up * 0.04
    nose_px, _ = project_points(nose, matrix, shifted)
    # positive face yaw: the nose points to the image's right of the head centre
    assert np.sign(nose_px[0, 0] - geo.head_centre[0]) == np.sign(face_yaw)


def test_pitch_and_roll_signs():
    intr = Intrinsics(width=200, height=200)
    up = face_geometry(FRAME, *place_camera(FRAME, VIEWS["up"], intr))
    down = face_geometry(FRAME, *place_camera(FRAME, VIEWS["down"], intr))
    assert up.pitch == pytest.approx(-20, abs=1e-6)  # camera above: nose points down in the image
    assert down.pitch == pytest.approx(20, abs=1e-6)
    rolled = face_geometry(FRAME, *place_camera(FRAME, ViewSpec("r", 0, 0, 15), intr))
    assert rolled.roll == pytest.approx(15, abs=1e-6)
    # clockwise roll on screen: the image-right eye moves down
    assert rolled.left_eye[1] > rolled.right_eye[1]


def test_profile_has_degenerate_eye_line_but_defined_roll():
    geo = face_geometry(FRAME, *place_camera(FRAME, VIEWS["profile_left"], Intrinsics(width=300, height=300)))
    assert geo.eye_distance_px < 5
    assert geo.roll == pytest.approx(0, abs=1e-6)
    assert geo.face_box[2] - geo.face_box[0] > 20


def test_framing_distance_gives_requested_fill():
    for fill in (0.3, 0.4, 0.5):
        geo = face_geometry(FRAME, *place_camera(FRAME, VIEWS["front"], Intrinsics(width=500, height=500), Framing(face_fill=fill)))
        top_to_chin = geo.face_box[3] - geo.face_box[1]
        assert top_to_chin / 500 == pytest.approx(fill, rel=0.08)


def test_non_square_sensor_fit():
    wide = Intrinsics(width=800, height=400)
    tall = Intrinsics(width=400, height=800)
    assert wide.focal_px() == pytest.approx(85 / 36 * 800)
    assert tall.focal_px() == pytest.approx(85 / 36 * 800)  # AUTO fits the sensor to the larger side
    vertical = Intrinsics(width=800, height=400, sensor_fit="VERTICAL", sensor_height_mm=24)
    assert vertical.focal_px() == pytest.approx(85 / 24 * 400)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-3, 3), st.floats(-3, 3), st.floats(0.5, 3),
    st.floats(-0.3, 0.3), st.floats(-0.3, 0.3), st.floats(-180, 180),
)
def test_look_at_is_orthonormal_and_target_projects_to_principal_point(x, y, z, sx, sy, roll):
    position = np.array([x, y, z]) + np.array([0, -2.0, 0])
    assume(np.hypot(position[0], position[1]) > 0.1)  # not straight above/below the target
    matrix = look_at_matrix(position, [0, 0, 1], [0, 0, 1], roll)
    rotation = matrix[:3, :3]
    assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    intr = Intrinsics(width=320, height=240, shift_x=sx, shift_y=sy)
    px, depth = project_points([0, 0, 1], matrix, intr)
    assert depth[0] > 0
    assert np.allclose(px[0], intr.principal_point(), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.floats(-170, 170), st.floats(-60, 60), st.floats(-40, 40))
def test_any_view_points_camera_at_head_from_the_requested_side(yaw, pitch, roll):
    matrix, intr = place_camera(FRAME, ViewSpec("v", yaw, pitch, roll), Intrinsics(width=128, height=128))
    geo = face_geometry(FRAME, matrix, intr)
    assert geo.head_centre[0] == pytest.approx(64, abs=1e-6)
    assert geo.depth_m > 0
    assert geo.roll == pytest.approx(roll, abs=1e-6)
    if abs(yaw) > 0.5:
        assert np.sign(geo.yaw) == -np.sign(yaw)  # a camera on the subject's left sees the nose point left
    flat = face_geometry(FRAME, *place_camera(FRAME, ViewSpec("v", yaw, 0, roll), Intrinsics(width=128, height=128)))
    assert math.isclose(flat.yaw, -yaw, abs_tol=1e-6)
