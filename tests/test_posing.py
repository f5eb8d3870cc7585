"""Posing in Blender: the demo's skinned rig, head finding on MPFB2's real rigs (also as an FBX import
leaves them), and pose-aware package views that leave the user's pose as it was. Tiny renders."""

import math

import bpy
import numpy as np
import pytest
from blender_helpers import empty_scene

from bump_contracts.package_manifest import load_package
from bump_contracts.pose import Pose
from bump_contracts.views import VIEWS
from profile_rig.blender.demo_character import build_demo_character
from profile_rig.blender.head_finder import character_objects, find_head
from profile_rig.blender.package_render import PackageOptions, render_package
from profile_rig.blender.posing import PoseError, PoseSnapshot, RigControls, apply_pose, expression_meshes
from profile_rig.core.mpfb_data import load_base_mesh
from profile_rig.core.phenotype import PRESETS
from profile_rig.core.render_presets import FAST
from profile_rig.core.rig_data import load_rig, place_bones


def _turn(forward) -> float:
    return math.degrees(math.atan2(forward[0], -forward[1]))


def _evaluated(obj) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(len(mesh.vertices) * 3)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3)


def _source_index(body) -> np.ndarray:
    values = np.empty(len(body.data.vertices), np.int32)
    body.data.attributes["mpfb_index"].data.foreach_get("value", values)
    return values


@pytest.mark.parametrize("rig_name", ["default", "mixamo"])
def test_demo_is_skinned_head_eyes_and_hair_follow_the_bones(rig_name):
    empty_scene()
    rig = build_demo_character(PRESETS["demo_man"], subdivision=0, rig_name=rig_name, expression_keys=())
    body = expression_meshes(rig)[0]
    rest = _evaluated(body)
    found = find_head(bpy.context.scene, rig.name)
    assert found.method == "bones"
    controls = RigControls.of(rig)
    assert controls.head and controls.neck and controls.eyes
    snapshot = PoseSnapshot.capture(rig, controls.bones(), [body])
    apply_pose(rig, [body], Pose({"neck": (10, 0, 0), "head": (20, 0, 0), "eyes": (25, 0)}), found.frame, controls)
    posed = _evaluated(body)
    turned = find_head(bpy.context.scene, rig.name)
    assert _turn(turned.frame.forward) == pytest.approx(30, abs=2.5)
    # the crown moved with the head, the feet did not
    top = rest[:, 2] > rest[:, 2].max() - 0.05
    feet = rest[:, 2] < 0.1
    assert np.linalg.norm(posed[top] - rest[top], axis=1).mean() > 0.01
    assert np.abs(posed[feet] - rest[feet]).max() < 1e-5
    # the hair shell stays on its scalp vertex (same offset length) while the scalp moves
    source = _source_index(body)
    first = {}
    for vertex, base_vertex in enumerate(source):
        first.setdefault(int(base_vertex), vertex)
    shell = np.array([v for v, b in enumerate(source) if first[int(b)] != v])
    scalp = np.array([first[int(source[v])] for v in shell])
    gap_rest = np.linalg.norm(rest[shell] - rest[scalp], axis=1)
    gap_posed = np.linalg.norm(posed[shell] - posed[scalp], axis=1)
    assert np.abs(gap_posed - gap_rest).max() < 1.5e-3
    assert np.linalg.norm(posed[scalp] - rest[scalp], axis=1).max() > 0.03
    # the eyeball turned on top of the head: its front point moved toward the character's left
    eye = _group(body, controls.eyes[0])
    front = eye[np.argmin(rest[eye, 1])]
    head_only = _evaluated_after(rig, body, snapshot, found, Pose({"neck": (10, 0, 0), "head": (20, 0, 0)}), controls)
    assert posed[front, 0] - head_only[front, 0] > 0.003
    snapshot.restore()
    assert np.abs(_evaluated(body) - rest).max() < 1e-6


def _group(body, name) -> np.ndarray:
    index = body.vertex_groups[name].index
    return np.array([v.index for v in body.data.vertices if any(g.group == index and g.weight > 0.5 for g in v.groups)])


def _evaluated_after(rig, body, snapshot, found, pose, controls) -> np.ndarray:
    snapshot.restore()
    apply_pose(rig, [body], pose, found.frame, controls)
    co = _evaluated(body)
    snapshot.restore()
    apply_pose(rig, [body], Pose({"neck": (10, 0, 0), "head": (20, 0, 0), "eyes": (25, 0)}), found.frame, controls)
    return co


def _rig_from_data(name: str, fbx: bool) -> bpy.types.Object:
    """MPFB2's rig with its real bone names on the base mesh; ``fbx``: Y-up centimetres under a
    90-degree X rotation and 0.01 scale, the way Blender's FBX importer leaves a Mixamo/Unity rig."""
    base = load_base_mesh()
    placed = place_bones(load_rig(name), base, base.vertices)
    data = bpy.data.armatures.new(name)
    rig = bpy.data.objects.new(f"{name}_rig", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")

    def to_data(p):
        return [p[0] * 100, p[2] * 100, -p[1] * 100] if fbx else list(p)

    made = {}
    for bone_name, bone in placed.items():
        edit = data.edit_bones.new(bone_name)
        edit.head, edit.tail = to_data(bone.head), to_data(bone.tail)
        edit.roll = bone.roll
        if bone.parent:
            edit.parent = made[bone.parent]
        made[bone_name] = edit
    bpy.ops.object.mode_set(mode="OBJECT")
    if fbx:
        rig.rotation_euler = (math.pi / 2, 0, 0)
        rig.scale = (0.01, 0.01, 0.01)
    bpy.context.view_layer.update()
    return rig


@pytest.mark.parametrize("fbx", [False, True], ids=["blender", "fbx_import"])
@pytest.mark.parametrize(
    "name,head,eyes",
    [
        ("default", "head", ("eye.L", "eye.R")),
        ("game_engine", "head", None),
        ("mixamo", "mixamorig:Head", None),
        ("rigify", "spine.006", ("eye.L", "eye.R")),
    ],
)
def test_head_finding_on_real_rigs_posed_and_imported(name, head, eyes, fbx):
    empty_scene()
    rig = _rig_from_data(name, fbx)
    base = load_base_mesh()
    found = find_head(bpy.context.scene)
    assert found.details["head_bone"] == head
    assert found.method == ("bones" if eyes else "head_bone")
    assert found.frame.forward[1] < -0.97
    d = np.linalg.norm(base.joint("l-eye") - base.joint("r-eye"))
    tolerance = 0.05 * d if eyes else 0.6 * d  # head-bone-only rigs estimate the eyes
    assert np.linalg.norm(found.frame.left_eye - base.joint("l-eye")) < tolerance
    controls = RigControls.of(rig)
    apply_pose(rig, [], Pose({"neck": (15, 0, 0), "head": (20, 10, 0)}), found.frame, controls)
    posed = find_head(bpy.context.scene)
    assert _turn(posed.frame.forward) == pytest.approx(35, abs=3)
    assert math.degrees(math.asin(posed.frame.forward[2])) == pytest.approx(10, abs=4)


def test_pose_errors_name_what_is_missing():
    empty_scene()
    rig = _rig_from_data("game_engine", False)
    found = find_head(bpy.context.scene)
    with pytest.raises(PoseError, match="no eye bones"):
        apply_pose(rig, [], Pose({"eyes": (10, 0)}), found.frame)
    with pytest.raises(PoseError, match="no shape key named 'smile'"):
        apply_pose(rig, [], Pose(expression={"smile": 0.5}), found.frame)


def test_package_poses_views_and_leaves_the_users_pose(tmp_path):
    empty_scene()
    rig = build_demo_character(PRESETS["demo_man"], subdivision=0, expression_keys=())
    head = rig.pose.bones["head"]
    head.rotation_mode = "XYZ"
    head.rotation_euler = (0.05, 0.1, -0.02)  # the user's own pose
    bpy.context.view_layer.update()
    objects = character_objects(rig)
    body = expression_meshes(rig)[0]
    before = {pb.name: (tuple(pb.rotation_euler), tuple(pb.rotation_quaternion), tuple(pb.location)) for pb in rig.pose.bones}
    found = find_head(bpy.context.scene, rig.name)
    options = PackageOptions(
        views=[VIEWS["front"], VIEWS["over_shoulder_left"], VIEWS["up"]],
        resolution=(96, 96),
        preset=FAST.with_overrides(samples=1),
        expressions=("smile",),
    )
    result = render_package(found, objects, tmp_path / "pkg", options, character_name="Posed")
    after = {pb.name: (tuple(pb.rotation_euler), tuple(pb.rotation_quaternion), tuple(pb.location)) for pb in rig.pose.bones}
    assert after == before
    assert body.data.shape_keys is None  # the smile key made for the package is gone again
    manifest = load_package(result.path)
    names = [v.name for v in manifest.views]
    assert names == ["front", "over_shoulder_left", "up", "front_smile", "three_quarter_left_smile"]
    shoulder = manifest.view("over_shoulder_left")
    assert shoulder.pose["body_turn"] == 135 and shoulder.yaw == pytest.approx(45)
    assert shoulder.face.yaw == pytest.approx(-45, abs=6)  # the face turned back toward the camera
    assert manifest.view("front").pose is None
    assert manifest.view("up").pose["controls"]["neck"][1] > 0
    assert manifest.view("front_smile").pose["expression"] == {"smile": 1.0}
    for view in manifest.views:
        for x, y in (view.face.left_eye, view.face.right_eye):
            assert 0 < x < 96 and 0 < y < 96
