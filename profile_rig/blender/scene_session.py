"""Get a scene ready for a package render: the demo character in an empty file, a .blend opened
from disk, or the file a real Blender already has open; then find the character's head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import bpy

from profile_rig.blender.head_finder import FoundHead, character_objects, find_head
from profile_rig.blender.package_render import PackageOptions, PackageResult, ProgressFn, render_package
from profile_rig.core.phenotype import Phenotype
from profile_rig.core.rig_data import DEFAULT_RIG

GEOMETRY_TYPES = {"MESH", "CURVES", "CURVE", "SURFACE", "META", "FONT", "ARMATURE", "EMPTY"}


class BlendFileError(RuntimeError):
    """The .blend file could not be opened."""


@dataclass
class CharacterSession:
    name: str
    found: FoundHead
    objects: list[bpy.types.Object]
    phenotype: Phenotype | None
    source: dict

    def render(self, out: str | os.PathLike, options: PackageOptions, progress: ProgressFn | None = None) -> PackageResult:
        return render_package(
            self.found,
            self.objects,
            out,
            options,
            character_name=self.name,
            phenotype=self.phenotype.to_dict() if self.phenotype else None,
            source=self.source,
            progress=progress,
        )


def _character_root(found: FoundHead, scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """The character's objects: its armature (or named object) and everything under it."""
    obj = bpy.data.objects.get(found.character)
    if obj is None or found.method == "head_object":
        return [o for o in scene.objects if o.type in GEOMETRY_TYPES and o.visible_get()]
    root = obj
    while root.parent is not None:
        root = root.parent
    objects = character_objects(root)
    # meshes deformed by this armature but not parented to it (common in DAZ/Mixamo imports)
    for other in scene.objects:
        if other in objects or other.type != "MESH":
            continue
        if any(m.type == "ARMATURE" and m.object in objects for m in other.modifiers):
            objects.extend(character_objects(other))
    return objects


def prepare_scene(
    *,
    demo: Phenotype | None = None,
    blend: str | None = None,
    character: str | None = None,
    head_bone: str | None = None,
    eye_bones: tuple[str, str] | None = None,
    head_object: str | None = None,
    subdivision: int = 1,
    rig: str = DEFAULT_RIG,
) -> CharacterSession:
    if demo is not None:
        from profile_rig.blender.demo_character import build_demo_character

        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        armature = build_demo_character(demo, scene.collection, subdivision=subdivision, rig_name=rig)
        found = find_head(scene, armature.name)
        return CharacterSession(
            demo.name, found, character_objects(armature), demo, {"kind": "demo", "phenotype": demo.to_dict(), "rig": rig}
        )
    if blend is not None:
        path = Path(blend).resolve()
        try:
            bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
        except RuntimeError as exc:
            raise BlendFileError(f"cannot open {path}: {str(exc).strip().splitlines()[-1]}") from None
    scene = bpy.context.scene
    found = find_head(scene, character, head_bone=head_bone, eye_bones=eye_bones, head_object=head_object)
    objects = _character_root(found, scene)
    name = character or found.character
    source = {"kind": "blend", "file": bpy.data.filepath or None, "object": found.character}
    return CharacterSession(name, found, objects, None, source)
