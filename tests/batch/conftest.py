"""Batch tests: the real CLI in subprocesses, real render workers (bpy), and a real backend server
(``python -m bump_backend serve``) loading tiny models through the real loaders.

Sizes are tiny (64-96 px, 1 sample, 2 views) so a full run takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from batch_helpers import REPO, env, free_port

SHOT_SCRIPT = textwrap.dedent('''
    import sys, bpy
    from profile_rig.blender.scene_session import prepare_scene
    from profile_rig.core.phenotype import PRESETS
    session = prepare_scene(demo=PRESETS["demo_man"])
    scene = bpy.context.scene
    centre = session.found.frame.centre
    for name, position in (("CamA", (0.3, -1.6, centre[2] + 0.05)), ("CamB", (-0.6, -1.4, centre[2] + 0.2))):
        data = bpy.data.cameras.new(name)
        data.lens = 50
        camera = bpy.data.objects.new(name, data)
        scene.collection.objects.link(camera)
        camera.location = position
        target = bpy.data.objects.new(name + "_target", None)
        scene.collection.objects.link(target)
        target.location = tuple(centre)
        constraint = camera.constraints.new("TRACK_TO")
        constraint.target, constraint.track_axis, constraint.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"
    scene.camera = bpy.data.objects["CamA"]
    world = bpy.data.worlds.new("W")
    world.color = (0.6, 0.6, 0.6)
    scene.world = world
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    scene.collection.objects.link(sun)
    sun.rotation_euler = (0.6, 0.2, 0.3)
    scene.render.resolution_x, scene.render.resolution_y = 96, 64
    bpy.ops.wm.save_as_mainfile(filepath=sys.argv[-1])
    print("RIG", session.found.character)
''')


@pytest.fixture(scope="session")
def backend(tmp_path_factory):
    """A backend server subprocess with the generator's tiny SD 1.5 + plus-face IP-Adapter."""
    from bump_backend.testing import tiny_models as tiny

    root = tmp_path_factory.mktemp("batch_backend")
    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"base": str(sd15), "ip_adapter": str(ip_dir), "ip_adapter_weight": weight,
                                "device": "cpu"}), encoding="utf-8")
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen([sys.executable, "-m", "bump_backend", "serve", "--port", str(port), "--data-dir",
                             str(root / "data"), "--model", str(spec), "--threads", "1", "--log-level", "warning"],
                            cwd=REPO, env=env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    from bump_client.client import BackendError, BumpClient

    client = BumpClient(url, retries=0)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-3000:])
        try:
            if client.health().model_state == "ready":
                break
        except BackendError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("backend did not become ready")
        time.sleep(0.2)
    yield {"url": url, "client": client}
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()


@pytest.fixture(scope="session")
def shot_blend(tmp_path_factory) -> Path:
    """A .blend with the demo character (rig 'Mateo'), two cameras and a sun."""
    path = tmp_path_factory.mktemp("batch_scene") / "street.blend"
    result = subprocess.run([sys.executable, "-c", SHOT_SCRIPT, str(path)], cwd=REPO, env=env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return path
