"""Apply a :class:`bump_contracts.pose.Pose` to a character in Blender, and undo it exactly.

Head, neck and eye controls rotate the rig's own bones (names from
:mod:`profile_rig.core.head_bones`) about their joints in world space, in the character's head frame,
so the same pose works on the demo, MPFB, Rigify, Mixamo, DAZ and CC rigs and on FBX imports that
are scaled and turned. Expressions set shape keys (the demo builds them from MPFB2's expression
units on first use). :class:`PoseSnapshot` records what was touched and restores it, so a package
render leaves the user's pose as it found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
import numpy as np
from mathutils import Matrix

from bump_contracts.pose import Pose
from profile_rig.blender.demo_character import DEMO_TAG, ensure_expression_key
from profile_rig.blender.head_finder import character_objects
from profile_rig.core.camera_math import HeadFrame
from profile_rig.core.head_bones import all_eye_pairs, all_head_bones, match_eye_pair, match_name, match_neck_chain
from profile_rig.core.pose_math import control_rotation, split_rotation


class PoseError(LookupError):
    """The character cannot take this pose (no such bone or shape key); the message says what exists."""


@dataclass(frozen=True)
class RigControls:
    """Which of the rig's bones each control moves."""

    neck: tuple[str, ...]
    head: str | None
    eyes: tuple[str, str] | None

    @classmethod
    def of(cls, rig: bpy.types.Object, head_bone: str | None = None, eye_bones: tuple[str, str] | None = None) -> RigControls:
        names = [b.name for b in rig.data.bones]
        head = match_name(names, [head_bone] if head_bone else all_head_bones())
        eyes = match_eye_pair(names, [eye_bones] if eye_bones else all_eye_pairs())
        return cls(tuple(match_neck_chain(names)), head, eyes)

    def bones(self) -> list[str]:
        return [*self.neck, *([self.head] if self.head else []), *(self.eyes or ())]


@dataclass
class PoseSnapshot:
    """Pose-bone transforms and shape-key values as they were, plus shape keys added since."""

    rig: bpy.types.Object | None
    bones: dict[str, tuple] = field(default_factory=dict)
    keys: dict[tuple[str, str], float] = field(default_factory=dict)
    added_keys: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def capture(cls, rig: bpy.types.Object | None, bone_names: list[str], meshes: list[bpy.types.Object]) -> PoseSnapshot:
        snap = cls(rig)
        if rig is not None:
            for name in bone_names:
                pb = rig.pose.bones[name]
                snap.bones[name] = (
                    pb.rotation_mode,
                    tuple(pb.location),
                    tuple(pb.rotation_quaternion),
                    tuple(pb.rotation_euler),
                    tuple(pb.rotation_axis_angle),
                    tuple(pb.scale),
                )
        for obj in meshes:
            keys = obj.data.shape_keys if obj.type == "MESH" else None
            for block in keys.key_blocks if keys else []:
                snap.keys[(obj.name, block.name)] = block.value
        return snap

    def to_dict(self) -> dict:
        """JSON-ready, so a panel can keep it on the rig (saved with the file, undone with it)."""
        return {"rig": self.rig.name if self.rig is not None else None,
                "bones": {name: [value if isinstance(value, str) else list(value) for value in state]
                          for name, state in self.bones.items()},
                "keys": [[obj, key, value] for (obj, key), value in self.keys.items()],
                "added_keys": [list(pair) for pair in self.added_keys]}

    @classmethod
    def from_dict(cls, data: dict) -> PoseSnapshot:
        rig = bpy.data.objects.get(data["rig"]) if data.get("rig") else None
        bones = {name: tuple(value if isinstance(value, str) else tuple(value) for value in state)
                 for name, state in data.get("bones", {}).items() if rig is not None and name in rig.pose.bones}
        keys = {(obj, key): float(value) for obj, key, value in data.get("keys", [])}
        return cls(rig, bones, keys, [tuple(pair) for pair in data.get("added_keys", [])])

    def restore(self, *, keep_added: bool = False) -> None:
        """Back to the captured state; ``keep_added`` keeps new shape keys (at 0) for the next view."""
        if self.rig is not None:
            for name, (mode, loc, quat, euler, axis_angle, scale) in self.bones.items():
                pb = self.rig.pose.bones[name]
                pb.rotation_mode = mode
                pb.location, pb.rotation_quaternion, pb.rotation_euler = loc, quat, euler
                pb.rotation_axis_angle, pb.scale = axis_angle, scale
        for (obj_name, key_name), value in self.keys.items():
            obj = bpy.data.objects.get(obj_name)
            if obj is not None and obj.data.shape_keys and key_name in obj.data.shape_keys.key_blocks:
                obj.data.shape_keys.key_blocks[key_name].value = value
        for obj_name, key_name in reversed(self.added_keys):
            if keep_added:
                obj = bpy.data.objects.get(obj_name)
                if obj is not None and obj.data.shape_keys and key_name in obj.data.shape_keys.key_blocks:
                    obj.data.shape_keys.key_blocks[key_name].value = 0.0
                continue
            obj = bpy.data.objects.get(obj_name)
            if obj is not None and obj.data.shape_keys and key_name in obj.data.shape_keys.key_blocks:
                obj.shape_key_remove(obj.data.shape_keys.key_blocks[key_name])
        if not keep_added:
            self.added_keys.clear()
        bpy.context.view_layer.update()


def _rotate_bone(rig: bpy.types.Object, name: str, rotation: np.ndarray) -> None:
    """Turn a pose bone by a world-space rotation about its own (posed) head joint."""
    world = np.array(rig.matrix_world, dtype=float)
    pose_bone = rig.pose.bones[name]
    bone_world = world @ np.array(pose_bone.matrix, dtype=float)
    pivot = bone_world[:3, 3]
    turn = np.eye(4)
    turn[:3, :3] = rotation
    turn[:3, 3] = pivot - rotation @ pivot
    pose_bone.matrix = Matrix((np.linalg.inv(world) @ turn @ bone_world).tolist())
    bpy.context.view_layer.update()  # children read their parent's new matrix


def apply_controls(rig: bpy.types.Object, controls: RigControls, pose: Pose, frame: HeadFrame) -> None:
    """Neck, then head, then eyes; each control in the frame its parent left the head in."""
    up, forward = np.asarray(frame.up, float), np.asarray(frame.forward, float)
    carried = np.eye(3)
    for name, bones in (("neck", list(controls.neck)), ("head", [controls.head] if controls.head else [])):
        values = pose.controls.get(name)
        if not values or not any(values):
            continue
        if not bones:
            raise PoseError(f"{rig.name}: no {name} bone to pose (looked for the usual {name} bone names)")
        rotation = control_rotation(values, carried @ up, carried @ forward)
        step = split_rotation(rotation, len(bones))
        for bone in bones:
            _rotate_bone(rig, bone, step)
        carried = rotation @ carried
    gaze = pose.controls.get("eyes")
    if gaze and any(gaze):
        if controls.eyes is None:
            raise PoseError(f"{rig.name}: no eye bones to aim (eye.L/eye.R, lEye/rEye, mixamorig:LeftEye/RightEye, ...)")
        rotation = control_rotation((gaze[0], gaze[1], 0.0), carried @ up, carried @ forward)
        for bone in controls.eyes:
            _rotate_bone(rig, bone, rotation)


def expression_meshes(rig_or_root: bpy.types.Object) -> list[bpy.types.Object]:
    return [o for o in character_objects(rig_or_root) if o.type == "MESH"]


def apply_expression(meshes: list[bpy.types.Object], expression: dict[str, float], snapshot: PoseSnapshot | None = None) -> None:
    """Set each expression's shape key; the demo body builds missing ones from the MPFB2 units."""
    for name, weight in expression.items():
        hits = 0
        for obj in meshes:
            keys = obj.data.shape_keys
            existing = keys is not None and name in keys.key_blocks
            if not existing and not obj.get(DEMO_TAG):
                continue
            key = ensure_expression_key(obj, name)
            if not existing and snapshot is not None:
                if keys is None:
                    snapshot.added_keys.append((obj.name, "Basis"))
                snapshot.added_keys.append((obj.name, name))
            key.value = weight
            hits += 1
        if hits == 0 and weight > 0:
            raise PoseError(f"no shape key named {name!r} on {', '.join(o.name for o in meshes) or 'the character'}")


def apply_pose(
    rig: bpy.types.Object | None,
    meshes: list[bpy.types.Object],
    pose: Pose,
    frame: HeadFrame,
    controls: RigControls | None = None,
    snapshot: PoseSnapshot | None = None,
) -> None:
    if pose.controls and any(any(v) for v in pose.controls.values()):
        if rig is None:
            raise PoseError("the character has no armature; head, neck and eye controls need one")
        apply_controls(rig, controls or RigControls.of(rig), pose, frame)
    if pose.expression:
        apply_expression(meshes, pose.expression, snapshot)
    bpy.context.view_layer.update()
