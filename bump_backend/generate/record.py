"""The bump's record and result files: built once from what the job did, then only read.

The record type is the contract :class:`bump_contracts.bump_record.BumpRecord` (the add-on, batch
runs, the library and ``reproduce`` read that same type); this module fills it from the engine's
state and writes the result's files.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bump_backend.generate import infotext
from bump_backend.generate.images import image_sha256
from bump_backend.generate.models import LoadedModels
from bump_backend.generate.prompts import CharacterPrompt
from bump_backend.generate.settings import BumpSettings
from bump_contracts.bump_record import BumpRecord, FaceRecord, ImageRecord, ModelRecord, PackageRecord


@dataclass
class BumpResult:
    """The bumped image and everything that explains it."""

    image: np.ndarray  # HxWx3 uint8, the input's size
    face_crops: list[np.ndarray]  # the chosen processed crop per face (upright, face_size)
    face_inputs: list[np.ndarray]  # the aligned crop each face pass started from
    mask: np.ndarray  # float32 HxW, the combined face mask (zeros without a face pass)
    record: BumpRecord
    infotext: str
    candidates: list[list[np.ndarray]] = field(default_factory=list)

    def save(self, out_dir: str | Path, stem: str = "bump") -> dict[str, Path]:
        """Write the result PNG (with infotext + record), face crops, the mask and the JSON record."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        record = self.record.to_dict()
        paths = {"image": infotext.save_png(out / f"{stem}.png", self.image, self.infotext, record)}
        paths["mask"] = infotext.save_png(out / f"{stem}_mask.png",
                                          np.clip(self.mask * 255.0 + 0.5, 0, 255).astype(np.uint8))
        for i, (before, after) in enumerate(zip(self.face_inputs, self.face_crops, strict=True)):
            paths[f"face{i}"] = infotext.save_png(out / f"{stem}_face{i}.png", after)
            paths[f"face{i}_input"] = infotext.save_png(out / f"{stem}_face{i}_input.png", before)
        paths["record"] = infotext.write_record(out / f"{stem}.json", record)
        return paths


def runtime_info(loaded: LoadedModels) -> dict[str, Any]:
    """What bits depend on besides the inputs: device, dtype, thread count, library versions."""
    import diffusers  # only for its version (loaded already with the model)
    import transformers  # the same

    return {
        "device": str(loaded.device),
        "device_name": torch.cuda.get_device_name(loaded.device) if loaded.device.type == "cuda" else platform.processor(),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }


def package_record(package: Path | None, refs) -> PackageRecord | None:
    """A package as the record names it: its folder, and its id, hash and views once encoded."""
    if package is None:
        return None
    path = str(package.resolve())
    if refs is None:
        return PackageRecord(path=path)
    data = refs.record()
    return PackageRecord(path=path, id=data["id"], hash=data["hash"], views=tuple(data["views"]),
                         skipped_views=data.get("skipped_views"))


def model_record(loaded: LoadedModels) -> ModelRecord:
    return ModelRecord(spec=loaded.spec.to_dict(), hash=loaded.model_hash, name=loaded.model_name,
                       family=loaded.family, ip_adapter_kind=loaded.ip_adapter_kind,
                       components=dict(loaded.component_hashes))


def build_record(*, loaded: LoadedModels, settings: BumpSettings, source: np.ndarray, input_path: str | None,
                 work_size: tuple[int, int], output: np.ndarray, package: Path | None, refs, sidecar,
                 faces: list[FaceRecord], skipped: list[Any], whole_refs: dict[str, Any] | None,
                 timings: Mapping[str, float], packages: Mapping[str, Path], ref_cache: Mapping[Path, Any],
                 character_prompts: Mapping[str, CharacterPrompt], whole_package: Path | None,
                 face_search: dict[str, Any] | None, face_settings) -> BumpRecord:
    """The record of one finished job (``settings`` with the seed resolved)."""
    return BumpRecord(
        created=datetime.now(UTC).isoformat(timespec="seconds"), settings=settings.to_dict(), seed=settings.seed,
        model=model_record(loaded), package=package_record(package, refs),
        input=ImageRecord(path=input_path, sha256=image_sha256(source), width=int(source.shape[1]),
                          height=int(source.shape[0])),
        working_size=(int(work_size[0]), int(work_size[1])),
        sidecar=sidecar.to_dict() if sidecar is not None else None, faces=tuple(faces), skipped_faces=tuple(skipped),
        whole_pass_references=whole_refs,
        output=ImageRecord(sha256=image_sha256(output), width=int(output.shape[1]), height=int(output.shape[0])),
        runtime=runtime_info(loaded), timings={k: round(v, 4) for k, v in timings.items()},
        packages={cid: package_record(path, ref_cache.get(path)) for cid, path in packages.items()},
        character_prompts={cid: p.to_dict() for cid, p in character_prompts.items()},  # replayed by reproduce
        whole_pass_package=None if whole_package is None else str(whole_package.resolve()),
        face_search=face_search, face_finder=None if face_settings is None else asdict(face_settings))
