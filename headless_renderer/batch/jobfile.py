"""The batch job file (TOML): defaults, characters, and entries of characters x tasks.

Everything is checked before anything renders, and every problem is reported at once with its
line and field, so an overnight run does not die at 3 a.m. on a typo in the last entry. Pure
Python (stdlib + the project's stdlib contracts): no bpy, no torch.

    version = 1
    [defaults]
    output = "batch_out"                     # relative to this file
    backends = ["http://127.0.0.1:7861"]
    [defaults.package]                       # package render settings
    views = "minimal"                        # a view set or a list of views
    resolution = 256
    preset = "fast"
    [defaults.bump]                          # bump parameters (the job contract's names)
    steps = 35
    denoise = 0.32
    seed = 1234
    [characters.mateo]
    demo = "demo_man"                        # or blend = "hero.blend" + object = "Hero", or library = "Mateo"
    phenotype = { age = 30 }
    [[entries]]
    characters = ["mateo"]                   # or ["*"]
    tasks = ["package", "bump_package", "shots"]
    [[entries.shots]]
    blend = "scenes/street.blend"
    cameras = ["CamWide", "CamClose"]
    frames = [1, "10-20/5"]
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from headless_renderer.batch.job_checker import Checker
from headless_renderer.batch.job_model import (
    CharacterSpec,
    Job,
    JobFileError,
    PackageSettings,
    Problem,
    ShotSpec,
    Task,
    merge_bump,
    parse_frames,
)
from headless_renderer.batch.job_sections import build_job
from headless_renderer.batch.toml_lines import field_lines

__all__ = ["CharacterSpec", "Job", "JobFileError", "PackageSettings", "Problem", "ShotSpec", "Task", "load_job",
           "merge_bump", "parse_frames"]


def load_job(path: str | os.PathLike, *, only: list[str] | None = None) -> Job:
    """Parse and check the whole job file; raise JobFileError listing every problem."""
    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not TOML
    except OSError as exc:
        raise JobFileError(str(path), [Problem(None, "", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise JobFileError(str(path), [Problem(None, "", f"not UTF-8 text (byte {exc.start}): save it as UTF-8")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise JobFileError(str(path), [Problem(int(match.group(1)) if match else None, "", f"not valid TOML: {exc}")]) from None
    check = Checker(field_lines(text))
    job = build_job(data, path, check)
    if only:
        missing = [n for n in only if job is not None and n not in job.characters]
        for name in missing:
            check.add("", f"--only {name}: no character of that name in the job")
    if check.problems or job is None:
        raise JobFileError(str(path), check.problems)
    if only:
        job.tasks = [t for t in job.tasks if t.character in only]
    return job

