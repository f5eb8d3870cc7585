"""Render settings for package views: the fast default and Blender's own defaults for comparison.

Pure data: ``profile_rig.blender.studio.apply_render_settings`` writes them into a scene.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

ENGINES = {"cycles": "CYCLES", "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}


@dataclass(frozen=True)
class RenderPreset:
    name: str
    engine: str = "CYCLES"
    samples: int = 6
    adaptive_threshold: float = 0.04
    adaptive_min_samples: int = 0
    denoise: bool = True
    denoiser_prefilter: str = "FAST"  # NONE | FAST | ACCURATE
    denoise_passes: str = "RGB_ALBEDO_NORMAL"
    max_bounces: int = 4
    diffuse_bounces: int = 2
    glossy_bounces: int = 2
    transmission_bounces: int = 2
    transparent_bounces: int = 4
    volume_bounces: int = 0
    caustics: bool = False
    persistent_data: bool = True
    light_tree: bool = True
    subdivision: int = 1
    color_depth: str = "8"  # "8" or "16" bit PNG
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **changes: Any) -> RenderPreset:
        changes = {k: v for k, v in changes.items() if v is not None}
        if "engine" in changes:
            changes["engine"] = resolve_engine(changes["engine"])
        return replace(self, **changes)


def resolve_engine(name: str) -> str:
    key = name.lower()
    if key in ENGINES:
        return ENGINES[key]
    if name.upper() in ENGINES.values():
        return name.upper()
    raise ValueError(f"unknown engine {name!r}; use cycles, eevee or workbench")


FAST = RenderPreset(name="fast")
"""The package default: 6 samples, adaptive sampling, OIDN with the fast prefilter, short paths.

Measured at 720 px against a 1024-sample reference: 44.3 dB (40.4 dB over the character) at 6
samples, 46 dB at 8, 48.5 dB at 16, for 6.2 / 8.4 / 16 s per view on two cores
(``benchmarks/bench_package.py``).
"""

PREVIEW = RenderPreset(name="preview", samples=4, adaptive_threshold=0.1, subdivision=0)
"""For tests and quick looks."""

BLENDER_DEFAULT = RenderPreset(
    name="blender_default",
    samples=4096,
    adaptive_threshold=0.01,
    denoiser_prefilter="ACCURATE",
    max_bounces=12,
    diffuse_bounces=4,
    glossy_bounces=4,
    transmission_bounces=12,
    transparent_bounces=8,
    volume_bounces=0,
    caustics=True,
    persistent_data=False,
)
"""Cycles as a new scene has it (the baseline of the package benchmark)."""

REFERENCE = replace(BLENDER_DEFAULT, name="reference", samples=1024, adaptive_threshold=0.002)
"""High-sample ground truth for quality measurements."""

PRESETS = {p.name: p for p in (FAST, PREVIEW, BLENDER_DEFAULT, REFERENCE)}
