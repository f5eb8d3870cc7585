"""The real server (uvicorn on a free loopback port) with the generator's tiny model, driven by the real client.

Thread servers share the test process (fast); subprocess servers (``python -m bump_backend
serve``) are for ``kill -9``. Every server loads the tiny diffusers model through the real
loaders from a ModelSpec JSON written next to it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

from server_helpers import FAST, REPO, ProcessServer, ThreadServer, free_port, slow, wait_for  # noqa: E402, F401


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    """Tiny SD 1.5 + plus-face IP-Adapter in the real layouts, a package, and a ModelSpec JSON."""
    from bump_backend.testing import tiny_models as tiny

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
    from bump_client.client import BumpClient

    return BumpClient(server.url, timeout=30)


