"""Bump settings: the seed workflow's numbers as defaults, validated once, recorded in full."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bump_backend.generate import infotext
from bump_contracts.bump_job import PARAM_DEFAULTS as _D
from bump_contracts.bump_job import check_param

NO_DRIFT_DENOISE = 0.32  # WORKFLOW: a bump that must not drift


@dataclass(frozen=True)
class PassOverrides:
    """Face-pass values that differ from the whole-image pass (None = same as the whole pass)."""

    steps: int | None = None
    cfg: float | None = None
    denoise: float | None = None
    sampler: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    ip_adapter_scale: float | None = None


@dataclass(frozen=True)
class PassSettings:
    """Everything one img2img pass needs (resolved, no Nones)."""

    steps: int
    cfg: float
    denoise: float
    sampler: str
    prompt: str
    negative_prompt: str
    ip_adapter_scale: float


@dataclass(frozen=True)
class BumpSettings:
    """One bump job. Defaults are the job contract's (the workflow's: 35 steps, CFG 7, denoise 0.4, Restart, random seed)."""

    prompt: str = _D["prompt"]
    negative_prompt: str = _D["negative_prompt"]
    steps: int = _D["steps"]
    cfg: float = _D["cfg"]
    denoise: float = _D["denoise"]
    sampler: str = _D["sampler"]
    seed: int = _D["seed"]  # -1: a random seed, recorded
    max_side: int = _D["max_side"]
    ip_adapter_scale: float = _D["ip_adapter_scale"]
    face_pass: bool = _D["face_pass"]
    whole_pass: bool = _D["whole_pass"]
    face: PassOverrides = field(default_factory=PassOverrides)
    face_size: int = _D["face_size"]
    face_padding: float = _D["face_padding"]
    candidates: int = _D["candidates"]  # seeds tried per face; the most similar to the package is kept
    pose_mode: str = _D["pose_mode"]  # nearest | average | all (see identity.select_embeds)
    pose_views: int = _D["pose_views"]
    batch_size: int = _D["batch_size"]  # face crops through the UNet together
    clip_skip: int = _D["clip_skip"]

    def __post_init__(self) -> None:
        # The rules (types, ranges, choices) are the job contract's table, written once for the
        # server, the add-on and batch job files; a sampler comes back in its A1111 spelling.
        for f in fields(self):
            if f.name != "face":
                object.__setattr__(self, f.name, check_param(f.name, getattr(self, f.name)))
        face = {f.name: check_param(f"face.{f.name}", getattr(self.face, f.name)) for f in fields(self.face)}
        if face != dataclasses.asdict(self.face):
            object.__setattr__(self, "face", replace(self.face, **face))

    def whole(self) -> PassSettings:
        return PassSettings(self.steps, self.cfg, self.denoise, self.sampler, self.prompt, self.negative_prompt,
                            self.ip_adapter_scale)

    def face_pass_settings(self) -> PassSettings:
        f = self.face
        return PassSettings(
            steps=f.steps if f.steps is not None else self.steps,
            cfg=f.cfg if f.cfg is not None else self.cfg,
            denoise=f.denoise if f.denoise is not None else self.denoise,
            sampler=f.sampler if f.sampler is not None else self.sampler,
            prompt=f.prompt if f.prompt is not None else self.prompt,
            negative_prompt=f.negative_prompt if f.negative_prompt is not None else self.negative_prompt,
            ip_adapter_scale=f.ip_adapter_scale if f.ip_adapter_scale is not None else self.ip_adapter_scale,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BumpSettings:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"settings: unknown field(s) {', '.join(sorted(unknown))}")
        face = data.pop("face", None) or {}
        if isinstance(face, dict):
            bad = set(face) - {f.name for f in fields(PassOverrides)}
            if bad:
                raise ValueError(f"settings.face: unknown field(s) {', '.join(sorted(bad))}")
            face = PassOverrides(**face)
        return cls(face=face, **data)

    @classmethod
    def from_infotext(cls, params: dict[str, str], **overrides: Any) -> BumpSettings:
        """Settings from an A1111 ``parameters`` text (as parsed by ``infotext.parse_infotext``)."""
        values = infotext.settings_values(params)
        if "face" in values:
            values["face"] = PassOverrides(**values["face"])
        values.update(overrides)
        return cls(**values)
