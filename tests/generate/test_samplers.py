"""A1111's img2img step arithmetic and sampler names on diffusers schedulers."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.generate import samplers
from bump_backend.testing.tiny_models import _scheduler_config


def test_strength_runs_a1111_step_count():
    for steps in range(1, 151):
        for denoise in (0.05, 0.2, 0.32, 0.35, 0.4, 0.5, 0.75, 0.999, 1.0):
            strength = samplers.img2img_strength(denoise, steps)
            expected = min(int(min(denoise, 0.999) * steps) + 1, steps)
            assert min(int(steps * strength), steps) == expected
            assert samplers.sampling_steps(denoise, steps) == expected


def test_restart_is_heun_on_karras_sigmas_at_workflow_settings():
    for steps in range(33, 41):
        for denoise in (0.32, 0.35, 0.4):
            assert samplers.restart_is_heun(denoise, steps)
    assert not samplers.restart_is_heun(0.75, 35)  # 27 steps: A1111 would add restart segments

    scheduler = samplers.make_scheduler("Restart", _scheduler_config())
    assert type(scheduler).__name__ == "HeunDiscreteScheduler" and scheduler.config.use_karras_sigmas
    steps, denoise = 35, 0.4
    scheduler.set_timesteps(steps)
    # k-diffusion's Karras schedule on SD's sigma range; A1111 starts img2img at index steps - t_enc - 1.
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas = np.cumprod(1.0 - betas)
    all_sigmas = ((1 - alphas) / alphas) ** 0.5
    smin, smax, rho = all_sigmas[0], all_sigmas[-1], 7.0
    ramp = np.linspace(0, 1, steps)
    karras = (smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    t_enc = int(denoise * steps)
    start = steps - t_enc - 1
    # diffusers: img2img with our strength starts at t_start = steps - int(strength*steps).
    t_start = steps - int(steps * samplers.img2img_strength(denoise, steps))
    assert t_start == start
    unique = np.array(scheduler.sigmas[::2].tolist())  # Heun repeats every interior sigma
    np.testing.assert_allclose(unique[:steps], karras, rtol=2e-3)


def test_names_and_options():
    assert samplers.canonical_name("dpm++ 2m karras") == "DPM++ 2M Karras"
    assert samplers.canonical_name("euler A") == "Euler a"
    with pytest.raises(ValueError, match="unknown sampler"):
        samplers.canonical_name("Magic")
    config = _scheduler_config()
    sde = samplers.make_scheduler("DPM++ SDE Karras", config, seed=77)
    assert sde.config.noise_sampler_seed == 77
    two_m = samplers.make_scheduler("DPM++ 2M SDE Karras", config, seed=77)
    assert two_m.config.algorithm_type == "sde-dpmsolver++" and two_m.config.use_karras_sigmas
    for name in samplers.SAMPLERS:
        assert samplers.make_scheduler(name, config, seed=1) is not None
    with pytest.raises(ValueError):
        samplers.img2img_strength(0.0, 35)
