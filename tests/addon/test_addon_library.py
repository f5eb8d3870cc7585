"""Library panel operators on a real library folder: list with thumbnails, create from an armature, edit, versions, history, delete."""

from __future__ import annotations

import bpy
import pytest
from addon_helpers import addon_module
from blender_helpers import humanoid_bones, make_rig

from character_library import Library


@pytest.fixture(scope="module")
def library(studio):
    return studio["library"]


def test_refresh_lists_characters_with_thumbnails_versions_and_history(library):
    with Library.open(library) as lib:
        character = lib.list_characters()[0]
        lib.add_run(character.id, run_id="run_for_panel_1", seed=42, identity_score=0.81, package_version=1,
                    outputs=["/tmp/x.png"])
    assert bpy.ops.bump_studio.library_refresh() == {"FINISHED"}
    wm = bpy.context.window_manager
    names = [i.name for i in wm.bump_studio_library]
    assert character.name in names
    item = wm.bump_studio_library[names.index(character.name)]
    wm.bump_studio_library_index = names.index(character.name)
    assert item.active_version == 1 and item.thumbnail.endswith("thumbnail.png")
    preview = addon_module("operators_library").thumbnail_preview(item)  # the list's icon (ids need a UI)
    assert tuple(preview.image_size) == (128, 128)
    assert [(v.version, v.active, v.views) for v in wm.bump_studio_versions] == [(1, True, 2)]
    runs = {h.run_id: h for h in wm.bump_studio_history}
    assert runs["run_for_panel_1"].identity_score == pytest.approx(0.81) and runs["run_for_panel_1"].seed == 42


def test_create_from_armature_edit_use_and_delete(library):
    rig = make_rig("Aiko", humanoid_bones())
    bpy.context.view_layer.objects.active = rig
    try:
        assert bpy.ops.bump_studio.library_create(name="Aiko", age=30, gender="woman", ethnicity="Japanese",
                                                  features="freckles") == {"FINISHED"}
        with Library.open(library) as lib:
            aiko = lib.get_character("Aiko")
        assert aiko.bones == {"head": "head", "eye_left": "eye.L", "eye_right": "eye.R"}
        assert aiko.source == {"kind": "external", "object": "Aiko"}
        assert aiko.suggested_prompt() == "30-year-old Japanese woman, freckles"
        assert rig["bump_studio_character"] == aiko.id
        assert bpy.context.scene.bump_studio.library_character == aiko.id

        assert bpy.ops.bump_studio.library_edit(character=aiko.id, notes="hero of shot 4", age=31) == {"FINISHED"}
        with Library.open(library) as lib:
            edited = lib.get_character(aiko.id)
        assert edited.notes == "hero of shot 4" and edited.age == 31 and edited.ethnicity == "Japanese"

        with pytest.raises(RuntimeError, match="has no package version 3"):
            bpy.ops.bump_studio.library_set_active(character=aiko.id, version=3)
        with pytest.raises(RuntimeError, match="already exists"):
            bpy.ops.bump_studio.library_create(name="aiko")
        assert bpy.ops.bump_studio.library_open_folder(character=aiko.id) == {"FINISHED"}

        assert bpy.ops.bump_studio.library_delete(character=aiko.id) == {"FINISHED"}
        with Library.open(library) as lib:
            assert "Aiko" not in [c.name for c in lib.list_characters()]
        assert "bump_studio_character" not in rig
        assert bpy.context.scene.bump_studio.library_character == ""
        assert "Aiko" not in [i.name for i in bpy.context.window_manager.bump_studio_library]
    finally:
        bpy.data.objects.remove(rig)
        bpy.context.scene.bump_studio.library_character = ""


def test_use_as_reference_links_the_active_object(library, studio):
    rig = studio["rig"]
    with Library.open(library) as lib:
        character = lib.get_character(rig["bump_studio_character"])
    bpy.context.view_layer.objects.active = rig
    assert bpy.ops.bump_studio.library_use(character=character.name) == {"FINISHED"}
    assert bpy.context.scene.bump_studio.library_character == character.id
    bpy.context.scene.bump_studio.library_character = ""
