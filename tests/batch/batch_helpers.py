"""Helpers shared by the batch tests: the test job file, running the CLI, reading its records."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "BLENDER_USER_RESOURCES": os.environ.get("BLENDER_USER_RESOURCES") or tempfile.mkdtemp()}



def job_text(url: str, blend: Path | None, output: str = "out", *, aiko_denoise: float = 0.5,
             mateo_samples: int = 1, shots: bool = True) -> str:
    """The test job: two demo phenotypes, 2-view 96 px packages, bumps, and one shot of Mateo."""
    text = f'''
        version = 1

        [defaults]
        output = "{output}"
        backends = ["{url}"]

        [defaults.package]
        views = ["front", "three_quarter_left"]
        resolution = 96
        preset = "preview"
        samples = 1

        [defaults.bump]
        steps = 2
        denoise = 0.5
        sampler = "Euler"
        seed = 7
        face_size = 64
        max_side = 256

        [characters.mateo]
        demo = "demo_man"
        package = {{ samples = {mateo_samples} }}

        [characters.aiko]
        demo = "demo_woman"
        phenotype = {{ age = 35 }}
        bump = {{ denoise = {aiko_denoise} }}

        [[entries]]
        characters = ["*"]
        tasks = ["package", "bump_package"]
    '''
    if shots:
        text += f'''
        [[entries]]
        characters = ["mateo"]
        tasks = ["shots"]

        [[entries.shots]]
        name = "street"
        blend = "{blend}"
        cameras = ["CamA"]
        frames = [1]
        object = "Mateo"
        preset = "preview"
        samples = 1
    '''
    return textwrap.dedent(text)


def run_batch(job: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "headless_renderer.batch", str(job), "--quiet", *args], cwd=REPO,
                          env=env(), capture_output=True, text=True, timeout=timeout)


def done_records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / ".batch" / "done").glob("*.json"))}


def report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
