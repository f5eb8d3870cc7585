"""Find a character's head, eyes and facing direction in a Blender scene, from the evaluated pose.

Order: explicit head object > bones (DAZ Genesis 3/8/8.1/9, Rigify, MPFB/MakeHuman, Mixamo, CC)
> eye vertex groups on the mesh > top of the tallest mesh. Thin ``bpy`` over
:mod:`profile_rig.core.head_bones` and :mod:`profile_rig.core.camera_math`.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from profile_rig.core.camera_math import HeadFrame, head_frame_from_eyes
from profile_rig.core.head_bones import (
    EYE_GROUPS,
    all_eye_pairs,
    all_head_bones,
    eyes_from_head_bone,
    eyes_from_top_of_mesh,
    match_eye_pair,
    match_name,
)

DEFAULT_EYE_DISTANCE_M = 0.063


class HeadNotFoundError(LookupError):
    """Nothing in the scene looks like a character's head; the message says what was looked for."""


@dataclass(frozen=True)
class FoundHead:
    frame: HeadFrame
    method: str  # "bones", "head_bone", "eye_groups", "mesh_top", "head_object"
    character: str
    details: dict


def _vec(v) -> np.ndarray:
    return np.array([v[0], v[1], v[2]], dtype=float)


def _armature_of(obj: bpy.types.Object) -> bpy.types.Object | None:
    if obj.type == "ARMATURE":
        return obj
    if obj.parent is not None and obj.parent.type == "ARMATURE":
        return obj.parent
    for modifier in getattr(obj, "modifiers", []):
        if modifier.type == "ARMATURE" and modifier.object is not None:
            return modifier.object
    return None


def selected_rig(view_layer: bpy.types.ViewLayer | None = None) -> bpy.types.Object | None:
    """The armature the user points at: the active object's, else the first selected object's.

    "Its armature" is the object itself, or the armature it is parented to (at any depth) or
    deformed by, so clicking the body mesh or an eye picks the whole character.
    """
    layer = view_layer or bpy.context.view_layer
    if layer is None:
        return None
    active = layer.objects.active
    ordered = ([active] if active is not None else []) + [o for o in layer.objects if o.select_get() and o != active]
    for obj in ordered:
        node = obj
        while node is not None:
            rig = _armature_of(node)
            if rig is not None:
                return rig
            node = node.parent
    return None


def _posed_bone_world(rig: bpy.types.Object, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World head, tail and the pose's rotation delta (3x3) of a bone, as evaluated."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = rig.evaluated_get(depsgraph)
    pose_bone = evaluated.pose.bones[name]
    world = evaluated.matrix_world
    head = _vec(world @ pose_bone.head)
    tail = _vec(world @ pose_bone.tail)
    rest = rig.data.bones[name].matrix_local
    # the pose's own turn, in world space: an FBX import's object rotation and 0.01 scale cancel out
    delta = np.array((world @ pose_bone.matrix @ rest.inverted() @ world.inverted()).to_3x3(), dtype=float)
    return head, tail, delta / np.cbrt(abs(np.linalg.det(delta)))


def _rest_forward(rig: bpy.types.Object, delta: np.ndarray) -> np.ndarray:
    """Characters face world -Y in their rest pose; apply the bone's posed rotation to that."""
    forward = delta @ np.array([0.0, -1.0, 0.0])
    return forward / np.linalg.norm(forward)


def _from_bones(rig: bpy.types.Object, head_bone: str | None, eye_bones: tuple[str, str] | None) -> FoundHead | None:
    names = [b.name for b in rig.data.bones]
    head_name = match_name(names, [head_bone]) if head_bone else match_name(names, all_head_bones())
    if head_bone and head_name is None:
        raise HeadNotFoundError(f"{rig.name}: no bone named {head_bone!r}")
    pair = match_eye_pair(names, [eye_bones] if eye_bones else all_eye_pairs())
    if eye_bones and pair is None:
        raise HeadNotFoundError(f"{rig.name}: no eye bones named {eye_bones[0]!r}/{eye_bones[1]!r}")
    if pair is not None:
        left, _, _ = _posed_bone_world(rig, pair[0])
        right, _, _ = _posed_bone_world(rig, pair[1])
        up_hint = np.array([0.0, 0.0, 1.0])
        if head_name:
            head, tail, _ = _posed_bone_world(rig, head_name)
            up_hint = tail - head
        frame = head_frame_from_eyes(right, left, up_hint)
        return FoundHead(frame, "bones", rig.name, {"head_bone": head_name, "eye_bones": list(pair)})
    if head_name is not None:
        head, tail, delta = _posed_bone_world(rig, head_name)
        right, left = eyes_from_head_bone(head, tail, _rest_forward(rig, delta))
        frame = head_frame_from_eyes(right, left, tail - head)
        return FoundHead(frame, "head_bone", rig.name, {"head_bone": head_name, "estimated_eyes": True})
    return None


def _evaluated_vertices(obj: bpy.types.Object) -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.empty(len(mesh.vertices) * 3, np.float64)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world, dtype=float)
    return co @ matrix[:3, :3].T + matrix[:3, 3]


def _from_eye_groups(obj: bpy.types.Object) -> FoundHead | None:
    groups = {g.name: g.index for g in obj.vertex_groups}
    pair = match_eye_pair(groups, EYE_GROUPS)
    if pair is None:
        return None
    mesh = obj.data
    world = _evaluated_vertices(obj)
    if len(world) != len(mesh.vertices):
        return None  # topology-changing modifiers: vertex groups no longer line up
    centres = []
    for name in pair:
        index = groups[name]
        ids = [v.index for v in mesh.vertices if any(g.group == index and g.weight > 0.5 for g in v.groups)]
        if not ids:
            return None
        centres.append(world[ids].mean(axis=0))
    frame = head_frame_from_eyes(centres[1], centres[0], (0.0, 0.0, 1.0))
    return FoundHead(frame, "eye_groups", obj.name, {"eye_groups": list(pair)})


def _from_mesh_top(meshes: list[bpy.types.Object], name: str) -> FoundHead | None:
    best = None
    for obj in meshes:
        verts = _evaluated_vertices(obj)
        if len(verts) == 0:
            continue
        height = float(verts[:, 2].max() - verts[:, 2].min())
        if best is None or height > best[0]:
            best = (height, obj, verts)
    if best is None:
        return None
    height, obj, verts = best
    top = verts[np.argmax(verts[:, 2])]
    forward = _vec(obj.matrix_world.to_3x3() @ _mathutils_vector((0.0, -1.0, 0.0)))
    forward[2] = 0.0
    forward = forward / np.linalg.norm(forward) if np.linalg.norm(forward) > 1e-9 else np.array([0.0, -1.0, 0.0])
    right, left = eyes_from_top_of_mesh(top, height, forward)
    frame = head_frame_from_eyes(right, left, (0.0, 0.0, 1.0))
    return FoundHead(frame, "mesh_top", name, {"mesh": obj.name, "estimated_eyes": True, "height_m": round(height, 4)})


def _mathutils_vector(values):
    from mathutils import Vector

    return Vector(values)


def _from_head_object(obj: bpy.types.Object) -> FoundHead:
    """A user-placed object at the head centre: local -Y faces forward, +Z is up; scale 1 = 63 mm eyes."""
    matrix = np.array(obj.matrix_world, dtype=float)
    rotation = matrix[:3, :3]
    scale = float(np.cbrt(abs(np.linalg.det(rotation)))) or 1.0
    unit = rotation / scale
    forward = unit @ np.array([0.0, -1.0, 0.0])
    up = unit @ np.array([0.0, 0.0, 1.0])
    left = np.cross(up, forward)
    centre = matrix[:3, 3]
    d = DEFAULT_EYE_DISTANCE_M * scale
    mid = centre + forward * 1.15 * d
    frame = head_frame_from_eyes(mid - left * d / 2, mid + left * d / 2, up, centre=centre)
    return FoundHead(frame, "head_object", obj.name, {"head_object": obj.name})


def character_objects(root: bpy.types.Object) -> list[bpy.types.Object]:
    """The object and everything parented under it."""
    result = [root]
    for child in root.children_recursive:
        result.append(child)
    return result


def find_head(
    scene: bpy.types.Scene,
    character: str | None = None,
    *,
    head_bone: str | None = None,
    eye_bones: tuple[str, str] | None = None,
    head_object: str | None = None,
) -> FoundHead:
    """Locate the head of ``character`` (an armature or mesh name) or of the most likely figure in the scene."""
    if head_object:
        obj = bpy.data.objects.get(head_object)
        if obj is None:
            raise HeadNotFoundError(f"no object named {head_object!r} to use as the head")
        return _from_head_object(obj)

    if character:
        root = bpy.data.objects.get(character)
        if root is None:
            names = ", ".join(o.name for o in scene.objects if o.type in ("ARMATURE", "MESH")) or "none"
            raise HeadNotFoundError(f"no object named {character!r}; armatures and meshes in the scene: {names}")
        candidates = [root]
    else:
        candidates = [o for o in scene.objects if o.type == "ARMATURE"] or [o for o in scene.objects if o.type == "MESH"]
        if not candidates:
            raise HeadNotFoundError("the scene has no armature or mesh to look for a character in")
        picked = selected_rig() if scene == bpy.context.scene else None
        if picked is not None and picked.name in scene.objects:
            candidates = [picked] + [o for o in candidates if o != picked]  # the user's pick before scene order

    rigs = []
    for obj in candidates:
        rig = _armature_of(obj)
        if rig is not None and rig not in rigs:
            rigs.append(rig)
    for rig in rigs:
        found = _from_bones(rig, head_bone, eye_bones)
        if found is not None:
            return found

    meshes = []
    for obj in candidates:
        meshes.extend(o for o in character_objects(obj) if o.type == "MESH")
    for obj in meshes:
        found = _from_eye_groups(obj)
        if found is not None:
            return found
    if meshes:
        found = _from_mesh_top(meshes, character or meshes[0].name)
        if found is not None:
            return found
    raise HeadNotFoundError(
        "no head found: looked for head bones ("
        + ", ".join(all_head_bones())
        + "), eye bones ("
        + ", ".join(f"{a}/{b}" for a, b in all_eye_pairs()[:6])
        + ", ...), eye vertex groups, and a mesh to take the top of; "
        + "name the character with --character, a bone with --head-bone, or an empty at the head with --head-object"
    )
