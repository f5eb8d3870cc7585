"""Render & Bump against the real backend (tiny model, own process): results, compositor, re-run, cancel, errors.

Blender's bpy module runs no event loop, so ``bpy.app.timers`` never fire here; the tests call the
add-on's timer function (``jobs.tick``) in a loop, which is what Blender's loop does in the UI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import MODULE, addon_module, pump_jobs, snapshot

from character_library import Library
from profile_rig.imaging.png_io import read_png


def _pump(scene_name: str, timeout: float = 60.0, until=None) -> list[tuple[str, float, str]]:
    return pump_jobs(scene_name, timeout, until)


def _compositor(scene: bpy.types.Scene) -> dict:
    comp = addon_module("compositor")
    tree = scene.compositing_node_group
    mix = tree.nodes[comp.NODE_MIX]
    output = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
    feeds = {s.name: (s.links[0].from_node.name if s.links else None) for s in mix.inputs}
    group = mix.node_tree
    inner = {(lk.from_node.bl_idname, lk.from_socket.name, lk.to_node.bl_idname) for lk in group.links}
    return {"tree": tree, "mix": mix, "feeds": feeds, "out_from": output.inputs[0].links[0].from_node.name,
            "inner": inner, "factor": mix.inputs["Factor"].default_value,
            "images": {n.name: n.image.name for n in tree.nodes if n.bl_idname == "CompositorNodeImage"}}


@pytest.fixture(scope="module")
def first_bump(studio, backend) -> dict:
    scene = bpy.context.scene
    jobs = addon_module("jobs")
    before = snapshot(scene)
    started = time.perf_counter()
    assert bpy.ops.bump_studio.render_bump() == {"FINISHED"}
    returned = time.perf_counter() - started
    job = jobs.MANAGER.running(scene.name)
    assert job is not None, "the operator should return while the job runs"
    timer = bpy.app.timers.is_registered(jobs.tick)
    seen = _pump(scene.name)
    return {"job": job, "seen": seen, "returned_s": returned, "timer": timer, "before": before}


def test_render_and_bump_returns_at_once_and_results_arrive(first_bump, studio):
    scene = bpy.context.scene
    settings = scene.bump_studio
    job = first_bump["job"]
    assert first_bump["timer"], "the job's progress must come back through bpy.app.timers"
    assert settings.job_state == "done", settings.job_message
    assert settings.job_progress == 1.0 and settings.job_id == job.job_id
    running = [p for state, p, _ in first_bump["seen"] if state == "running"]
    assert running and running == sorted(running)  # progress shown while it ran, never backwards
    bump = bpy.data.images["BumpStudio Bump"]
    assert Path(bump.filepath).name == "bump.png" and tuple(bump.size) == (96, 96)
    assert bpy.data.images["BumpStudio Mask"].colorspace_settings.name == "Non-Color"
    assert bpy.data.images.get("BumpStudio Face 1") is not None  # the sidecar's face went through the face pass
    folder = Path(job.meta["folder"])
    sidecar = json.loads((folder / "render.sidecar.json").read_text())
    (face,) = sidecar["faces"]
    with Library.open(studio["library"]) as lib:
        character = lib.list_characters()[0]
        runs = lib.list_runs(character.id)
    assert face["character_id"] == character.id and face["in_frame"]
    assert job.spec.character_prompts == {} and "face" not in job.spec.params  # the demo has no prompt: none sent
    x0, y0, x1, y1 = face["face_box"]
    assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 96
    assert sidecar["camera"]["resolution"] == [96, 96]
    assert [r.run_id for r in runs] == [job.job_id] and runs[0].package_version == 1
    assert runs[0].outputs[0].endswith("bump.png") and runs[0].steps == 4


def test_compositor_mixes_the_bump_over_the_render_through_the_mask(first_bump):
    scene = bpy.context.scene
    comp = _compositor(scene)
    assert comp["out_from"] == "BumpStudio Mix"
    assert comp["feeds"] == {"Render": "BumpStudio Render", "Bump": "BumpStudio Bump", "Mask": "BumpStudio Mask",
                             "Factor": None}
    assert comp["images"] == {"BumpStudio Render": "BumpStudio Render", "BumpStudio Bump": "BumpStudio Bump",
                              "BumpStudio Mask": "BumpStudio Mask"}
    assert ("NodeGroupInput", "Mask", "ShaderNodeMath") in comp["inner"]
    assert ("NodeGroupInput", "Factor", "ShaderNodeMath") in comp["inner"]
    assert ("ShaderNodeMath", "Value", "ShaderNodeMix") in comp["inner"]
    assert ("ShaderNodeMix", "Result", "NodeGroupOutput") in comp["inner"]
    scene.bump_studio.mix_factor = 0.25  # the panel's slider
    assert _compositor(scene)["factor"] == pytest.approx(0.25)
    scene.bump_studio.mix_factor = 1.0

    # the compositor really runs it: where the mask is full the output is the bump, where empty the render
    ops = addon_module("operators_bump")
    job = first_bump["job"]
    bpy.ops.render.render()
    out = Path(job.meta["folder"]) / "composited.png"
    ops.save_render_result(scene, out)
    composited = read_png(out).astype(float)
    render = read_png(Path(job.meta["render"])).astype(float)
    bump = read_png(Path(bpy.data.images["BumpStudio Bump"].filepath)).astype(float)
    mask = read_png(Path(bpy.data.images["BumpStudio Mask"].filepath))
    mask = mask[..., 0] if mask.ndim == 3 else mask
    full, empty = mask >= 254, mask == 0
    assert full.any() and empty.any()
    assert np.abs(composited[full] - bump[full]).mean() < 3.0
    assert np.abs(composited[empty] - render[empty]).mean() < 3.0


def test_second_run_replaces_the_result_nodes(first_bump):
    scene = bpy.context.scene
    tree = scene.compositing_node_group
    nodes = sorted(n.name for n in tree.nodes)
    groups, images = len(bpy.data.node_groups), sorted(i.name for i in bpy.data.images)
    old_file = bpy.data.images["BumpStudio Bump"].filepath
    assert bpy.ops.bump_studio.render_bump(use_last_render=True, wait=True, timeout=60) == {"FINISHED"}
    assert sorted(n.name for n in scene.compositing_node_group.nodes) == nodes
    assert len(bpy.data.node_groups) == groups
    assert sorted(i.name for i in bpy.data.images) == images
    assert bpy.data.images["BumpStudio Bump"].filepath != old_file
    assert _compositor(scene)["out_from"] == "BumpStudio Mix"


def test_linked_characters_send_their_own_prompts(first_bump, studio):
    scene = bpy.context.scene
    with Library.open(studio["library"]) as lib:
        ref = lib.list_characters()[0].id
        character = lib.update_character(ref, prompt="Mateo, short black hair", negative_prompt="earrings")
    try:
        assert bpy.ops.bump_studio.render_bump(use_last_render=True, wait=True, timeout=60) == {"FINISHED"}
    finally:
        with Library.open(studio["library"]) as lib:
            lib.update_character(ref, prompt="", negative_prompt="")
    result = Path(scene.bump_studio.result_folder)
    meta = json.loads((result.parent / "job.json").read_text())["meta"]
    sent = {ref: {"prompt": "Mateo, short black hair", "negative_prompt": "earrings"}}
    assert character.suggested_prompt() == "Mateo, short black hair" and meta["character_prompts"] == sent
    # The panel's prompt is empty, so the job prompt is already the character's text: the face pass starts
    # from "" (no second copy before the character's own words); the whole pass keeps the job prompt.
    assert meta["params"]["prompt"] == "Mateo, short black hair" and meta["params"]["face"] == {"prompt": ""}
    record = json.loads((result / "bump.json").read_text())
    assert record["character_prompts"] == sent
    assert record["faces"][0]["prompt"] == "Mateo, short black hair"
    assert record["faces"][0]["negative_prompt"].endswith(", earrings")


def test_cancel_stops_the_job_and_keeps_the_previous_result(first_bump):
    scene = bpy.context.scene
    settings = scene.bump_studio
    previous = bpy.data.images["BumpStudio Bump"].filepath
    steps, denoise, face_pass = settings.steps, settings.denoise, settings.face_pass
    settings.steps, settings.denoise, settings.face_pass = 80, 1.0, False  # ~25 s if nobody cancels
    try:
        assert bpy.ops.bump_studio.render_bump(use_last_render=True) == {"FINISHED"}
        _pump(scene.name, until=lambda s: s.job_state == "running" and s.job_progress > 0)
        started = time.monotonic()
        assert bpy.ops.bump_studio.cancel_bump() == {"FINISHED"}
        _pump(scene.name, timeout=30)
    finally:
        settings.steps, settings.denoise, settings.face_pass = steps, denoise, face_pass
    assert settings.job_state == "cancelled", settings.job_message
    assert time.monotonic() - started < 10
    assert bpy.data.images["BumpStudio Bump"].filepath == previous
    assert _compositor(scene)["out_from"] == "BumpStudio Mix"


def test_backend_down_is_reported(first_bump):
    scene = bpy.context.scene
    prefs = bpy.context.preferences.addons[MODULE].preferences
    old = prefs.backend_url
    prefs.backend_url = "http://127.0.0.1:9"
    try:
        with pytest.raises(RuntimeError, match=r"backend not running at http://127\.0\.0\.1:9") as raised:
            bpy.ops.bump_studio.render_bump(use_last_render=True)  # checked before anything is rendered
    finally:
        prefs.backend_url = old
    assert "python -m bump_backend serve" in str(raised.value) and "Backend > Start" in str(raised.value)
    assert addon_module("jobs").MANAGER.running(scene.name) is None


def test_errors_before_submitting_change_nothing(first_bump):
    scene = bpy.context.scene
    settings = scene.bump_studio
    camera = scene.camera
    before, message = snapshot(scene), settings.job_message
    scene.camera = None
    try:
        with pytest.raises(RuntimeError, match="no active camera"):
            bpy.ops.bump_studio.render_bump()
    finally:
        scene.camera = camera
    assert addon_module("jobs").MANAGER.running(scene.name) is None
    assert settings.job_message == message and snapshot(scene) == before


def test_user_scene_is_unchanged_by_bumps(first_bump, studio):
    assert snapshot(bpy.context.scene) == studio["before"]
