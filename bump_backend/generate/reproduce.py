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
from bump_backend.generate.engine import BumpEngine, Progress
from bump_backend.generate.images import image_sha256, load_rgb
from bump_backend.generate.models import ModelSpec
from bump_backend.generate.record import BumpResult, runtime_info
from bump_backend.generate.settings import BumpSettings
from bump_contracts.bump_record import BumpRecord
from bump_contracts.errors import ContractError
from bump_contracts.render_sidecar import from_dict as sidecar_from_dict


class ReproduceError(RuntimeError):
    """The record cannot be replayed (input or package missing or changed)."""


@dataclass
class Reproduction:
    result: BumpResult
    identical: bool
    differences: list[str]


def load_record(source: str | Path | dict[str, Any] | BumpRecord) -> BumpRecord:
    """The record of a PNG we wrote (its ``bump_record`` chunk), of its JSON, or of a dict."""
    if isinstance(source, BumpRecord):
        return source
    try:
        return BumpRecord.from_dict(source if isinstance(source, dict) else infotext.read_record(source))
    except ContractError as exc:
        raise ReproduceError(f"{source if not isinstance(source, dict) else 'record'}: {exc}") from None


def environment_differences(record: BumpRecord, engine: BumpEngine) -> list[str]:
    """Why bits may legitimately differ: device, dtype, thread count or versions changed."""
    now, then = runtime_info(engine.loaded), record.runtime
    diffs = [f"{key}: {then.get(key)} -> {now[key]}" for key in ("device", "dtype", "torch_threads")
             if then.get(key) != now[key]]
    for name, version in now["versions"].items():
        if then.get("versions", {}).get(name) != version:
            diffs.append(f"{name}: {then.get('versions', {}).get(name)} -> {version}")
    return diffs


def model_differences(then: BumpRecord, now: BumpRecord) -> list[str]:
    """Which part of the model differs: per part where both records hash them, else the model hash."""
    diffs = [f"model part {part!r} changed ({old} -> {now.model.components.get(part)})"
             for part, old in sorted(then.model.components.items()) if now.model.components.get(part) != old]
    diffs += [f"model part {part!r} is new" for part in sorted(set(now.model.components) - set(then.model.components))
              if then.model.components]
    if then.model.hash != now.model.hash and not diffs:
        diffs.append(f"model hash {then.model.hash} -> {now.model.hash}")
    return diffs


def reproduce(source: str | Path | dict[str, Any] | BumpRecord, *, engine: BumpEngine | None = None,
              image: str | Path | None = None, package: str | Path | None = None,
              progress: Progress | None = None, cancel: threading.Event | None = None) -> Reproduction:
    """Replay a record; ``image``/``package`` override the paths it remembers."""
    record = load_record(source)
    image_path = image or record.input.path
    if not image_path or not Path(image_path).is_file():
        raise ReproduceError(f"input image not found ({image_path}); pass image=PATH")
    pixels = load_rgb(image_path)
    if image_sha256(pixels) != record.input.sha256:
        raise ReproduceError(f"{image_path} is not the image this record was made from (pixel hash differs)")
    package_path = package or (record.package.path if record.package is not None else None)
    if package_path is not None and not Path(package_path).is_dir():
        raise ReproduceError(f"package folder not found ({package_path}); pass package=DIR")
    packages = {cid: entry.path if entry is not None else None for cid, entry in record.packages.items()}
    for cid, folder in packages.items():
        if not folder or not Path(folder).is_dir():
            raise ReproduceError(f"package folder for character {cid!r} not found ({folder})")
    sidecar = sidecar_from_dict(record.sidecar) if record.sidecar else None
    spec = ModelSpec.from_dict(record.model.spec)
    if engine is None:
        engine = BumpEngine(spec)
    elif engine.spec.key() != spec.key():
        engine.switch(spec)
    threads = record.runtime.get("torch_threads")
    previous = torch.get_num_threads()
    if threads and threads != previous:
        torch.set_num_threads(int(threads))
    try:
        settings = BumpSettings.from_dict(record.settings)
        finder = None
        if record.face_finder:
            from bump_backend.faces import FaceFinderSettings  # cv2 and mediapipe: only when the record used them

            data = dict(record.face_finder)
            data["rotations"] = tuple(data.get("rotations", (0, 90, 180, 270)))
            for name in ("coarse_rotations", "middle_rotations"):
                if name in data:
                    data[name] = tuple(data[name])
            finder = FaceFinderSettings(**data)
        result = engine.run(pixels, package_path, sidecar=sidecar, settings=settings, progress=progress,
                            cancel=cancel, face_settings=finder, input_path=str(image_path), packages=packages,
                            character_prompts=record.character_prompts)
    finally:
        torch.set_num_threads(previous)
    now = result.record
    differences = model_differences(record, now)
    if (record.package.hash if record.package else None) != (now.package.hash if now.package else None):
        differences.append("package contents changed")
    for cid, entry in record.packages.items():
        current = now.packages.get(cid)
        if (entry.hash if entry else None) != (current.hash if current else None):
            differences.append(f"package of character {cid!r} changed")
    identical = now.output.sha256 == record.output.sha256
    if not identical:
        differences += environment_differences(record, engine)
    return Reproduction(result=result, identical=identical, differences=differences)
