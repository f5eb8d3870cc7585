"""Shared pieces of the add-on tests: the installed extension, a user scene, its snapshot, the backend process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bpy

REPO = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.bump_studio"


def addon_module(name: str = "") -> Any:
    """A module of the installed extension (looked up each time: disable/enable re-imports them)."""
    return sys.modules[f"{MODULE}.{name}" if name else MODULE]


def enable() -> None:
    import addon_utils

    if MODULE not in {a.module for a in bpy.context.preferences.addons}:
        addon_utils.enable(MODULE, default_set=True, handle_error=_raise)


def _raise(exc: BaseException) -> None:
    raise exc


def configure(library: Path, work: Path, backend_url: str = "http://127.0.0.1:9") -> Any:
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.library_folder, prefs.work_folder, prefs.backend_url = str(library), str(work), backend_url
    return prefs


def tiny_settings(scene: bpy.types.Scene) -> None:
    """Package and bump settings small enough for a test (64 px views, 1 sample, tiny face pass)."""
    s = scene.bump_studio
    bpy.ops.bump_studio.reset_settings()
    s.view_set, s.custom_views = "custom", "front,profile_right"
    s.resolution, s.preset, s.samples = 64, "preview", 1
    s.steps, s.denoise, s.sampler, s.seed, s.face_size, s.cfg = 4, 0.4, "Euler", 7, 128, 7.0


def user_scene() -> bpy.types.Object:
    """An empty file with the demo character, the user's own camera, light, world and render settings."""
    from profile_rig.blender.demo_character import build_demo_character
    from profile_rig.core.phenotype import PRESETS

    bpy.ops.wm.read_factory_settings(use_empty=True)  # this also disables add-ons: enable again after
    enable()
    scene = bpy.context.scene
    rig = build_demo_character(PRESETS["demo_man"], scene.collection, subdivision=0)
    cam = bpy.data.objects.new("UserCam", bpy.data.cameras.new("UserCam"))
    cam.data.lens = 60.0
    cam.location = (0.0, -0.7, 1.6)  # face about 40 px tall at 96 px
    cam.rotation_euler = (1.5708, 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    light = bpy.data.objects.new("UserLight", bpy.data.lights.new("UserLight", "AREA"))
    light.location = (0.5, -1.0, 2.0)
    light.data.energy = 80.0
    scene.collection.objects.link(light)
    world = bpy.data.worlds.new("UserWorld")
    world.color = (0.2, 0.3, 0.4)
    scene.world = world
    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = render.resolution_y = 96
    render.resolution_percentage = 100
    render.image_settings.file_format = "JPEG"
    scene.cycles.samples = 1
    scene.cycles.use_denoising = False
    scene.view_settings.view_transform = "Standard"
    scene.frame_current = 7
    bpy.context.view_layer.objects.active = rig
    rig.select_set(True)
    return rig


def pump_jobs(scene_name: str, timeout: float = 60.0, until=None) -> list[tuple[str, float, str]]:
    """Run the add-on's main-thread side like Blender's timer would (no event loop runs timers here);
    returns what the panel showed, stopping early once ``until(settings)`` holds."""
    jobs = addon_module("jobs")
    settings = bpy.data.scenes[scene_name].bump_studio
    seen = []
    deadline = time.monotonic() + timeout
    while jobs.MANAGER.running(scene_name) is not None:
        assert time.monotonic() < deadline, f"job still {settings.job_state} after {timeout} s"
        jobs.tick()
        seen.append((settings.job_state, settings.job_progress, settings.job_stage))
        if until is not None and until(settings):
            return seen
        time.sleep(0.02)
    jobs.tick()
    seen.append((settings.job_state, settings.job_progress, settings.job_stage))
    return seen


def snapshot(scene: bpy.types.Scene) -> dict[str, Any]:
    """What a user would notice changed: scenes, objects, cameras, lights, worlds, render settings, selection."""
    render = scene.render
    return {
        "scenes": sorted(s.name for s in bpy.data.scenes),
        "objects": sorted((o.name, o.type, tuple(round(v, 6) for v in o.location)) for o in bpy.data.objects),
        "cameras": sorted((c.name, c.lens, c.shift_x, c.shift_y) for c in bpy.data.cameras),
        "lights": sorted((lt.name, lt.type, lt.energy) for lt in bpy.data.lights),
        "worlds": sorted(w.name for w in bpy.data.worlds),
        "world": scene.world.name if scene.world else None,
        "world_color": tuple(scene.world.color) if scene.world else None,
        "camera": scene.camera.name if scene.camera else None,
        "render": (render.engine, render.resolution_x, render.resolution_y, render.resolution_percentage,
                   render.film_transparent, render.filepath, render.image_settings.file_format,
                   render.image_settings.color_mode, scene.cycles.samples, scene.cycles.use_denoising),
        "view": (scene.view_settings.view_transform, scene.view_settings.look, scene.view_settings.exposure),
        "frame": scene.frame_current,
        "active": bpy.context.view_layer.objects.active.name if bpy.context.view_layer.objects.active else None,
        "selected": sorted(o.name for o in scene.objects if o.select_get()),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackendProcess:
    """The real server with the tiny model, in a separate process (see backend_server.py)."""

    def __init__(self, root: Path, *extra: str) -> None:
        """``extra``: more backend_server.py arguments (``--models DIR``, ``--package-root DIR``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "server.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        self.handle = open(self.log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("backend_server.py")),
                                      "--root", str(root), "--port", str(self.port), *extra],
                                     cwd=REPO, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> BackendProcess:
        from bump_client.client import BackendError, BumpClient

        client = BumpClient(self.url, retries=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if client.health().model_state == "ready":
                    return self
            except BackendError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"backend not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.handle.close()
