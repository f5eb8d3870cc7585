"""Render Package through the operator: the demo character at 64 px, into the library, user scene untouched."""

from __future__ import annotations

import time

import bpy
import pytest
from addon_helpers import addon_module, snapshot

from bump_contracts.package_manifest import load_package
from character_library import Library


def test_render_package_saves_a_library_version(studio):
    assert studio["result"] == {"FINISHED"}
    assert studio["renders"] == 2  # front, profile_right
    with Library.open(studio["library"]) as lib:
        (character,) = lib.list_characters()
        package = lib.get_package(character.id)
        assert character.active_version == 1 and package.origin == "rendered"
        assert character.bones == {"head": "head", "eye_left": "eye.L", "eye_right": "eye.R"}
    manifest = load_package(package.path, check_hashes=True)
    assert [v.name for v in manifest.views] == ["front", "profile_right"]
    assert manifest.renderer["resolution"] == [64, 64] and manifest.renderer["samples"] == 1
    assert (package.path / "contact_sheet.png").is_file()
    assert studio["rig"]["bump_studio_character"] == character.id  # linked for later shots
    settings = bpy.context.scene.bump_studio
    assert settings.last_package == str(package.path) and not settings.package_running
    assert settings.detected.startswith(studio["rig"].name) and "bones" in settings.detected
    assert not [p for p in (studio["library"] / ".staging").iterdir()]  # nothing left in the staging area


def test_user_scene_is_unchanged_by_the_package_render(studio):
    assert snapshot(bpy.context.scene) == studio["before"]
    assert not [s for s in bpy.data.scenes if s.get("bump_studio")]


def test_cancel_between_views_writes_nothing(studio):
    package_ops = addon_module("operators_package")
    before = snapshot(bpy.context.scene)
    cancel = lambda *_args: package_ops.CANCEL.set()  # noqa: E731  (what the Cancel button does)
    bpy.app.handlers.render_post.append(cancel)
    try:
        with pytest.raises(RuntimeError, match="cancelled"):
            bpy.ops.bump_studio.render_package()
    finally:
        bpy.app.handlers.render_post.remove(cancel)
    with Library.open(studio["library"]) as lib:
        assert [p.version for p in lib.list_packages(lib.list_characters()[0].id)] == [1]
    assert snapshot(bpy.context.scene) == before
    assert not bpy.context.scene.bump_studio.package_running


def test_bad_views_and_missing_character_are_reported(studio):
    settings = bpy.context.scene.bump_studio
    before = snapshot(bpy.context.scene)
    old = settings.custom_views
    settings.custom_views = "front,sideways"
    try:
        with pytest.raises(RuntimeError, match="unknown view 'sideways'"):
            bpy.ops.bump_studio.render_package()
    finally:
        settings.custom_views = old
    with pytest.raises(RuntimeError, match="no object named 'Nobody'"):
        bpy.ops.bump_studio.render_package(character="Nobody")
    assert snapshot(bpy.context.scene) == before


def test_detect_head_shows_what_was_found(studio):
    settings = bpy.context.scene.bump_studio
    settings.detected = ""
    assert bpy.ops.bump_studio.detect_head() == {"FINISHED"}
    assert "bones" in settings.detected and "head_bone head" in settings.detected


def test_background_process_render_and_cancel(studio, tmp_path):
    """The UI's way (Render Package from a button): a copy of the file renders in another process."""
    ops = addon_module("operators_package")
    scene = bpy.context.scene
    before = snapshot(scene)
    job = ops.BackgroundPackage(bpy.context, ops.plan_package(bpy.context, out_dir=str(tmp_path / "pkg")))
    assert job.blend.is_file()
    seen = set()
    deadline = time.monotonic() + 120
    while not job.poll():
        assert time.monotonic() < deadline, job.errors
        seen.add(job.progress)
        time.sleep(0.05)
    path, what = job.finish(bpy.context)
    assert path == tmp_path / "pkg" and "2 views" in what
    assert [v.name for v in load_package(path, check_hashes=True).views] == ["front", "profile_right"]
    assert (1, 2, "front") in seen or job.progress == (2, 2, "profile_right")
    assert not job.folder.exists()  # the copy of the .blend is gone

    stopped = ops.BackgroundPackage(bpy.context, ops.plan_package(bpy.context, out_dir=str(tmp_path / "never")))
    time.sleep(0.5)
    stopped.cancel()
    assert stopped.proc.returncode != 0 and not (tmp_path / "never").exists() and not stopped.folder.exists()
    assert snapshot(scene) == before
