"""What the GPU worker drives: the generator protocol and its real implementation (BumpEngine).

The server only needs ``load``, ``describe``, ``settings``, ``run`` and ``save``; keeping that
surface small lets tests run the queue with a second, clearly separate implementation when they
need a behaviour the tiny model cannot show (an out-of-memory error), while every other test
drives the real engine.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bump_backend.generate.model_args import model_name
from bump_backend.sequence.job import SequenceCancelled
from bump_backend.server.config import Limits
from bump_contracts.bump_job import FACE_FIELDS, PARAM_FIELDS, ContractError

log = logging.getLogger("bump_backend.server.generator")
Progress = Callable[[str, int, int], None]


@dataclass
class PreparedJob:
    """A job's inputs decoded and checked, and its faces found, on a CPU thread, ready for the GPU worker."""

    image: np.ndarray
    image_path: Path
    sidecar: Any  # bump_contracts.render_sidecar.RenderSidecar | None
    package: Path | None
    settings: Any  # BumpSettings
    packages: dict[str, Path] = field(default_factory=dict)  # character id -> package folder
    character_prompts: dict[str, Any] = field(default_factory=dict)  # character id -> generate.CharacterPrompt
    faces: Any = None  # bump_backend.generate.face_pass.JobFaces (None: the generator finds them itself)


@dataclass
class PreparedSequence:
    """A sequence job checked on a CPU thread: the job over its work folder and the face pass's settings."""

    job: Any  # bump_backend.sequence.job.SequenceJob
    settings: Any  # BumpSettings


FrameProgress = Callable[[str, int, int, float | None], None]


class Cancelled(Exception):
    """Raised by a generator when its cancel event stopped it between two steps."""


class Generator(Protocol):
    def load(self) -> None: ...
    def describe(self) -> dict[str, Any]: ...
    def run(self, job: PreparedJob, progress: Progress, cancel: threading.Event, low_memory: bool) -> Any: ...
    def run_sequence(self, job: PreparedSequence, progress: FrameProgress, cancel: threading.Event,
                     low_memory: bool = False) -> dict[str, Any]: ...


def to_settings(params: dict[str, Any], limits: Limits):
    """Validated ``BumpSettings`` from contract-checked params, within the server's resource limits."""
    from bump_backend.generate.settings import BumpSettings

    for name, limit in (("max_side", limits.max_side_param), ("face_size", limits.max_face_size),
                        ("batch_size", limits.max_batch_size)):
        value = params.get(name)
        if value is not None and value > limit:
            raise ContractError(f"params.{name} must be at most {limit} on this server, got {value}", f"params.{name}")
    try:
        return BumpSettings.from_dict(params)
    except (ValueError, TypeError, KeyError) as exc:
        raise ContractError(f"params: {exc}", _field_named(str(exc))) from None


def _field_named(message: str) -> str:
    """The parameter an error message is about (the generator's messages start with it)."""

    names = [f"face.{n}" for n in FACE_FIELDS] + list(PARAM_FIELDS)
    head = message.split(" ", 1)[0].rstrip(":,")
    if head in names:
        return f"params.{head}"
    for name in names:
        if re.search(rf"\b{re.escape(name)}\b", message):
            return f"params.{name}"
    return "params"


def sampling_steps(denoise: float, steps: int) -> int:
    from bump_backend.generate.samplers import sampling_steps as steps_of

    return steps_of(denoise, steps)


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def free_vram_mb(device: Any) -> int | None:
    """Free memory on a CUDA device now (``torch.cuda.mem_get_info``); None elsewhere."""
    import torch

    if getattr(device, "type", str(device)) != "cuda" or not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free // (1024 * 1024))


def load_model_spec(model: Any, device: str | None = None):
    """``--model``: a registry name, hub id, folder, .safetensors file, or a .json ModelSpec."""
    from bump_backend.generate.models import ModelSpec, resolve_spec

    if isinstance(model, (str, Path)) and str(model).endswith(".json"):
        model = ModelSpec.from_dict(json.loads(Path(model).read_text(encoding="utf-8")))
    return resolve_spec(model, device=device)


class EngineGenerator:
    """The real generator: one warm ``BumpEngine``; lower-memory mode for an out-of-memory retry."""

    def __init__(self, model: Any = None, device: str | None = None, name: str | None = None) -> None:
        self.spec = load_model_spec(model, device)
        self.name = name or model_name(model if isinstance(model, str) else getattr(model, "base", None))
        self.engine = None

    def load(self) -> None:
        from bump_backend.generate import BumpEngine

        self.engine = BumpEngine(self.spec)

    def describe(self) -> dict[str, Any]:
        """The loaded model for ``/v1/health`` and ``/v1/models``: named as the user named it, no paths
        but in ``spec`` (which only ``/v1/models`` shows, behind the token)."""
        info: dict[str, Any] = {"spec": self.spec.to_dict(), "name": self.name}
        if self.engine is not None:
            loaded = self.engine.loaded
            info.update(device=str(loaded.device), dtype=str(loaded.dtype).replace("torch.", ""),
                        family=loaded.family, hash=loaded.model_hash, ip_adapter_kind=loaded.ip_adapter_kind,
                        faceid=bool(loaded.ip_adapter_kind and loaded.ip_adapter_kind.startswith("faceid")),
                        loras=[f"{Path(lora.path).stem}:{lora.weight:g}" for lora in loaded.spec.loras],
                        free_vram_mb=free_vram_mb(loaded.device), max_clip_skip=self.engine.max_clip_skip)
        return info

    def _low_memory(self, on: bool) -> None:
        """VAE tiling and slicing; attention slicing only without an IP-Adapter.

        diffusers' ``enable_attention_slicing`` replaces every attention processor, which would
        silently drop the IP-Adapter's (the identity), so with an adapter it is not used, and the
        processors are restored exactly as they were afterwards in every case.
        """
        pipe = self.engine.pipe
        vae = getattr(pipe, "vae", None)
        if on:
            self._saved_processors = dict(pipe.unet.attn_processors)
            if not self.engine.has_ip_adapter:
                pipe.enable_attention_slicing()
            if vae is not None:
                vae.enable_tiling()
                vae.enable_slicing()
        else:
            if vae is not None:
                vae.disable_tiling()
                vae.disable_slicing()
            pipe.unet.set_attn_processor(self._saved_processors)

    def run(self, job: PreparedJob, progress: Progress, cancel: threading.Event, low_memory: bool):
        from bump_backend.generate import BumpCancelled

        settings = replace(job.settings, batch_size=1) if low_memory else job.settings
        if low_memory:
            self._low_memory(True)
        try:
            return self.engine.run(job.image, job.package, job.sidecar, settings, progress=progress, cancel=cancel,
                                   input_path=str(job.image_path), faces=job.faces, packages=job.packages,
                                   character_prompts=job.character_prompts)
        except BumpCancelled as exc:
            raise Cancelled(str(exc)) from None
        finally:
            if low_memory:
                self._low_memory(False)

    def run_sequence(self, job: PreparedSequence, progress: FrameProgress, cancel: threading.Event,
                     low_memory: bool = False) -> dict[str, Any]:
        """Every frame not yet in the job's work folder, through the warm engine; returns the record.

        ``low_memory`` (the retry after an out-of-memory) runs the remaining frames with VAE tiling
        and slicing, batch size 1; the frames already finished are not redone.
        """
        from bump_backend.generate import BumpCancelled
        from bump_backend.sequence.bumper import EngineBumper  # the sequence job's torch side

        settings = replace(job.settings, batch_size=1) if low_memory else job.settings
        if low_memory:
            self._low_memory(True)
        try:
            return job.job.run(EngineBumper(self.engine, settings, cancel=cancel), progress=progress,
                               cancel=cancel)
        except (BumpCancelled, SequenceCancelled) as exc:
            raise Cancelled(str(exc)) from None
        finally:
            if low_memory:
                self._low_memory(False)
