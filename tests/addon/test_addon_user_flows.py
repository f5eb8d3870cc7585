"""What a new user does in a scene of their own: settings set before the panel ever initialised them,
a second figure in the file, a backend that is down.

Every test here starts from a fresh file (``user_scene``), so this module runs after the ones that
share the session's studio scene.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import MODULE, REPO, addon_module, configure, free_port, snapshot, user_scene

from bump_client import local_server as ls
from bump_client.capabilities import unavailable
from bump_contracts.package_manifest import load_package
from character_library import Library
from profile_rig.blender.demo_character import build_demo_character
from profile_rig.core.phenotype import PRESETS
from profile_rig.imaging.png_io import read_png


def _script_settings(prefs) -> None:
    """The preferences say one thing (64 px, front only); the script below says another."""
    prefs.view_set, prefs.custom_views, prefs.resolution, prefs.preset, prefs.samples = "custom", "front", 64, "preview", 1
    prefs.cfg, prefs.steps = 5.5, 35


def _renders() -> tuple[list[str], object]:
    seen: list[str] = []
    handler = lambda *_args: seen.append("render")  # noqa: E731
    bpy.app.handlers.render_post.append(handler)
    return seen, handler


@pytest.fixture(scope="module")
def fresh(installed, backend_process, tmp_path_factory) -> dict:
    """A fresh file whose scene settings a script set before any panel drew them; Render Package into the library."""
    root = tmp_path_factory.mktemp("fresh")
    rig = user_scene()
    prefs = configure(root / "library", root / "work", backend_process.url)
    _script_settings(prefs)
    settings = bpy.context.scene.bump_studio
    assert not settings.initialized
    settings.view_set, settings.custom_views, settings.resolution = "custom", "front,profile_left", 96
    result = bpy.ops.bump_studio.render_package()  # Character empty: the selected demo figure
    return {"rig": rig, "root": root, "result": result, "prefs": prefs}


def test_render_package_on_a_fresh_scene_uses_what_the_script_set(fresh):
    assert fresh["result"] == {"FINISHED"}
    settings = bpy.context.scene.bump_studio
    with Library.open(fresh["root"] / "library") as lib:
        (character,) = lib.list_characters()
        manifest = load_package(lib.get_package(character.id).path, check_hashes=True)
    assert [v.name for v in manifest.views] == ["front", "profile_left"]
    assert manifest.renderer["resolution"] == [96, 96]
    assert manifest.renderer["samples"] == 1  # never set by the script: the preferences' value
    # and the panel still shows what was asked (and what was rendered)
    assert (settings.custom_views, settings.resolution, settings.preset) == ("front,profile_left", 96, "preview")
    assert settings.initialized


def test_render_and_bump_on_a_fresh_scene_uses_what_the_script_set(fresh, backend):
    old = bpy.context.scene
    shot = bpy.data.scenes.new("Shot Two")
    for obj in old.objects:
        shot.collection.objects.link(obj)
    shot.camera = old.camera
    render = shot.render
    render.engine, render.resolution_x, render.resolution_y, render.resolution_percentage = "CYCLES", 96, 96, 100
    shot.cycles.samples, shot.cycles.use_denoising = 1, False
    settings = shot.bump_studio
    assert not settings.initialized
    settings.steps, settings.denoise, settings.sampler, settings.seed, settings.face_size = 3, 0.4, "Euler", 5, 128
    with bpy.context.temp_override(scene=shot):
        assert bpy.ops.bump_studio.render_bump(wait=True, timeout=120) == {"FINISHED"}, settings.job_message
    meta = json.loads((Path(settings.result_folder).parent / "job.json").read_text())["meta"]
    params = meta["params"]
    assert (params["steps"], params["denoise"], params["sampler"], params["seed"]) == (3, 0.4, "Euler", 5)
    assert params["cfg"] == 5.5  # not set on the scene: the preferences' default
    assert (settings.steps, settings.face_size) == (3, 128) and settings.initialized


def test_empty_character_field_packages_the_selected_figure(fresh, tmp_path):
    """A second figure earlier in scene order must not win over the one the user selected."""
    scene = bpy.context.scene
    man = fresh["rig"]
    woman = build_demo_character(PRESETS["demo_woman"], scene.collection, subdivision=0)
    woman.location.x = 1.5
    # the user clicks the woman's body mesh (not the armature): the armature owning it is the character
    body = next(c for c in woman.children if c.type == "MESH")
    for obj in scene.objects:
        obj.select_set(False)
    body.select_set(True)
    bpy.context.view_layer.objects.active = body
    names = [o.name for o in scene.objects if o.type == "ARMATURE"]
    assert names.index(man.name) < names.index(woman.name)
    settings = scene.bump_studio
    settings.character = None
    assert settings.library_character == man["bump_studio_character"]  # the panel still shows the man
    assert bpy.ops.bump_studio.render_package() == {"FINISHED"}
    with Library.open(fresh["root"] / "library") as lib:
        by_name = {c.name: c for c in lib.list_characters()}
        assert set(by_name) == {man.name, woman.name}
        woman_manifest = load_package(lib.get_package(by_name[woman.name].id).path)
        assert [p.version for p in lib.list_packages(by_name[man.name].id)] == [1]  # nothing filed under him
    assert woman_manifest.character_name == woman.name
    assert woman["bump_studio_character"] == by_name[woman.name].id
    assert bpy.context.view_layer.objects.active == body  # the selection is the user's, untouched


def _jobs_dir() -> Path:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    return Path(prefs.work_folder) / "jobs"


def _job_folders() -> set[str]:
    folder = _jobs_dir()
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_bump_while_the_backend_is_down_renders_nothing_and_leaves_no_job(fresh):
    prefs = fresh["prefs"]
    old = prefs.backend_url
    before = _job_folders()
    seen, handler = _renders()
    prefs.backend_url = "http://127.0.0.1:9"
    try:
        for _ in range(2):
            with pytest.raises(RuntimeError, match=r"backend not running at http://127\.0\.0\.1:9"):
                bpy.ops.bump_studio.render_bump()
    finally:
        prefs.backend_url = old
        bpy.app.handlers.render_post.remove(handler)
    assert seen == []  # refused before rendering
    assert _job_folders() == before


class _HealthOnly(BaseHTTPRequestHandler):
    """A server that says it is up, then refuses every job (a backend that died between check and submit)."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "version": "0", "contract_version": 1, "auth_required": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"status": 503, "code": "gone", "message": "shutting down", "field": None}})
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_args) -> None:
        pass


def test_a_bump_that_never_reaches_the_backend_leaves_no_job_folder(fresh):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    prefs = fresh["prefs"]
    old = prefs.backend_url
    before = _job_folders()
    prefs.backend_url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert bpy.ops.bump_studio.render_bump(use_last_render=False) == {"FINISHED"}  # the check passed
        assert len(_job_folders() - before) == 1  # the render and sidecar are written while it is sent
        addon_module("jobs").MANAGER.wait(bpy.context.scene.name, 60)
    finally:
        prefs.backend_url = old
        server.shutdown()
        server.server_close()
    settings = bpy.context.scene.bump_studio
    assert settings.job_state == "error", settings.job_message
    assert "shutting down" in settings.job_message or "503" in settings.job_message
    assert _job_folders() == before


def test_what_the_backend_cannot_do_is_refused_before_rendering(fresh, tmp_path):
    """A backend without the panel's sampler, with a smaller face limit and a model with fewer CLIP layers than
    the clip skip asks: no render, a message naming all three."""
    caps = {"ip_adapter_kinds": [], "samplers": ["Euler", "DDIM"], "max_face_size": 96, "device": "cpu",
            "max_clip_skip": 2}
    stub = ls.LocalServer(tmp_path / "stub")
    state = stub.start(ls.ServerCommand(sys.executable, free_port(), "tok", ("--capabilities", json.dumps(caps)),
                                        module=(str(REPO / "tests" / "client" / "health_stub_server.py"),)))
    prefs, ui = fresh["prefs"], addon_module("backend_ui")
    old = prefs.backend_url, prefs.backend_token
    settings = bpy.context.scene.bump_studio
    saved = settings.sampler, settings.face_size, settings.clip_skip
    seen, handler = _renders()
    before = _job_folders()
    try:
        prefs.backend_url, prefs.backend_token = state.url, state.token
        ui.ensure_polling(prefs)
        deadline = time.monotonic() + 30
        while ui.capabilities() is None:
            assert time.monotonic() < deadline, ui.status().text
            ui.status_timer()
            time.sleep(0.05)
        settings.sampler, settings.face_size, settings.clip_skip = "Restart", 128, 3
        with pytest.raises(RuntimeError, match=r"'Restart' is not on this backend.*above this backend's limit of 96"
                                               r".*clip skip 3 is above this backend's model limit of 2"):
            bpy.ops.bump_studio.render_bump()
        names = ("sampler", "face_size", "face_pass", "ip_adapter_scale", "clip_skip")
        found = unavailable(ui.capabilities(), {n: getattr(settings, n) for n in names})
        assert set(found) == {"sampler", "face_size", "ip_adapter_scale", "clip_skip"}  # the panel greys/marks these
    finally:
        settings.sampler, settings.face_size, settings.clip_skip = saved
        prefs.backend_url, prefs.backend_token = old
        bpy.app.handlers.render_post.remove(handler)
        stub.stop()
        ui.ensure_polling(prefs)
    assert seen == [] and _job_folders() == before


@pytest.mark.parametrize("engine", ["BLENDER_WORKBENCH", "BLENDER_EEVEE"])
def test_quick_look_renders_with_a_viewport_engine_and_puts_the_scene_back(fresh, backend, engine):
    scene = bpy.context.scene
    settings = scene.bump_studio
    settings.steps, settings.face_size, settings.sampler, settings.denoise = 3, 128, "Euler", 0.4  # tiny and quick
    settings.bump_engine = engine
    shading = scene.display.shading
    before = snapshot(scene), shading.light, shading.color_type, scene.eevee.taa_render_samples
    try:
        assert bpy.ops.bump_studio.render_bump(wait=True, timeout=120) == {"FINISHED"}, settings.job_message
    finally:
        settings.bump_engine = "SCENE"
    meta = json.loads((Path(settings.result_folder).parent / "job.json").read_text())["meta"]
    assert meta["render_engine"] == engine and meta["render_s"] > 0
    render = read_png(Path(meta["render"])).astype(float)
    assert render.shape[:2] == (96, 96) and render[..., :3].std() > 5  # the figure is there, not a blank frame
    assert (snapshot(scene), shading.light, shading.color_type, scene.eevee.taa_render_samples) == before
    assert scene.render.engine == "CYCLES" and settings.job_state == "done"


def test_the_previous_result_never_goes_into_the_next_render(fresh, backend):
    """Once a result is wired into the compositor, the next Render & Bump still sends the plain render."""
    scene = bpy.context.scene
    settings = scene.bump_studio
    settings.bump_engine = "BLENDER_WORKBENCH"  # deterministic: two renders of the same shot are the same image
    renders = []
    try:
        for _ in range(2):
            assert bpy.ops.bump_studio.render_bump(wait=True, timeout=120) == {"FINISHED"}, settings.job_message
            assert scene.compositing_node_group.nodes.get("BumpStudio Mix") is not None
            meta = json.loads((Path(settings.result_folder).parent / "job.json").read_text())["meta"]
            renders.append(read_png(Path(meta["render"])).astype(float))
    finally:
        settings.bump_engine = "SCENE"
    assert np.abs(renders[0] - renders[1]).max() <= 1.0
    assert scene.render.use_compositing


def test_add_demo_character_gives_a_scene_ready_for_render_and_bump(fresh):
    """The no-terminal path: one button puts the demo and a camera on its face into the user's own scene."""
    scene = bpy.context.scene
    cameras, armatures = len(bpy.data.cameras), len([o for o in scene.objects if o.type == "ARMATURE"])
    assert bpy.ops.bump_studio.add_demo_character(preset="demo_woman", subdivision=0) == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    assert rig.type == "ARMATURE" and scene.bump_studio.character == rig
    assert len([o for o in scene.objects if o.type == "ARMATURE"]) == armatures + 1
    assert len(bpy.data.cameras) == cameras + 1 and scene.camera.name == f"{rig.name} Camera"
    assert bpy.ops.bump_studio.detect_head() == {"FINISHED"} and "bones" in scene.bump_studio.detected
