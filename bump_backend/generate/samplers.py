"""A1111 sampler names as diffusers schedulers, with A1111's img2img step arithmetic.

A1111 runs ``int(denoise * steps) + 1`` sampling steps of a ``steps``-long schedule in img2img;
diffusers runs ``int(strength * steps)``. :func:`img2img_strength` converts, so the same
settings walk the same sigmas. A1111's "Restart" adds no restart segments below about 20
intervals, which is always the case at 33-40 steps and denoise 0.32-0.4, so it is Heun on Karras
sigmas (checked: :func:`restart_is_heun`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplerInfo:
    scheduler: str
    options: dict[str, Any]
    stochastic: bool = False
    noise_sampler_seed: bool = False  # the scheduler ignores the generator; seed it through the config


SAMPLERS: dict[str, SamplerInfo] = {
    "Restart": SamplerInfo("HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    "Heun": SamplerInfo("HeunDiscreteScheduler", {}),
    "Heun Karras": SamplerInfo("HeunDiscreteScheduler", {"use_karras_sigmas": True}),
    "Euler": SamplerInfo("EulerDiscreteScheduler", {}),
    "Euler a": SamplerInfo("EulerAncestralDiscreteScheduler", {}, stochastic=True),
    "LMS": SamplerInfo("LMSDiscreteScheduler", {}),
    "LMS Karras": SamplerInfo("LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    "DDIM": SamplerInfo("DDIMScheduler", {}),
    "UniPC": SamplerInfo("UniPCMultistepScheduler", {}),
    "DPM++ 2M": SamplerInfo("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": SamplerInfo(
        "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}
    ),
    # k-diffusion's DPM++ 2M SDE draws its noise from a Brownian tree seeded once; diffusers'
    # multistep SDE solver draws it from the generator, so the per-candidate generator seeds it.
    "DPM++ 2M SDE Karras": SamplerInfo(
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        stochastic=True,
    ),
    # DPMSolverSDEScheduler ignores the generator: its Brownian tree needs `noise_sampler_seed`.
    "DPM++ SDE Karras": SamplerInfo(
        "DPMSolverSDEScheduler", {"use_karras_sigmas": True}, stochastic=True, noise_sampler_seed=True
    ),
}
ALIASES = {name.lower().replace("+", "p").replace(" ", ""): name for name in SAMPLERS}
ALIASES.update({"k_euler_a": "Euler a", "k_euler": "Euler", "dpmpp_2m_karras": "DPM++ 2M Karras",
                "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras", "restart": "Restart"})

# Keys from a loaded scheduler's config that carry the model's training schedule.
_SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                  "prediction_type", "timestep_spacing", "steps_offset")


def canonical_name(name: str) -> str:
    """The A1111 spelling of a sampler name (case and spacing forgiven)."""
    if name in SAMPLERS:
        return name
    key = name.strip().lower().replace("+", "p").replace(" ", "").replace("-", "")
    for alias, canonical in ALIASES.items():
        if alias.replace("-", "") == key:
            return canonical
    raise ValueError(f"unknown sampler {name!r}; known: {', '.join(SAMPLERS)}")


def make_scheduler(name: str, base_config: dict[str, Any], seed: int | None = None):
    """A fresh diffusers scheduler for ``name`` on the model's own training schedule."""
    import diffusers

    info = SAMPLERS[canonical_name(name)]
    cls = getattr(diffusers, info.scheduler)
    config = {k: base_config[k] for k in _SCHEDULE_KEYS if k in base_config}
    # A1111 spaces its k-diffusion schedules over the whole training range ("leading" in diffusers
    # terms would skip the last timesteps); "trailing"/"linspace" match it for Karras sigmas.
    config["timestep_spacing"] = "linspace" if info.scheduler != "DDIMScheduler" else "leading"
    config.update(info.options)
    if info.noise_sampler_seed:
        config["noise_sampler_seed"] = seed
    if info.scheduler == "DDIMScheduler":
        config.update(clip_sample=False, set_alpha_to_one=False)
    return cls.from_config(config)


def img2img_strength(denoise: float, steps: int) -> float:
    """diffusers' ``strength`` that runs A1111's ``int(denoise*steps) + 1`` img2img steps."""
    if not 0.0 < denoise <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}")
    target = min(int(min(denoise, 0.999) * steps) + 1, steps)
    strength = target / steps
    # Guard against floating point: diffusers computes int(steps * strength).
    while int(steps * strength) < target:
        strength = min(1.0, strength + 1e-9)
    return strength


def sampling_steps(denoise: float, steps: int) -> int:
    """How many scheduler steps an img2img pass actually runs (what progress counts to)."""
    return min(int(steps * img2img_strength(denoise, steps)), steps)


def restart_is_heun(denoise: float, steps: int) -> bool:
    """A1111's Restart inserts restart segments only when its sigma list has 20+ entries."""
    return sampling_steps(denoise, steps) + 1 < 20

