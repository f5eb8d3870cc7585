"""The real server (uvicorn on a free loopback port) with the generator's tiny model, driven by the real client.

Thread servers share the test process (fast); subprocess servers (``python -m bump_backend
serve``) are for ``kill -9``. Every server loads the tiny diffusers model through the real
loaders from a ModelSpec JSON written next to it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """Tiny SD 1.5 + plus-face IP-Adapter in the real layouts, a package, and a ModelSpec JSON."""
    from bump_backend.generate import tiny

    root = tmp_path_factory.mktemp("server_models")
    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    package = tiny.build_tiny_package(root / "package")
    spec = {"base": str(sd15), "ip_adapter": str(ip_dir), "ip_adapter_weight": weight, "device": "cpu"}
    spec_path = root / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    return {"root": root, "spec": spec_path, "package": package}


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("server_images")
    rng = np.random.default_rng(3)
    out = {}
    small = rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)
    out["png"] = root / "shot.png"
    Image.fromarray(small).save(out["png"])
    out["jpeg"] = root / "shot.jpg"
    Image.fromarray(small).save(out["jpeg"], quality=90)
    out["webp"] = root / "shot.webp"
    Image.fromarray(small).save(out["webp"])
    face = rng.integers(0, 255, size=(128, 128, 3), dtype=np.uint8)
    out["face"] = root / "face.png"
    Image.fromarray(face).save(out["face"])
    return out


class ThreadServer:
    """uvicorn in a thread of this process, on a free loopback port."""

    def __init__(self, config, make_generator=None) -> None:
        import uvicorn

        from bump_backend.server import create_app

        self.config = config
        self.app = create_app(config, make_generator)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=config.host, port=config.port, log_level="warning",
                                                    access_log=False))
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


@pytest.fixture(scope="session")
def make_server(tiny_models, tmp_path_factory) -> Iterator[Callable[..., ThreadServer]]:
    """Start a thread server: ``make_server(token=..., limits=..., make_generator=...)``."""
    from bump_backend.server import ServerConfig

    started: list[ThreadServer] = []

    def make(make_generator=None, **overrides) -> ThreadServer:
        overrides.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        config = ServerConfig(host="127.0.0.1", port=free_port(), model=str(tiny_models["spec"]), **overrides)
        server = ThreadServer(config, make_generator).start()
        started.append(server)
        server.wait_model()
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def server(make_server) -> ThreadServer:
    """One shared server for the tests that do not need a special configuration."""
    return make_server()


@pytest.fixture()
def client(server):
    from bump_backend.client import BumpClient

    return BumpClient(server.url, timeout=30)


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
        from bump_backend.client import BackendError, BumpClient

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
