"""The demo's rig, weights, expressions and the pose contract/maths, in plain numpy (no Blender)."""

import math

import numpy as np
import pytest

from bump_contracts.errors import ContractError
from bump_contracts.package_manifest import ViewRecord
from bump_contracts.pose import Pose, PoseError, parse_control, parse_expression, pose_from_args
from bump_contracts.views import VIEWS, ViewSpec
from profile_rig.core.demo_shape import build_demo_shape
from profile_rig.core.expressions import expression_offsets, expression_units
from profile_rig.core.mpfb_data import DemoDataError, load_base_mesh
from profile_rig.core.phenotype import PRESETS, Phenotype
from profile_rig.core.pose_math import control_rotation, expression_views, split_rotation, view_pose
from profile_rig.core.rig_data import RIGS, load_rig, load_weights, place_bones, remap_weights

EYES = {"default": ("eye.L", "eye.R"), "game_engine": ("eye_l", "eye_r"), "mixamo": ("mixamorig:LeftEye", "mixamorig:RightEye"), "rigify": ("eye.L", "eye.R")}
HEADS = {"default": "head", "game_engine": "head", "mixamo": "mixamorig:Head", "rigify": "spine.006"}


@pytest.fixture(scope="module")
def shapes():
    return {rig: build_demo_shape(PRESETS["demo_man"], rig=rig) for rig in RIGS}


@pytest.mark.parametrize("rig", list(RIGS))
def test_rig_sits_on_the_shaped_body(shapes, rig):
    shape = shapes[rig]
    left, right = (shape.bones[name] for name in EYES[rig])
    d = shape.landmarks["eye_distance"]
    # eye bones rotate the eyeballs about their centres
    assert np.linalg.norm(left.head - shape.landmarks["l-eye"]) < 0.12 * d
    assert np.linalg.norm(right.head - shape.landmarks["r-eye"]) < 0.12 * d
    head = shape.bones[HEADS[rig]]
    assert head.head[2] < shape.landmarks["eye_mid"][2] < head.tail[2]
    # mirrored bones are mirrored (MPFB's Mixamo file picks slightly asymmetric vertices)
    tolerance = 0.015 if rig == "mixamo" else 2e-3
    for name, bone in shape.bones.items():
        for a, b in ((".L", ".R"), ("_l", "_r"), ("Left", "Right")):
            if a in name and name.replace(a, b) in shape.bones:
                other = shape.bones[name.replace(a, b)]
                assert np.allclose(bone.head * [-1, 1, 1], other.head, atol=tolerance), name


def test_joints_follow_the_phenotype():
    """A different body moves the joints with the mesh (MPFB fits the rig; no fixed positions)."""
    base = load_base_mesh()
    rig = load_rig("default")
    small = build_demo_shape(Phenotype(age=12, gender=0.0), rig="default")
    tall = build_demo_shape(Phenotype(age=30, gender=1.0, muscle=0.8), rig="default")
    for shape in (small, tall):
        assert np.linalg.norm(shape.bones["eye.L"].head - shape.landmarks["l-eye"]) < 0.005
    assert tall.bones["head"].head[2] - small.bones["head"].head[2] > 0.15
    placed = place_bones(rig, base, base.vertices)
    assert np.allclose(placed["eye.L"].head, base.joint("l-eye"), atol=1e-9)


@pytest.mark.parametrize("rig", ["default", "game_engine", "mixamo"])
def test_every_vertex_is_skinned_and_eyes_ride_their_bones(shapes, rig):
    shape = shapes[rig]
    total = np.zeros(len(shape.vertices))
    for ids, weights in shape.weights.values():
        np.add.at(total, ids, weights)
    assert (total > 0.1).all()
    left_eye = shape.weights[EYES[rig][0]][0]
    assert set(left_eye.tolist()) <= set(np.flatnonzero(shape.point_attributes["eye_local"].any(axis=1)).tolist())
    for group, (ids, _) in shape.weights.items():
        if group not in EYES[rig]:
            assert not np.isin(ids, left_eye).any(), group


def test_hair_shell_copies_its_scalp_weights(shapes):
    shape = shapes["default"]
    shell = np.arange(len(shape.source_index))[np.bincount(shape.source_index, minlength=shape.source_index.max() + 1)[shape.source_index] > 1]
    assert len(shell) > 100
    head_ids, head_w = shape.weights["head"]
    weight = dict(zip(head_ids.tolist(), head_w.tolist(), strict=True))
    pairs = {}
    for vertex in shell:
        pairs.setdefault(int(shape.source_index[vertex]), []).append(weight.get(int(vertex), 0.0))
    assert all(len(set(w)) == 1 for w in pairs.values())
    assert sum(w[0] for w in pairs.values()) > 0.5 * len(pairs)  # the cap is mostly head-weighted


def test_remap_weights_duplicates_and_drops():
    weights = {"a": (np.array([0, 2, 5]), np.array([0.5, 1.0, 0.25]))}
    out = remap_weights(weights, np.array([2, 0, 2, 7]))
    ids, w = out["a"]
    assert dict(zip(ids.tolist(), w.tolist(), strict=True)) == {0: 1.0, 1: 0.5, 2: 1.0}


def test_rigify_weights_land_on_metarig_bones():
    weights = load_weights("rigify")
    assert "spine.006" in weights and not any(name.startswith("DEF-") and name[4:] in weights for name in weights)


def test_unknown_rig_and_expression_are_named():
    with pytest.raises(DemoDataError, match="rigs: default"):
        load_rig("daz")
    with pytest.raises(DemoDataError, match="smile"):
        expression_units("grin")


def test_expressions_move_the_right_parts(shapes):
    shape = shapes["default"]
    verts = shape.vertices
    eth = {"caucasian": 1.0}
    n = len(load_base_mesh().vertices)
    lm = shape.landmarks
    d = lm["eye_distance"]
    mouth = (np.abs(verts[:, 2] - (lm["eye_mid"][2] - 1.1 * d)) < 0.3 * d) & (verts[:, 1] < lm["eye_mid"][1] + 0.2 * d)
    corners = mouth & (np.abs(np.abs(verts[:, 0]) - 0.45 * d) < 0.12 * d)
    smile = expression_offsets("smile", eth, shape.source_index, n)
    assert smile[corners, 2].mean() > 0.0005  # mouth corners go up
    opened = expression_offsets("open_mouth", eth, shape.source_index, n)
    chin = verts[:, 2] < lm["eye_mid"][2] - 1.5 * d
    assert opened[chin & (verts[:, 2] > lm["eye_mid"][2] - 2.2 * d), 2].min() < -0.004  # the jaw drops
    brows = expression_offsets("brows_up", eth, shape.source_index, n)
    assert brows[:, 2].max() > 0.003 and brows[verts[:, 2] < lm["eye_mid"][2], 2].max() < 0.001
    mixed = expression_offsets("smile", {"african": 0.5, "asian": 0.5}, shape.source_index, n)
    assert not np.allclose(mixed, smile)


def test_pose_contract_parses_validates_and_round_trips():
    assert parse_control("head=20,-5") == ("head", (20.0, -5.0, 0.0))
    assert parse_control("eyes=10") == ("eyes", (10.0, 0.0))
    assert parse_expression("smile=0.6") == ("smile", 0.6) and parse_expression("blink") == ("blink", 1.0)
    for bad, message in (("head=200", "maximum"), ("tail=1", "unknown control"), ("head", "CONTROL=TURN"), ("eyes=1,2,3", "1..2 numbers"), ("head=a", "numbers")):
        with pytest.raises(PoseError, match=message):
            parse_control(bad)
    with pytest.raises(PoseError, match="0..1|maximum"):
        parse_expression("smile=2")
    pose = pose_from_args(["head=20,0,0", "eyes=-10,5"], ["smile=0.5"])
    assert Pose.from_dict(pose.to_dict()) == Pose({"head": (20.0, 0.0, 0.0), "eyes": (-10.0, 5.0)}, {"smile": 0.5})
    with pytest.raises(PoseError, match="pose: unknown field"):
        Pose.from_dict({"controls": {}, "arms": 1})


def test_view_record_pose_is_optional_and_validated():
    base = {"name": "front", "file": "front.png", "yaw": 0, "pitch": 0, "roll": 0, "width": 8, "height": 8}
    assert ViewRecord.from_dict(base, "v").pose is None  # files written before poses existed
    assert "pose" not in ViewRecord.from_dict(base, "v").to_dict()
    posed = {**base, "pose": {"controls": {"head": [30, 0, 0]}, "body_turn": 135}}
    record = ViewRecord.from_dict(posed, "v")
    assert record.pose["controls"]["head"] == [30.0, 0.0, 0.0]
    assert ViewRecord.from_dict(record.to_dict(), "v") == record
    with pytest.raises(ContractError, match=r"v\.pose\.controls\.head"):
        ViewRecord.from_dict({**base, "pose": {"controls": {"head": [300]}}}, "v")


def _turn_and_tilt(forward):
    return math.degrees(math.atan2(forward[0], -forward[1])), math.degrees(math.asin(forward[2]))


def test_control_rotation_signs_and_split():
    up, forward = np.array([0, 0, 1.0]), np.array([0, -1.0, 0])
    turn, tilt = _turn_and_tilt(control_rotation((30, 0, 0), up, forward) @ forward)
    assert turn == pytest.approx(30) and tilt == pytest.approx(0, abs=1e-9)  # toward the character's left (+X)
    turn, tilt = _turn_and_tilt(control_rotation((0, 15, 0), up, forward) @ forward)
    assert tilt == pytest.approx(15)  # chin up
    top = control_rotation((0, 0, 20), up, forward) @ up
    assert top[0] > 0.3  # top of the head toward the left shoulder (+X)
    rotation = control_rotation((40, -20, 10), up, forward)
    step = split_rotation(rotation, 3)
    assert np.allclose(step @ step @ step, rotation, atol=1e-9)


def test_over_shoulder_turns_the_head_back_toward_the_camera():
    pose, yaw, pitch = view_pose(VIEWS["over_shoulder_left"])
    assert pose.body_turn == 135 and yaw == pytest.approx(45) and pitch == 0
    assert pose.controls["neck"][0] + pose.controls["head"][0] == pytest.approx(90)
    pose, yaw, _ = view_pose(VIEWS["over_shoulder_right"])
    assert yaw == pytest.approx(-45) and pose.controls["head"][0] < 0
    pose, _, pitch = view_pose(VIEWS["up"])
    assert pitch == 20 and pose.controls["neck"][1] > 0 and pose.body_turn == 0
    assert view_pose(VIEWS["three_quarter_left"])[0].is_neutral()
    assert view_pose(VIEWS["back"])[0].is_neutral()


def test_expression_views_add_front_and_three_quarter():
    views = [VIEWS["front"], ViewSpec("three_quarter_left", 40.0)]
    added = expression_views(["neutral", "smile", "mouth-open"], views)
    assert [(v.name, e) for v, e in added] == [
        ("front_smile", "smile"),
        ("three_quarter_left_smile", "smile"),
        ("front_mouth_open", "mouth-open"),
        ("three_quarter_left_mouth_open", "mouth-open"),
    ]
    assert added[1][0].yaw == 40.0
