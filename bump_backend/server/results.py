"""Result files: written into ``results.partial/``, hashed, listed in ``result.json``, then renamed.

A client either sees every file of a finished job or none; ``result.json`` (the contract's
result document) names each file with its kind, size and SHA-256 so a download can be checked.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bump_backend.server.jobs import Job
from bump_backend.server.store import JobStore, write_bytes_durable
from bump_contracts.bump_job import CONTRACT_VERSION, RESULT_SCHEMA
from bump_contracts.package_manifest import file_sha256
from bump_contracts.sequence_job import SEQUENCE_FILES

STEM = "bump"


def file_kind(name: str) -> str:
    if name == f"{STEM}.png":
        return "image"
    if name == f"{STEM}_mask.png":
        return "mask"
    if name == f"{STEM}.json":
        return "record"
    if re.fullmatch(rf"{STEM}_face\d+_input\.png", name):
        return "face_input"
    if re.fullmatch(rf"{STEM}_face\d+\.png", name):
        return "face"
    if name == "result.json":
        return "result"
    return "other"


def write_results(store: JobStore, job: Job, result: Any) -> list[dict[str, Any]]:
    """Save the engine's result (its own ``save``) atomically; return the file list for the status."""
    tmp = store.partial_results(job)
    result.save(tmp, STEM)
    return _commit(store, job, tmp, file_kind)


def write_sequence_results(store: JobStore, job: Job, sequence: Any) -> list[dict[str, Any]]:
    """A finished sequence's files (``SEQUENCE_FILES``), hashed and committed like a bump's.

    The PNG frames go into ``frames.zip`` one file at a time (stored: PNGs are already compressed),
    so memory stays flat whatever the clip's length.
    """
    tmp = store.partial_results(job)
    sources = {"sequence.mp4": sequence.video_path, "sequence.json": sequence.out / "sequence.json",
               "before_after.png": sequence.out / "before_after.png"}
    for name, path in sources.items():
        if path.is_file():
            shutil.copyfile(path, tmp / name)
    if sequence.frames_dir.is_dir():
        with zipfile.ZipFile(tmp / "frames.zip", "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(sequence.frames_dir.glob("*.png")):
                archive.write(path, f"frames/{path.name}")
    return _commit(store, job, tmp, lambda name: SEQUENCE_FILES.get(name, "other"))


def _commit(store: JobStore, job: Job, tmp: Path, kind_of: Callable[[str], str]) -> list[dict[str, Any]]:
    """Hash every file of a finished job, write ``result.json`` last, then make them visible at once."""
    files = [{"name": path.name, "kind": kind_of(path.name), "bytes": path.stat().st_size, "sha256": file_sha256(path)}
             for path in sorted(tmp.iterdir())]
    document = {"schema": RESULT_SCHEMA, "schema_version": CONTRACT_VERSION, "job_id": job.id,
                "label": job.label, "files": files, "timings": job.timings}
    data = (json.dumps(document, indent=1) + "\n").encode("utf-8")
    write_bytes_durable(tmp / "result.json", data)
    files.append({"name": "result.json", "kind": "result", "bytes": len(data),
                  "sha256": hashlib.sha256(data).hexdigest()})
    store.commit_results(job, tmp)
    return files
