"""Helpers for the server tests: the real server (uvicorn on a free loopback port) with the generator's tiny model, driven by the real client.

Thread servers share the test process (fast); subprocess servers (``python -m bump_backend
serve``) are for ``kill -9``. Every server loads the tiny diffusers model through the real
loaders from a ModelSpec JSON written next to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]

# Few steps keep a tiny job near 0.3 s; slow jobs use more steps of the same real engine.
FAST = {"steps": 4, "denoise": 1.0, "sampler": "Euler", "seed": 7, "face_pass": False, "prompt": "photo of a man"}


def slow(steps: int = 60) -> dict:
    return {**FAST, "steps": steps}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn in a thread of this process, on a free loopback port."""

    def __init__(self, config, make_generator=None) -> None:
        import uvicorn

        from bump_backend.server import create_app
        from bump_backend.server.serving import uvicorn_config

        self.config = config
        self.app = create_app(config, make_generator)
        self.server = uvicorn.Server(uvicorn_config(self.app, config, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://{config.host}:{config.port}"

    @property
    def scheduler(self):
        return self.app.state.scheduler

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server thread did not start")
            time.sleep(0.02)
        return self

    def wait_model(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.scheduler.model_state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)


class ProcessServer:
    """``python -m bump_backend serve`` in a subprocess (for kill -9)."""

    def __init__(self, data_dir: Path, spec: Path, port: int | None = None, extra: list[str] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"server-{self.port}-{time.monotonic_ns()}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "bump_backend", "serve", "--port", str(self.port), "--data-dir", str(data_dir),
               "--model", str(spec), "--threads", "1", "--log-level", "info", *(extra or [])]
        self.handle = open(self.log, "wb")  # noqa: SIM115 (closed in kill/stop)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 90) -> None:
        from bump_client.client import BackendError, BumpClient

        client = BumpClient(self.url, retries=0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if client.health().model_state != "loading":
                    return
            except BackendError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready:\n{self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.handle.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.handle.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)
