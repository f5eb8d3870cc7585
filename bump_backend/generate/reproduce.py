"""Regenerate a bump from its record (the PNG's ``bump_record`` chunk or the JSON sidecar).

Bit-identical on the same device, thread count and library versions; the record holds the
resolved seed, every setting, the model, the package hash and the input image's pixel hash, and
the check says which of those differ when the output does not match.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bump_backend.generate import infotext
from bump_backend.generate.bump import BumpEngine, BumpResult, Progress, image_sha256, load_rgb
from bump_backend.generate.models import ModelSpec
from bump_backend.generate.settings import BumpSettings
from bump_contracts.render_sidecar import from_dict


class ReproduceError(RuntimeError):
    """The record cannot be replayed (input or package missing or changed)."""


@dataclass
class Reproduction:
    result: BumpResult
    identical: bool
    differences: list[str]


def load_record(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    record = source if isinstance(source, dict) else infotext.read_record(source)
    if record.get("schema") != "bump-record":
        raise ReproduceError("not a bump record (schema must be 'bump-record')")
    return record


def environment_differences(record: dict[str, Any], engine: BumpEngine) -> list[str]:
    """Why bits may legitimately differ: device, dtype, thread count or versions changed."""
    from bump_backend.generate.bump import runtime_info

    now, then = runtime_info(engine.loaded), record.get("runtime", {})
    diffs = [f"{key}: {then.get(key)} -> {now[key]}" for key in ("device", "dtype", "torch_threads")
             if then.get(key) != now[key]]
    for name, version in now["versions"].items():
        if then.get("versions", {}).get(name) != version:
            diffs.append(f"{name}: {then.get('versions', {}).get(name)} -> {version}")
    return diffs


def reproduce(source: str | Path | dict[str, Any], *, engine: BumpEngine | None = None,
              image: str | Path | None = None, package: str | Path | None = None,
              progress: Progress | None = None, cancel: threading.Event | None = None) -> Reproduction:
    """Replay a record; ``image``/``package`` override the paths it remembers."""
    record = load_record(source)
    image_path = image or (record.get("input") or {}).get("path")
    if not image_path or not Path(image_path).is_file():
        raise ReproduceError(f"input image not found ({image_path}); pass image=PATH")
    pixels = load_rgb(image_path)
    if image_sha256(pixels) != record["input"]["sha256"]:
        raise ReproduceError(f"{image_path} is not the image this record was made from (pixel hash differs)")
    package_path = package or ((record.get("package") or {}).get("path"))
    if package_path is not None and not Path(package_path).is_dir():
        raise ReproduceError(f"package folder not found ({package_path}); pass package=DIR")
    packages = {cid: (entry or {}).get("path") for cid, entry in (record.get("packages") or {}).items()}
    for cid, folder in packages.items():
        if not folder or not Path(folder).is_dir():
            raise ReproduceError(f"package folder for character {cid!r} not found ({folder})")
    sidecar = None
    if record.get("sidecar"):
        sidecar = from_dict(record["sidecar"])
    model = record["model"]
    spec = ModelSpec.from_dict({k: v for k, v in model.items() if k not in ("hash", "name", "family",
                                                                              "ip_adapter_kind")})
    if engine is None:
        engine = BumpEngine(spec)
    elif engine.spec.key() != spec.key():
        engine.switch(spec)
    threads = (record.get("runtime") or {}).get("torch_threads")
    previous = torch.get_num_threads()
    if threads and threads != previous:
        torch.set_num_threads(int(threads))
    try:
        settings = BumpSettings.from_dict(record["settings"])
        finder = None
        if record.get("face_finder"):
            from bump_backend.faces import FaceFinderSettings

            data = dict(record["face_finder"])
            data["rotations"] = tuple(data.get("rotations", (0, 90, 180, 270)))
            finder = FaceFinderSettings(**data)
        result = engine.run(pixels, package_path, sidecar=sidecar, settings=settings, progress=progress,
                            cancel=cancel, face_settings=finder, input_path=str(image_path), packages=packages,
                            character_prompts=record.get("character_prompts") or {})
    finally:
        torch.set_num_threads(previous)
    differences = []
    if engine.loaded.model_hash != model.get("hash"):
        differences.append(f"model hash {model.get('hash')} -> {engine.loaded.model_hash}")
    if (record.get("package") or {}).get("hash") != (result.record.get("package") or {}).get("hash"):
        differences.append("package contents changed")
    for cid, entry in (record.get("packages") or {}).items():
        now = (result.record.get("packages") or {}).get(cid) or {}
        if (entry or {}).get("hash") != now.get("hash"):
            differences.append(f"package of character {cid!r} changed")
    identical = result.record["output"]["sha256"] == record["output"]["sha256"]
    if not identical:
        differences += environment_differences(record, engine)
    return Reproduction(result=result, identical=identical, differences=differences)
