"""The render sidecar for a shot: face geometry of every known character the scene camera sees.

Blender data in, ``bump_contracts.render_sidecar.RenderSidecar`` out; the head comes from
``profile_rig.blender.head_finder.find_head`` and the projection from ``profile_rig.core.camera_math``
(the same maths that wrote the package manifests). Used by the add-on and by batch runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from bump_contracts.render_sidecar import RenderSidecar, SidecarFace
from profile_rig.blender.head_finder import HeadNotFoundError, find_head
from profile_rig.core.camera_math import Intrinsics, face_geometry


class ShotError(RuntimeError):
    """The camera cannot be described by the sidecar (the message says what to change)."""


@dataclass(frozen=True)
class ShotCharacter:
    """A scene object standing for a library character, with its bone overrides."""

    object_name: str
    character_id: str
    character_name: str
    package: str | None = None
    head_bone: str | None = None
    eye_bones: tuple[str, str] | None = None


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    render = scene.render
    scale = render.resolution_percentage / 100.0
    return max(1, int(render.resolution_x * scale)), max(1, int(render.resolution_y * scale))


def camera_intrinsics(scene: bpy.types.Scene, camera: bpy.types.Object) -> Intrinsics:
    data = camera.data
    if data.type != "PERSP":
        raise ShotError(f"camera {camera.name!r} is {data.type.lower()}; face geometry needs a perspective camera")
    if abs(scene.render.pixel_aspect_x - scene.render.pixel_aspect_y) > 1e-6:
        raise ShotError("non-square pixels (Output > Format > Aspect) are not supported for the face geometry")
    width, height = render_size(scene)
    return Intrinsics(lens_mm=data.lens, sensor_width_mm=data.sensor_width, sensor_height_mm=data.sensor_height,
                      sensor_fit=data.sensor_fit, width=width, height=height, shift_x=data.shift_x,
                      shift_y=data.shift_y)


def camera_matrix(camera: bpy.types.Object) -> np.ndarray:
    """The evaluated camera-to-world matrix with its scale removed (projection expects a rotation)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    matrix = np.array(camera.evaluated_get(depsgraph).matrix_world, dtype=float)
    for axis in range(3):
        norm = np.linalg.norm(matrix[:3, axis])
        if norm > 1e-12:
            matrix[:3, axis] /= norm
    return matrix


def build_sidecar(scene: bpy.types.Scene, camera: bpy.types.Object, characters: list[ShotCharacter],
                  image_name: str | None = None) -> tuple[RenderSidecar, list[str]]:
    """The sidecar, plus a note for every character left out (no head found, behind the camera, off frame)."""
    intrinsics = camera_intrinsics(scene, camera)
    matrix = camera_matrix(camera)
    faces: list[SidecarFace] = []
    notes: list[str] = []
    for character in characters:
        try:
            found = find_head(scene, character.object_name, head_bone=character.head_bone,
                              eye_bones=character.eye_bones)
        except HeadNotFoundError as exc:
            notes.append(f"{character.character_name}: {exc}")
            continue
        geometry = face_geometry(found.frame, matrix, intrinsics)
        if geometry.depth_m <= 0 or not geometry.in_frame:
            notes.append(f"{character.character_name}: not in the camera's frame")
            continue
        faces.append(SidecarFace(character.character_id, character.character_name, geometry, character.package))
    sidecar = RenderSidecar(width=intrinsics.width, height=intrinsics.height, faces=tuple(faces),
                            camera=intrinsics.record(matrix, (camera.data.clip_start, camera.data.clip_end)),
                            image=image_name, extra={"scene": scene.name, "camera": camera.name,
                                                     "frame": scene.frame_current})
    return sidecar, notes
