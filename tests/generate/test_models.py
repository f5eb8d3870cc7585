"""Loading through the real loaders: LoRA (both formats), SDXL, clear errors, one warm model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bump_backend.generate import BumpEngine, LoraSpec, ModelError, ModelSpec, tiny
from bump_backend.generate.models import ModelCache, file_shorthash, model_hash, resolve_spec


def test_registry_and_hash(spec, model_dirs):
    assert resolve_spec("sd15").ip_adapter_weight == "ip-adapter-plus-face_sd15.safetensors"
    assert resolve_spec("sdxl").family == "sdxl"
    assert resolve_spec(str(model_dirs["sd15"])).base == str(model_dirs["sd15"])
    unet = model_dirs["sd15"] / "unet" / "diffusion_pytorch_model.safetensors"
    assert model_hash(spec) == file_shorthash(unet) and len(model_hash(spec)) == 10


def test_missing_models_say_what_to_do(spec, tmp_path):
    with pytest.raises(ModelError, match="local path"):
        BumpEngine(replace(spec, base=str(tmp_path / "nowhere")))
    with pytest.raises(ModelError, match="Download it once"):
        BumpEngine(replace(spec, base="someone/not-a-cached-model"))
    with pytest.raises(ModelError, match="IP-Adapter"):
        BumpEngine(replace(spec, ip_adapter_weight="ip-adapter-missing.safetensors"))
    with pytest.raises(ModelError, match="LoRA"):
        BumpEngine(replace(spec, loras=(LoraSpec(str(tmp_path / "x.ckpt")),)))


def test_loras_in_both_formats_change_the_output(spec, model_dirs, scene, package_dir, fast_settings):
    peft_file = tiny.build_tiny_lora(model_dirs["root"] / "lora", model_dirs["sd15"])
    kohya_file = tiny.build_tiny_lora(model_dirs["root"] / "lora", model_dirs["sd15"], kohya=True, seed=5)
    image, _ = scene
    settings = replace(fast_settings, face_pass=False)
    base = BumpEngine(spec).run(image, package_dir, None, settings).image
    outputs = []
    for lora in (peft_file, kohya_file):
        engine = BumpEngine(replace(spec, loras=(LoraSpec(str(lora), 0.8),)))
        outputs.append(engine.run(image, package_dir, None, settings).image)
    assert not np.array_equal(base, outputs[0]) and not np.array_equal(base, outputs[1])
    assert not np.array_equal(outputs[0], outputs[1])


def test_sdxl_img2img_with_weighted_long_prompt(model_dirs, scene, fast_settings):
    xl = tiny.build_tiny_sdxl(model_dirs["root"] / "sdxl")
    engine = BumpEngine(ModelSpec(base=str(xl), ip_adapter=None, device="cpu"))
    assert engine.loaded.family == "sdxl"
    image, _ = scene
    long_prompt = "(photo:1.3) of a man, " + ", ".join(f"detail{i}" for i in range(30))
    settings = replace(fast_settings, face_pass=False, prompt=long_prompt)
    a = engine.run(image[:64, :64], None, None, settings)
    b = engine.run(image[:64, :64], None, None, settings)
    c = engine.run(image[:64, :64], None, None, replace(settings, prompt=long_prompt.replace("1.3", "0.7")))
    assert a.image.shape == (64, 64, 3) and np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)


def test_cache_keeps_one_model_warm(spec):
    cache = ModelCache()
    first = cache.get(spec)
    assert cache.get(spec) is first
    other = cache.get(replace(spec, ip_adapter=None))
    assert other is not first and first.pipe is None  # released before the next one loaded
