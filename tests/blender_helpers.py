"""Scene builders shared by the Blender tests (real bpy, tiny sizes)."""

from __future__ import annotations

import bpy
import numpy as np


def empty_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def make_rig(name: str, bones: dict[str, tuple[tuple, tuple, str | None]]) -> bpy.types.Object:
    """An armature with the given bones (head, tail, parent) in world space."""
    scene = bpy.context.scene
    data = bpy.data.armatures.new(name)
    rig = bpy.data.objects.new(name, data)
    scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    made = {}
    for bone_name, (head, tail, parent) in bones.items():
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = head, tail
        if parent:
            bone.parent = made[parent]
        made[bone_name] = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    return rig


def humanoid_bones(head="head", neck="neck", eyes=("eye.L", "eye.R")) -> dict:
    bones = {
        neck: ((0, 0, 1.45), (0, 0, 1.55), None),
        head: ((0, 0, 1.55), (0, 0, 1.75), neck),
    }
    if eyes:
        bones[eyes[0]] = ((0.031, -0.09, 1.62), (0.031, -0.11, 1.62), head)
        bones[eyes[1]] = ((-0.031, -0.09, 1.62), (-0.031, -0.11, 1.62), head)
    return bones


def vec(v) -> np.ndarray:
    return np.array([v[0], v[1], v[2]], float)
