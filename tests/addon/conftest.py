"""Fixtures of the add-on tests: the built zip, the installed extension, the real backend, a rendered studio.

One ``bpy`` per process, so these are session-wide; tests that change preferences put them back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bpy
import pytest
from addon_helpers import REPO, BackendProcess, configure, snapshot, tiny_settings, user_scene


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "addon.build", "--out", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def installed(extension_zip, tmp_path_factory) -> str:
    result = bpy.ops.extensions.package_install_files(filepath=str(extension_zip), repo="user_default",
                                                      enable_on_install=True)
    assert result == {"FINISHED"}
    root = tmp_path_factory.mktemp("prefs")  # never the user's ~/BumpStudio while testing
    configure(root / "library", root / "work")
    return str(extension_zip)


@pytest.fixture(scope="session")
def backend_process(tmp_path_factory):
    """Started early (it needs ~12 s to import torch and build the tiny model); waited for by ``backend``."""
    process = BackendProcess(tmp_path_factory.mktemp("backend"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def backend(backend_process) -> BackendProcess:
    return backend_process.wait_ready()


@pytest.fixture(scope="session")
def studio(installed, backend_process, tmp_path_factory) -> dict:
    """The user's scene with the demo character, and its package rendered once into a fresh library."""
    root = tmp_path_factory.mktemp("studio")
    rig = user_scene()
    configure(root / "library", root / "work", backend_process.url)
    scene = bpy.context.scene
    tiny_settings(scene)
    scene.bump_studio.character = rig
    before = snapshot(scene)
    seen: list[str] = []
    handler = lambda *_args: seen.append("view")  # noqa: E731
    bpy.app.handlers.render_post.append(handler)
    try:
        result = bpy.ops.bump_studio.render_package()
    finally:
        bpy.app.handlers.render_post.remove(handler)
    return {"rig": rig, "root": root, "library": root / "library", "before": before, "result": result,
            "renders": len(seen)}
