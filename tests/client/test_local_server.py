"""The add-on's own backend process, without Blender: start, health, stop, adopt, bad paths, the poller.

Real processes: a tiny HTTP server script that answers ``/v1/health`` like the backend
(``health_stub_server.py``); the real ``bump_backend serve`` with the tiny model is started the
same way from Blender in ``tests/addon/test_addon_backend.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from bump_client import local_server as ls
from bump_contracts.health import Capabilities

STUB = (str(Path(__file__).with_name("health_stub_server.py")),)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float = 20.0, interval: float = 0.05, server: ls.LocalServer | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    log = f"; the server's log ends:\n{server.log_tail()}" if server is not None else ""
    raise AssertionError(f"condition not reached in time{log}")


def _start_stub(server: ls.LocalServer, command_on, tries: int = 3) -> ls.ServerState:
    """Start the stub on a free port; start again on another if one was taken between the pick and the bind."""
    for _ in range(tries):
        state = server.start(command_on(_port()))
        _wait(lambda: not server.running() or "stub: serving" in server.log_tail(), server=server)
        if server.running() or "Address already in use" not in server.log_tail():
            return state
        server.stop()
    raise AssertionError(f"no free port in {tries} tries; the server's log ends:\n{server.log_tail()}")


def _closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_start_check_stop_a_real_process(tmp_path):
    token = ls.new_token()
    caps = {"ip_adapter_kinds": ["plus-face"], "faceid": False, "sdxl": False, "samplers": ["Euler"], "device": "cpu"}
    server = ls.LocalServer(tmp_path / "work")
    state = _start_stub(server, lambda port: ls.ServerCommand(
        sys.executable, port, token, ("--loading-s", "0.6", "--capabilities", json.dumps(caps)), module=STUB))
    port = state.port
    try:
        assert server.running() and state.url == f"http://127.0.0.1:{port}" and state.token == token
        assert json.loads(server.state_path.read_text())["pid"] == state.pid
        if os.name == "posix":
            assert server.state_path.stat().st_mode & 0o777 == 0o600  # it holds the token
            assert os.getpgid(state.pid) != os.getpgid(0)  # its own process group: Ctrl+C in Blender skips it
        seen = _wait(lambda: (s := ls.check(state.url, token)).level == ls.READY and s, server=server)
        assert seen.health.capabilities == Capabilities.from_dict(caps) and "tiny" in seen.text
        assert ls.check(state.url, None).level == ls.READY  # no token: alive, but no details
        assert ls.check(state.url, None).health.model_state is None
    finally:
        code = server.stop()
    assert code == 0 and not server.running() and not server.state_path.exists()
    assert _closed(port)
    log = server.log_path.read_text()
    assert "stub: serving" in log and "stub: terminated" in log
    assert token not in log and "--token=***" in log  # the command line is logged without the secret


def test_adopt_a_server_kept_running_by_an_earlier_session(tmp_path):
    first = ls.LocalServer(tmp_path)
    state = _start_stub(first, lambda port: ls.ServerCommand(sys.executable, port, "t", module=STUB))
    port = state.port
    first._close_log()  # the earlier Blender quit with "keep running": only the state file is left
    first.proc = None
    later = ls.LocalServer(tmp_path)
    try:
        adopted = later.adopt()
        assert adopted is not None and adopted.pid == state.pid and adopted.token == "t"
        _wait(lambda: ls.check(adopted.url, "t").level == ls.READY)
    finally:
        later.stop(timeout=5)
    _wait(lambda: not ls.pid_alive(state.pid) or _reap(state.pid))
    assert _closed(port) and ls.LocalServer(tmp_path).adopt() is None


def _reap(pid: int) -> bool:
    """The adopted process is our child here (same test process): collect it so its pid really goes away."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not ls.pid_alive(pid)


def test_a_process_that_exits_at_once_is_seen_with_its_log(tmp_path):
    command = ls.ServerCommand(sys.executable, _port(), "", ("--no-such-option",), module=STUB)
    server = ls.LocalServer(tmp_path)
    server.start(command)
    _wait(lambda: not server.running())
    assert server.exit_code() == 2 and "unrecognized arguments" in server.log_tail()
    server.stop()


def test_bad_python_paths_are_refused_before_anything_starts(tmp_path):
    server = ls.LocalServer(tmp_path / "work")
    with pytest.raises(ls.ServerError, match="no Python for the backend"):
        server.start(ls.ServerCommand("", 7861))
    with pytest.raises(ls.ServerError, match="does not exist"):
        server.start(ls.ServerCommand(str(tmp_path / "nope" / "python"), 7861))
    (tmp_path / "venv").mkdir()
    with pytest.raises(ls.ServerError, match="no bin/python"):
        server.start(ls.ServerCommand(str(tmp_path / "venv"), 7861))
    assert not (tmp_path / "work").exists()  # nothing written either


def test_a_venv_folder_resolves_to_its_python(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert ls.resolve_python(str(tmp_path / "venv")) == python


def test_default_python_is_empty_inside_a_blender_binary():
    assert ls.default_python("") == sys.executable
    assert ls.default_python("/opt/blender/blender") == ""


def test_unreachable_backend():
    port = _port()
    status = ls.check(f"http://127.0.0.1:{port}", None)
    assert status.level == ls.UNREACHABLE and "backend not running" in status.text


def test_poller_checks_in_its_own_thread_and_latest_never_waits(tmp_path):
    calls, release = [], threading.Event()

    def hung(url: str, token: str | None) -> ls.Status:
        calls.append(threading.current_thread().name)
        release.wait(10)  # a backend that does not answer until the test says so
        return ls.Status(ls.READY, "ready")

    poller = ls.HealthPoller("http://x", None, interval=0.05, checker=hung).start()
    try:
        _wait(lambda: calls)
        assert poller.latest() is None  # answered while the check hangs: the caller never waits on it
        release.set()
        status = _wait(poller.latest, timeout=5)
        assert status.level == ls.READY and status.checked > 0
    finally:
        poller.stop()
    assert calls[0] == "bump-studio-health" and poller._thread is None


def test_a_token_that_begins_with_a_dash_reaches_the_server_intact():
    """A url-safe token begins with "-" one time in 64: as a separate word argparse took it for a flag and the server
    exited at start ("--token: expected one argument")."""
    import argparse

    from bump_backend.server import cli as server_cli

    argv = ls.ServerCommand(sys.executable, 8765, "-Ab_cd-42").argv()
    parser = server_cli._options(argparse.ArgumentParser())
    args = parser.parse_args(argv[argv.index("serve") + 1:])
    assert args.token == "-Ab_cd-42" and args.port == 8765
    shown = ls._redacted(argv)
    assert "--token=***" in shown and not any("Ab_cd" in word for word in shown)
    assert ls._redacted(["x", "--token", "secret"]) == ["x", "--token", "***"]  # the older two-word form too
