"""The add-on's side of the shot sidecar: which scene objects stand for library characters.

The sidecar itself is built by :mod:`profile_rig.blender.shot_sidecar`, shared with batch runs.
"""

from __future__ import annotations

import bpy

from profile_rig.blender.shot_sidecar import (
    ShotCharacter,
    ShotError,
    build_sidecar,
    camera_intrinsics,
    camera_matrix,
    render_size,
)

from .properties import CHARACTER_LINK

__all__ = ["ShotCharacter", "ShotError", "build_sidecar", "camera_intrinsics", "camera_matrix", "linked_characters", "render_size"]


def linked_characters(scene: bpy.types.Scene) -> list[tuple[bpy.types.Object, str]]:
    """Objects in the scene linked to a library character (the custom property), visible ones only."""
    found = []
    for obj in scene.objects:
        char_id = obj.get(CHARACTER_LINK)
        if isinstance(char_id, str) and char_id and obj.visible_get():
            found.append((obj, char_id))
    return found
