"""Start / Stop from the preferences: the real ``python -m bump_backend serve`` (tiny model) as Blender's child.

Blender's bpy module runs no event loop, so the tests call the status timer (``backend_ui.status_timer``)
in a loop, as Blender's loop does in the UI. The health checks themselves run in the poller's thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path

import addon_utils
import bpy
import pytest
from addon_helpers import MODULE, addon_module, configure, enable, free_port

from bump_client import local_server as ls
from bump_client.client import BumpClient


def _pump_until(predicate, timeout: float = 180.0) -> list[str]:
    """Run the timer like Blender would; returns each status text seen (the panel's light)."""
    ui = addon_module("backend_ui")
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ui.status_timer()  # how long it takes is measured by benchmarks/bench_addon.py, not asserted here
        status = ui.status()
        if not seen or seen[-1] != status.text:
            seen.append(status.text)
        if predicate(status):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"status never reached the condition; seen: {seen}\n{_log_tail()}")


def _log_tail() -> str:
    server = addon_module("backend_ui").RUNTIME.server
    return server.log_tail() if server is not None else ""


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def backend_prefs(installed, backend, tmp_path, monkeypatch):
    """Preferences as an artist sets them: this Python, a free port, the tiny model (instead of downloading sd15)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    prefs = bpy.context.preferences.addons[MODULE].preferences
    saved = {n: getattr(prefs, n) for n in ("backend_url", "backend_token", "backend_python", "backend_port",
                                            "backend_args", "backend_keep_running", "work_folder")}
    spec = Path(backend.log).parent / "models" / "spec.json"
    prefs.backend_python, prefs.backend_port = sys.executable, free_port()
    prefs.backend_args = f"--model {spec} --data-dir {tmp_path / 'data'} --threads 1 --log-level info"
    prefs.work_folder = str(tmp_path / "work")
    yield prefs
    addon_module("backend_ui").stop_server()
    prefs = bpy.context.preferences.addons[MODULE].preferences  # the add-on may have been disabled and enabled
    for name, value in saved.items():
        setattr(prefs, name, value)


def test_start_shows_ready_then_stop_ends_the_process(backend_prefs):
    prefs, ui = backend_prefs, addon_module("backend_ui")
    assert prefs.backend_python == sys.executable  # the bpy module's Python: the default here
    assert bpy.ops.bump_studio.backend_start() == {"FINISHED"}
    server = ui.RUNTIME.server
    port, token = prefs.backend_port, prefs.backend_token
    assert prefs.backend_url == f"http://127.0.0.1:{port}" and len(token) >= 24
    seen = _pump_until(lambda s: s.level == "ready")
    assert seen[0].startswith("starting") and seen[-1].startswith("ready")
    caps = ui.capabilities()  # what the panel greys by: this server's own answer
    assert caps.ip_adapter_kinds == ("plus-face",) and caps.device == "cpu" and "Restart" in caps.samplers
    assert "cpu" in seen[-1] and "queued" in seen[-1]
    health = BumpClient(prefs.backend_url, token=token, retries=0).health()
    assert health.ready and health.auth_required  # started with the generated token
    assert bpy.ops.bump_studio.check_backend() == {"FINISHED"}
    log = Path(server.log_path)
    assert log.parent == Path(prefs.work_folder) / "backend" and "--token=***" in log.read_text()
    assert bpy.ops.bump_studio.backend_log() == {"FINISHED"}
    assert any(bpy.path.abspath(t.filepath) == str(log) for t in bpy.data.texts)

    assert bpy.ops.bump_studio.backend_stop() == {"FINISHED"}
    assert not server.running() and _closed(port) and not server.state_path.exists()
    _pump_until(lambda s: s.level in ("unreachable", "off"), timeout=20)


def test_disabling_the_addon_stops_the_server_unless_kept_running(backend_prefs, tmp_path):
    prefs, ui = backend_prefs, addon_module("backend_ui")
    library, work, args = Path(prefs.library_folder), Path(prefs.work_folder), prefs.backend_args
    assert bpy.ops.bump_studio.backend_start() == {"FINISHED"}
    first = ui.RUNTIME.server
    addon_utils.disable(MODULE, default_set=True)
    assert not first.running()  # disabled: stopped

    enable()
    prefs = configure(library, work)
    prefs.backend_python, prefs.backend_port = sys.executable, free_port()
    prefs.backend_args, prefs.backend_keep_running = args, True
    ui = addon_module("backend_ui")
    assert bpy.ops.bump_studio.backend_start() == {"FINISHED"}
    pid, token, port = ui.RUNTIME.server.state.pid, prefs.backend_token, prefs.backend_port
    addon_utils.disable(MODULE, default_set=True)
    assert ls.pid_alive(pid)  # kept running

    enable()  # the next session: it finds the server again through the state file
    prefs = configure(library, work)
    addon_module()._start_backend_ui()  # what the register timer does in Blender
    ui = addon_module("backend_ui")
    assert ui.RUNTIME.server is not None and ui.RUNTIME.server.state.pid == pid
    assert prefs.backend_url == f"http://127.0.0.1:{port}" and prefs.backend_token == token
    assert bpy.ops.bump_studio.backend_stop() == {"FINISHED"}
    deadline = time.monotonic() + 20
    while ls.pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    assert not ls.pid_alive(pid) and _closed(port)


def _reap(pid: int) -> None:
    """The kept server is still this test process's child: collect it once it has ended."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
