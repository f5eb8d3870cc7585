"""A backend on this machine that the add-on starts and stops itself: process, log, state file, health poller.

Pure Python (no bpy): Blender's side calls it from operators and a ``bpy.app.timers`` timer; the
tests start and stop real processes with it. The server runs as
``<python> -m bump_backend serve --host 127.0.0.1 --port N --token T``, in its own process group
(so Ctrl+C in Blender's console does not reach it), its output appended to a log file. A small
state file next to the log (pid, port, token) lets a server the user kept running be found and
stopped again after Blender restarts.

Health is read by :class:`HealthPoller` in a worker thread; the main thread only ever reads its
last result (:meth:`HealthPoller.latest`), so a slow or hung backend never stalls the UI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_contracts.atomic_io import write_bytes_atomic
from bump_contracts.bump_job import DEFAULT_PORT
from bump_contracts.errors import ContractError

from .client import AuthError, BackendError, BumpClient

LOCAL_HOST = "127.0.0.1"
STATE_FILE = "backend.json"
LOG_FILE = "backend.log"


class ServerError(RuntimeError):
    """The server cannot be started or stopped; the message says what to change."""


def new_token() -> str:
    """A fresh bearer token for one server run (never stored in the .blend)."""
    return secrets.token_urlsafe(24)


def default_python(blender_binary: str = "") -> str:
    """The backend's Python when the user has not chosen one.

    In the ``bpy`` module (tests, scripts) ``sys.executable`` is a Python that has the backend; in
    a real Blender binary it is Blender's bundled Python, which has no torch: the user must point
    at a venv's Python, so the answer is empty.
    """
    return "" if blender_binary else sys.executable


def resolve_python(path: str) -> Path:
    """The executable for ``path``: a Python executable, or a venv folder (its bin/python or Scripts/python.exe)."""
    if not path.strip():
        raise ServerError("no Python for the backend: set 'Backend Python' in the add-on's preferences to a venv "
                          "with Bump Studio's backend installed (pip install 'bump-studio[backend]')")
    candidate = Path(os.path.expanduser(path.strip()))
    if candidate.is_dir():
        for inner in ("bin/python3", "bin/python", "Scripts/python.exe"):
            if (candidate / inner).is_file():
                return candidate / inner
        raise ServerError(f"{candidate} is a folder with no bin/python or Scripts/python.exe: pick the venv's "
                          "Python executable")
    if not candidate.is_file():
        raise ServerError(f"Backend Python {candidate} does not exist")
    if not os.access(candidate, os.X_OK):
        raise ServerError(f"Backend Python {candidate} is not executable")
    return candidate


@dataclass(frozen=True)
class ServerCommand:
    """What to run: ``<python> -m bump_backend serve`` on this machine, plus the user's extra arguments."""

    python: str
    port: int = DEFAULT_PORT
    token: str = ""
    extra_args: tuple[str, ...] = ()
    module: tuple[str, ...] = ("-m", "bump_backend", "serve")  # tests may serve a script instead

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    def argv(self) -> list[str]:
        args = [str(resolve_python(self.python)), *self.module, "--host", LOCAL_HOST, "--port", str(self.port)]
        if self.token:  # one "--token=..." word: a url-safe token may begin with "-", which argparse takes for a flag
            args.append(f"--token={self.token}")
        return [*args, *self.extra_args]


@dataclass
class ServerState:
    """The state file: enough to talk to (and stop) a server another Blender session started."""

    pid: int
    port: int
    token: str
    python: str
    log: str
    started: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}"

    def write(self, path: Path) -> None:
        write_bytes_atomic(path, json.dumps(self.__dict__, indent=1).encode("utf-8"))
        if os.name == "posix":
            path.chmod(0o600)  # it holds the token

    @classmethod
    def read(cls, path: Path) -> ServerState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(pid=int(data["pid"]), port=int(data["port"]), token=str(data["token"]),
                       python=str(data["python"]), log=str(data["log"]), started=float(data.get("started", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalServer:
    """One backend process this program started (or adopted from the state file).

    ``start`` returns at once: the server imports torch and loads its model in the background;
    :class:`HealthPoller` tells when it is ready. ``stop`` ends it (terminate, then kill).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.proc: subprocess.Popen | None = None
        self.state: ServerState | None = None
        self._log_handle: Any = None

    @property
    def log_path(self) -> Path:
        return self.folder / LOG_FILE

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return self.state is not None and pid_alive(self.state.pid)

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def start(self, command: ServerCommand, env: dict[str, str] | None = None) -> ServerState:
        if self.running():
            raise ServerError(f"the backend is already running (pid {self.state.pid if self.state else '?'})")
        argv = command.argv()  # checks the Python first: nothing is started with a bad path
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop / when it ends)
            self._log_handle.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(_redacted(argv))}\n"
                                   .encode())
            self._log_handle.flush()
        except OSError as exc:
            raise ServerError(f"cannot write the backend's log in {self.folder}: {exc.strerror or exc}; set another "
                              "work folder in the add-on's preferences") from None
        options: dict[str, Any] = {}
        if os.name == "posix":
            options["start_new_session"] = True
        else:
            options["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log_handle,
                                         stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, **options)
        except OSError as exc:
            self._close_log()
            raise ServerError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        self.state = ServerState(self.proc.pid, command.port, command.token, argv[0], str(self.log_path))
        self.state.write(self.state_path)
        return self.state

    def adopt(self) -> ServerState | None:
        """A server a previous session left running (the state file and a live pid), else None."""
        state = ServerState.read(self.state_path)
        if state is None or not pid_alive(state.pid):
            return None
        self.state = state
        return state

    def stop(self, timeout: float = 10.0) -> int | None:
        """End the server (SIGTERM, then SIGKILL after ``timeout``); returns its exit code when known."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout)
            code = self.proc.returncode
        elif self.state is not None and pid_alive(self.state.pid):
            _signal_and_wait(self.state.pid, timeout)
        self._close_log()
        self.proc = None
        if self.state is not None:
            self.state = None
            with contextlib.suppress(FileNotFoundError):
                self.state_path.unlink()
        return code

    def log_tail(self, chars: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, self.log_path.stat().st_size - chars))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


def _redacted(argv: Sequence[str]) -> list[str]:
    """The command line as the log shows it: the token hidden."""
    out = list(argv)
    for index, arg in enumerate(out):
        if arg.startswith("--token="):
            out[index] = "--token=***"
        elif arg == "--token" and index + 1 < len(out):
            out[index + 1] = "***"
    return out


def _signal_and_wait(pid: int, timeout: float) -> None:
    """Stop a process we did not start in this session (no Popen): SIGTERM, wait, SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    if hasattr(signal, "SIGKILL"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return


# -- status --------------------------------------------------------------------------------------
OFF, STARTING, READY, LOADING, FAILED, UNREACHABLE = "off", "starting", "ready", "loading", "failed", "unreachable"


@dataclass(frozen=True)
class Status:
    """What the status light shows: a level (one of the names above), one line of text, the health if any."""

    level: str
    text: str
    health: Any = None  # bump_contracts.health.Health
    checked: float = 0.0  # time.monotonic() of the check


def describe_health(health: Any) -> Status:
    """The light for a backend that answered ``/v1/health``."""
    state = getattr(health, "model_state", None)
    caps = getattr(health, "capabilities", None)
    model = getattr(health, "model", None)
    parts = [getattr(model, "name", None) or ""]
    device = getattr(caps, "device", "") if caps is not None else health.extra.get("device", "")
    if device:
        parts.append(str(device))
    free = getattr(caps, "free_vram_mb", None) if caps is not None else None
    if free is not None:
        parts.append(f"{free / 1024:.1f} GB free")
    if health.queue_length is not None:
        parts.append(f"{health.queue_length} queued")
    detail = ", ".join(p for p in parts if p)
    if state == "ready":
        return Status(READY, f"ready: {detail}" if detail else "ready", health)
    if state == "failed":
        return Status(FAILED, f"model failed to load: {health.model_error or 'see the log'}", health)
    if state == "loading":
        return Status(LOADING, "loading the model" + (f" ({detail})" if detail else ""), health)
    return Status(READY, f"up (version {health.version}; the token is needed for details)", health)


def check(url: str, token: str | None, timeout: float = 2.0) -> Status:
    """One health check (worker thread only: it waits on the network)."""
    client = BumpClient(url, token=token, timeout=timeout, connect_timeout=min(timeout, 1.0), retries=0)
    try:
        return describe_health(client.health())
    except AuthError:
        return Status(FAILED, "the backend wants another token: set it in the preferences (or Stop and Start)")
    except BackendError as exc:
        return Status(UNREACHABLE, str(exc).splitlines()[0])
    except ContractError as exc:
        return Status(FAILED, f"the backend's health document is not understood ({exc}): update the add-on or "
                              "the backend")


class HealthPoller:
    """Checks health every ``interval`` seconds in a daemon thread; ``latest()`` is safe from any thread."""

    def __init__(self, url: str, token: str | None, interval: float = 2.0,
                 checker: Callable[[str, str | None], Status] = check) -> None:
        self.url, self.token, self.interval = url, token, interval
        self._checker = checker
        self._latest: Status | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checks = 0

    def start(self) -> HealthPoller:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bump-studio-health", daemon=True)
            self._thread.start()
        return self

    def poll_now(self) -> None:
        """Check again without waiting for the interval (after Start, or a click)."""
        self._wake.set()

    def latest(self) -> Status | None:
        with self._lock:
            return self._latest

    def stop(self, join_s: float = 3.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(join_s)
        self._thread = None

    def _run(self) -> None:  # worker thread: network only
        while not self._stop.is_set():
            status = self._checker(self.url, self.token)
            status = Status(status.level, status.text, status.health, time.monotonic())
            with self._lock:
                self._latest = status
                self.checks += 1
            self._wake.wait(self.interval)
            self._wake.clear()
