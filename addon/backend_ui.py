"""The backend the add-on starts itself: Start/Stop/Open log operators and the status light.

The process and the health checks live in ``bump_client.local_server`` (no bpy). Health is read
by a worker thread; a ``bpy.app.timers`` timer copies its latest result into ``STATUS`` and
redraws, so the main thread never waits on the network. The server is stopped when the add-on
is disabled or Blender quits, unless the preferences say to keep it running (then the next
session finds it again through its state file in the work folder).
"""

from __future__ import annotations

import atexit
import shlex
import time
from pathlib import Path
from typing import Any

import bpy

from bump_client import local_server as ls
from bump_client.capabilities import identity_line

from . import preferences
from .preferences import get_prefs, work_folder

STATUS_INTERVAL_S = 0.5  # how often the timer looks at the poller's result (a dict read, no I/O)
POLL_INTERVAL_S = 2.0  # how often the worker asks /v1/health
ICONS = {ls.READY: "CHECKMARK", ls.LOADING: "SORTTIME", ls.STARTING: "SORTTIME", ls.FAILED: "ERROR",
         ls.UNREACHABLE: "CANCEL", ls.OFF: "CANCEL"}


class _Runtime:
    """The process this session started (or adopted), the poller, and what the light shows."""

    server: ls.LocalServer | None = None
    poller: ls.HealthPoller | None = None
    status: ls.Status = ls.Status(ls.OFF, "not checked yet")


RUNTIME = _Runtime()


def server_folder(prefs: Any) -> Path:
    return work_folder(prefs) / "backend"


def python_for(prefs: Any) -> str:
    return prefs.backend_python or ls.default_python(bpy.app.binary_path)


def status() -> ls.Status:
    return RUNTIME.status


def capabilities() -> Any:
    """The running backend's capabilities; None when unknown (not checked, older server, no token)."""
    health = RUNTIME.status.health
    return getattr(health, "capabilities", None) if health is not None else None


def recent_status(prefs: Any, max_age_s: float) -> ls.Status | None:
    """The poller's last answer for the preferences' backend, if it is younger than ``max_age_s``."""
    poller = RUNTIME.poller
    if poller is None or (poller.url, poller.token) != (prefs.backend_url, prefs.backend_token or None):
        return None
    latest = poller.latest()
    if latest is None or time.monotonic() - latest.checked > max_age_s:
        return None
    return latest


def ours_running() -> bool:
    return RUNTIME.server is not None and RUNTIME.server.running()


# -- polling ------------------------------------------------------------------------------------
def ensure_polling(prefs: Any | None = None) -> ls.HealthPoller:
    """A poller for the URL and token in the preferences (restarted when they change) and its timer."""
    prefs = prefs or get_prefs()
    url, token = prefs.backend_url, prefs.backend_token or None
    poller = RUNTIME.poller
    if poller is None or (poller.url, poller.token) != (url, token):
        if poller is not None:
            poller.stop(join_s=0.0)  # a daemon thread: it ends after its current check
            RUNTIME.status = ls.Status(ls.OFF, f"checking {url}")  # never another backend's capabilities
        RUNTIME.poller = poller = ls.HealthPoller(url, token, interval=POLL_INTERVAL_S).start()
    if not bpy.app.timers.is_registered(status_timer):
        bpy.app.timers.register(status_timer, first_interval=STATUS_INTERVAL_S, persistent=True)
    return poller


def refresh_status() -> ls.Status:
    """Main thread: take in the worker's latest check (bounded work, no I/O)."""
    poller = RUNTIME.poller
    latest = poller.latest() if poller is not None else None
    server = RUNTIME.server
    current = RUNTIME.status
    if server is not None and server.proc is not None and not server.running():
        tail = server.log_tail(400).strip().splitlines()
        why = tail[-1] if tail else "no output"
        current = ls.Status(ls.FAILED, f"the backend exited (code {server.exit_code()}): {why}")
    elif latest is not None:
        current = latest
        if latest.level == ls.UNREACHABLE and ours_running():
            current = ls.Status(ls.STARTING, "starting (importing torch, loading the model)")
    if current != RUNTIME.status:
        RUNTIME.status = current
        _tag_redraw()
    return current


def _tag_redraw() -> None:
    """Repaint where the light shows: the sidebar and the preferences window."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


def status_timer() -> float | None:
    """The ``bpy.app.timers`` callback (a module function, so it can be unregistered by identity)."""
    prefs = get_prefs()
    if RUNTIME.poller is not None and (RUNTIME.poller.url, RUNTIME.poller.token) != (prefs.backend_url,
                                                                                   prefs.backend_token or None):
        ensure_polling(prefs)
    remember_keep_running(prefs)
    refresh_status()
    return STATUS_INTERVAL_S


# -- start / stop -------------------------------------------------------------------------------
def start_server(prefs: Any) -> ls.ServerState:
    """Start ``python -m bump_backend serve`` on 127.0.0.1 with a new token; the preferences then point at it."""
    if ours_running():
        raise ls.ServerError("the backend is already running; Stop it first")
    try:
        extra = tuple(shlex.split(prefs.backend_args))
    except ValueError as exc:
        raise ls.ServerError(f"Backend arguments: {exc}") from None
    command = ls.ServerCommand(bpy.path.abspath(python_for(prefs)), prefs.backend_port, ls.new_token(), extra)
    server = ls.LocalServer(server_folder(prefs))
    state = server.start(command)
    RUNTIME.server = server
    prefs.backend_url, prefs.backend_token = state.url, state.token
    RUNTIME.status = ls.Status(ls.STARTING, "starting (importing torch, loading the model)")
    ensure_polling(prefs).poll_now()
    return state


def stop_server() -> int | None:
    server = RUNTIME.server
    RUNTIME.server = None
    code = server.stop() if server is not None else None
    RUNTIME.status = ls.Status(ls.OFF, "stopped")
    if RUNTIME.poller is not None:
        RUNTIME.poller.poll_now()
    return code


def adopt(prefs: Any) -> ls.ServerState | None:
    """A server an earlier session kept running: take it over (URL and token from its state file)."""
    if RUNTIME.server is not None:
        return None
    try:
        server = ls.LocalServer(server_folder(prefs))
        state = server.adopt()
    except OSError:
        return None
    if state is not None:
        RUNTIME.server = server
        prefs.backend_url, prefs.backend_token = state.url, state.token
    return state


def shutdown(keep_running: bool | None = None) -> None:
    """Add-on disabled or Blender quitting: stop polling; stop our server unless it is to keep running."""
    if keep_running is None:
        keep_running = bool(getattr(get_prefs(), "backend_keep_running", False))
    if RUNTIME.poller is not None:
        RUNTIME.poller.stop(join_s=0.5)
        RUNTIME.poller = None
    if bpy.app.timers.is_registered(status_timer):
        bpy.app.timers.unregister(status_timer)
    server = RUNTIME.server
    if server is not None:
        if keep_running:
            server._close_log()
        else:
            server.stop()
    RUNTIME.server = None
    RUNTIME.status = ls.Status(ls.OFF, "not checked yet")


_KEEP_AT_EXIT: list[bool] = [False]


def _at_exit() -> None:
    """Blender quits without unregistering add-ons: Python's exit hook stops the server (unless kept)."""
    server = RUNTIME.server
    if server is not None and not _KEEP_AT_EXIT[0]:
        server.stop(timeout=5.0)


def remember_keep_running(prefs: Any) -> None:
    """The exit hook cannot read preferences safely at exit; it reads this copy."""
    _KEEP_AT_EXIT[0] = bool(prefs.backend_keep_running)


atexit.register(_at_exit)


# -- operators ----------------------------------------------------------------------------------
class BUMP_STUDIO_OT_backend_start(bpy.types.Operator):
    """Start the bump backend on this machine (python -m bump_backend serve, 127.0.0.1, a new token)"""

    bl_idname = "bump_studio.backend_start"
    bl_label = "Start Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        prefs = get_prefs(context)
        try:
            state = start_server(prefs)
        except ls.ServerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        remember_keep_running(prefs)
        self.report({"INFO"}, f"backend starting at {state.url} (pid {state.pid}); log: {state.log}")
        return {"FINISHED"}


class BUMP_STUDIO_OT_backend_stop(bpy.types.Operator):
    """Stop the backend this add-on started"""

    bl_idname = "bump_studio.backend_stop"
    bl_label = "Stop Backend"

    def execute(self, context: bpy.types.Context) -> set[str]:
        if RUNTIME.server is None:
            self.report({"WARNING"}, "no backend started from Blender is running (one started elsewhere is "
                                     "stopped where it runs)")
            return {"CANCELLED"}
        code = stop_server()
        self.report({"INFO"}, f"backend stopped (exit code {code})" if code is not None else "backend stopped")
        return {"FINISHED"}


class BUMP_STUDIO_OT_backend_log(bpy.types.Operator):
    """Open the backend's log (in Blender's text editor)"""

    bl_idname = "bump_studio.backend_log"
    bl_label = "Open Log"

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = server_folder(get_prefs(context)) / ls.LOG_FILE
        if not path.is_file():
            self.report({"WARNING"}, f"no backend log yet ({path}): Start the backend first")
            return {"CANCELLED"}
        text = next((t for t in bpy.data.texts if bpy.path.abspath(t.filepath) == str(path)), None)
        if text is None:
            text = bpy.data.texts.load(str(path))
        else:
            text.clear()
            text.write(path.read_text(encoding="utf-8", errors="replace"))
        if not bpy.app.background and context.window_manager.windows:
            with context.temp_override(window=context.window_manager.windows[0]):
                bpy.ops.wm.window_new()
            area = context.window_manager.windows[-1].screen.areas[0]
            area.type = "TEXT_EDITOR"
            area.spaces.active.text = text
        self.report({"INFO"}, f"backend log: {path}")
        return {"FINISHED"}


def draw_status(layout: bpy.types.UILayout, prefs: Any, full: bool = False) -> None:
    """The light, one line of status, and the buttons (the preferences and the Render & Bump panel)."""
    current = RUNTIME.status
    row = layout.row(align=True)
    row.alert = current.level in (ls.FAILED,)
    row.label(text=f"Backend: {current.text}", icon=ICONS.get(current.level, "QUESTION"))
    buttons = layout.row(align=True)
    if ours_running():
        buttons.operator("bump_studio.backend_stop", icon="PAUSE")
    else:
        buttons.operator("bump_studio.backend_start", icon="PLAY")
    buttons.operator("bump_studio.backend_log", icon="TEXT")
    if full and current.health is not None:
        layout.label(text=identity_line(capabilities()))


preferences.BACKEND_DRAW.append(draw_status)  # the preferences draw the light without importing this module

classes = (BUMP_STUDIO_OT_backend_start, BUMP_STUDIO_OT_backend_stop, BUMP_STUDIO_OT_backend_log)
