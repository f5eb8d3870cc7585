import math

import bpy
import numpy as np
import pytest
from blender_helpers import empty_scene, humanoid_bones, make_rig

from profile_rig.blender.head_finder import HeadNotFoundError, find_head


@pytest.mark.parametrize(
    "head,eyes",
    [
        ("head", ("lEye", "rEye")),  # DAZ Genesis 3/8
        ("head", ("l_eye", "r_eye")),  # DAZ Genesis 9
        ("DEF-spine.006", ("eye.L", "eye.R")),  # Rigify
        ("mixamorig:Head", ("mixamorig:LeftEye", "mixamorig:RightEye")),  # Mixamo
    ],
)
def test_bones_of_common_rigs_give_the_eyes_and_facing(head, eyes):
    empty_scene()
    make_rig("Figure", humanoid_bones(head=head, eyes=eyes))
    found = find_head(bpy.context.scene)
    assert found.method == "bones"
    assert np.allclose(found.frame.left_eye, [0.031, -0.09, 1.62], atol=1e-5)
    assert np.allclose(found.frame.forward, [0, -1, 0], atol=1e-6)
    assert found.details["eye_bones"] == list(eyes)


def test_posed_head_turns_the_frame():
    empty_scene()
    rig = make_rig("Figure", humanoid_bones())
    pose_bone = rig.pose.bones["head"]
    pose_bone.rotation_mode = "XYZ"
    pose_bone.rotation_euler = (0, math.radians(30), 0)  # head bone's Y axis points up: twist = yaw
    bpy.context.view_layer.update()
    found = find_head(bpy.context.scene, "Figure")
    forward = found.frame.forward
    angle = math.degrees(math.atan2(forward[0], -forward[1]))
    assert abs(abs(angle) - 30) < 0.5


def test_head_bone_only_estimates_eyes_in_front_of_the_bone():
    empty_scene()
    make_rig("Mixamo", {"mixamorig:Head": ((0, 0, 1.55), (0, 0, 1.72), None)})
    found = find_head(bpy.context.scene)
    assert found.method == "head_bone"
    assert found.frame.eye_mid[1] < -0.05  # in front (-Y)
    assert 1.55 < found.frame.eye_mid[2] < 1.72


def test_mesh_without_rig_uses_top_of_tallest_mesh():
    empty_scene()
    bpy.ops.mesh.primitive_cube_add(size=1, location=(0, 0, 0.9))
    tall = bpy.context.active_object
    tall.scale = (0.3, 0.2, 1.8)
    tall.name = "Statue"
    bpy.ops.mesh.primitive_cube_add(size=0.5, location=(2, 0, 0.25))
    found = find_head(bpy.context.scene)
    assert found.method == "mesh_top" and found.details["mesh"] == "Statue"
    assert 1.4 < found.frame.eye_mid[2] < 1.8


def test_explicit_head_object():
    empty_scene()
    empty = bpy.data.objects.new("HeadMarker", None)
    bpy.context.scene.collection.objects.link(empty)
    empty.location = (1, 2, 1.7)
    empty.rotation_euler = (0, 0, math.radians(90))
    bpy.context.view_layer.update()
    found = find_head(bpy.context.scene, head_object="HeadMarker")
    assert np.allclose(found.frame.centre, [1, 2, 1.7])
    assert np.allclose(found.frame.forward, [1, 0, 0], atol=1e-6)  # -Y turned 90 degrees about Z


def test_nothing_to_find_names_what_was_looked_for():
    empty_scene()
    with pytest.raises(HeadNotFoundError, match="no armature or mesh"):
        find_head(bpy.context.scene)
    make_rig("Props", {"bone": ((0, 0, 0), (0, 0, 1), None)})
    with pytest.raises(HeadNotFoundError, match="mixamorig:Head"):
        find_head(bpy.context.scene)
    with pytest.raises(HeadNotFoundError, match="no object named 'Ghost'"):
        find_head(bpy.context.scene, "Ghost")
