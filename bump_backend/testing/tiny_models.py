"""Tiny random models with the real architectures, written to disk in the real layouts.

Model weights cannot be downloaded in tests or CI, so tests (and the server's tests) build these
and load them through the same code that loads a user's real checkpoints: a diffusers folder, an
A1111 single-file checkpoint, an IP-Adapter release folder (``models/*.safetensors`` plus
``models/image_encoder``) and LoRA files in the diffusers and kohya formats. Safetensors only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from bump_contracts.package_manifest import MANIFEST_NAME, PackageManifest, ViewRecord, file_sha256

TINY_IMAGE_ENCODER = {"hidden_size": 32, "projection_dim": 32, "image_size": 32, "patch_size": 4}
ARCFACE_DIM = 512  # insightface's recognition models (and FaceID adapters) use 512-d identities


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's byte-to-character table (so the tokenizer covers every input byte)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def _tokenizer_vocab() -> dict[str, int]:
    """A character-level CLIP BPE vocabulary (every byte, with and without the word end mark)."""
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def _tokenizer():
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_tokenizer_vocab(), merges=[], model_max_length=77)


def _text_encoder(vocab_size: int, hidden: int, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=vocab_size,
        projection_dim=hidden,
        hidden_act="gelu",
    )
    model = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    with torch.no_grad():  # a real CLIP's final norm has a bias, so its output mean is not zero
        getattr(model, "text_model", model).final_layer_norm.bias.normal_(0.0, 0.2)
    return model


# SD 1.5's and SDXL's VAE: four levels (128, 256, 512, 512 channels), three downsamplings, so latents
# are 1/8 of the image side. The tiny one keeps the levels and the 1:2:4:4 channel ratios (narrow, so
# a 1024x768 bump runs in seconds on a CPU); ``levels=2`` is the earlier 2x VAE, kept for the benchmark.
TINY_VAE_CHANNELS = (8, 16, 32, 32)


def _vae(levels: int = 4):
    from diffusers import AutoencoderKL

    channels = list(TINY_VAE_CHANNELS[:levels]) if levels == 4 else [32, 64][:levels]
    return AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        latent_channels=4,
        norm_num_groups=8 if levels == 4 else 32,
        sample_size=64,
    )


def _scheduler_config() -> dict:
    """SD 1.5's own training schedule (A1111's samplers derive their sigmas from it)."""
    return {
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "num_train_timesteps": 1000,
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "prediction_type": "epsilon",
    }


# What the tiny SD 1.5 and SDXL UNets share: two levels, the second with cross-attention.
_TINY_UNET = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "norm_num_groups": 32,
}


def build_tiny_sd15(folder: str | Path, seed: int = 0, vae_levels: int = 4) -> Path:
    """Write a tiny random SD 1.5 img2img pipeline as a diffusers folder; return the folder.

    Its VAE downsamples 8x like SD 1.5's (``vae_levels=2``: the earlier 2x one, for comparisons)."""
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline, UNet2DConditionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**_TINY_UNET, cross_attention_dim=32, attention_head_dim=8)
    tokenizer = _tokenizer()
    text_encoder = _text_encoder(len(tokenizer), 32)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=_vae(vae_levels),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**_scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_tiny_sdxl(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny random SDXL img2img pipeline (two text encoders, text-time embedding)."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        **_TINY_UNET,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
    )
    tokenizer = _tokenizer()
    config = {k: v for k, v in _scheduler_config().items() if k not in ("clip_sample", "set_alpha_to_one")}
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer), 32),
        text_encoder_2=_text_encoder(len(tokenizer), 32, projection=True),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**config),
        requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _unet_attention_sizes(unet_config: dict) -> list[tuple[int, bool]]:
    """(hidden size, is cross-attention) of every attention processor, in the UNet's processor order.

    The original IP-Adapter release numbers its ``ip_adapter`` keys over these: 0, 1, 2... for
    FaceID's LoRA on every processor, 1, 3, 5... for the cross-attention ``to_k_ip``/``to_v_ip``.
    """
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    sizes = []
    channels = list(unet_config["block_out_channels"])
    for name in unet.attn_processors:
        if name.startswith("mid_block"):
            size = channels[-1]
        elif name.startswith("up_blocks"):
            size = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            size = channels[int(name[len("down_blocks.")])]
        sizes.append((size, not name.endswith("attn1.processor")))
    return sizes


def _perceiver_layers(state: dict[str, torch.Tensor], prefix: str, hidden: int, inner: int, rand) -> None:
    """The four perceiver blocks the plus and FaceID-plus projections share (original key layout)."""
    for i in range(4):  # diffusers' IPAdapterPlusImageProjection has depth 4
        p = f"{prefix}layers.{i}"
        for norm in ("norm1", "norm2"):
            state[f"{p}.0.{norm}.weight"] = torch.ones(hidden)
            state[f"{p}.0.{norm}.bias"] = torch.zeros(hidden)
        state[f"{p}.0.to_q.weight"] = rand(inner, hidden)
        state[f"{p}.0.to_kv.weight"] = rand(2 * inner, hidden)
        state[f"{p}.0.to_out.weight"] = rand(hidden, inner)
        state[f"{p}.1.0.weight"] = torch.ones(hidden)
        state[f"{p}.1.0.bias"] = torch.zeros(hidden)
        state[f"{p}.1.1.weight"] = rand(hidden * 4, hidden)
        state[f"{p}.1.3.weight"] = rand(hidden, hidden * 4)


def build_tiny_ip_adapter(
    folder: str | Path, pipeline_folder: str | Path, kind: str = "plus-face", seed: int = 1
) -> tuple[Path, str]:
    """Write an IP-Adapter in the h94/IP-Adapter layout for a tiny pipeline.

    ``folder/models/<weight>.safetensors`` (keys ``image_proj.*`` and ``ip_adapter.*`` as in the
    original release) and ``folder/models/image_encoder`` (a CLIP vision model). ``kind`` is
    ``plain``, ``plus`` or ``plus-face`` (plus and plus-face share a layout), or a FaceID kind
    (``faceid``, ``faceid-plus``, ``faceid-plusv2``: a 512-d identity projection, FaceID's LoRA on
    every attention processor, and for the plus kinds a perceiver over CLIP features; the h94
    FaceID release ships no image encoder, so point ``ModelSpec.image_encoder`` at this one).
    The file is named for the pipeline's family (``_sd15`` / ``_sdxl``). Returns the folder and the
    weight file name.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder, pipeline_folder = Path(folder), Path(pipeline_folder)
    unet_config = json.loads((pipeline_folder / "unet" / "config.json").read_text())
    cross = int(unet_config["cross_attention_dim"])
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * scale).contiguous()

    enc = TINY_IMAGE_ENCODER
    state: dict[str, torch.Tensor] = {}
    if kind == "plain":
        tokens = 4
        state["image_proj.proj.weight"] = rand(cross * tokens, enc["projection_dim"])
        state["image_proj.proj.bias"] = rand(cross * tokens)
        state["image_proj.norm.weight"] = torch.ones(cross)
        state["image_proj.norm.bias"] = torch.zeros(cross)
    elif kind in ("plus", "plus-face"):
        hidden, heads, queries = 64, 1, 4
        state["image_proj.latents"] = rand(1, queries, hidden)
        state["image_proj.proj_in.weight"] = rand(hidden, enc["hidden_size"])
        state["image_proj.proj_in.bias"] = rand(hidden)
        state["image_proj.proj_out.weight"] = rand(cross, hidden)
        state["image_proj.proj_out.bias"] = rand(cross)
        state["image_proj.norm_out.weight"] = torch.ones(cross)
        state["image_proj.norm_out.bias"] = torch.zeros(cross)
        _perceiver_layers(state, "image_proj.", hidden, heads * 64, rand)
    elif kind == "faceid":  # IPAdapterFaceIDImageProjection: 512 -> 4 tokens
        tokens, mult = 4, 2
        state["image_proj.proj.0.weight"] = rand(ARCFACE_DIM * mult, ARCFACE_DIM, scale=0.05)
        state["image_proj.proj.0.bias"] = rand(ARCFACE_DIM * mult)
        state["image_proj.proj.2.weight"] = rand(cross * tokens, ARCFACE_DIM * mult, scale=0.05)
        state["image_proj.proj.2.bias"] = rand(cross * tokens)
        state["image_proj.norm.weight"] = torch.ones(cross)
        state["image_proj.norm.bias"] = torch.zeros(cross)
    elif kind in ("faceid-plus", "faceid-plusv2"):  # ProjPlusModel: identity tokens refined over CLIP features
        tokens = 4
        state["image_proj.proj.0.weight"] = rand(ARCFACE_DIM * 2, ARCFACE_DIM, scale=0.05)
        state["image_proj.proj.0.bias"] = rand(ARCFACE_DIM * 2)
        state["image_proj.proj.2.weight"] = rand(cross * tokens, ARCFACE_DIM * 2, scale=0.05)
        state["image_proj.proj.2.bias"] = rand(cross * tokens)
        state["image_proj.norm.weight"] = torch.ones(cross)
        state["image_proj.norm.bias"] = torch.zeros(cross)
        r = "image_proj.perceiver_resampler."
        state[r + "proj_in.weight"] = rand(cross, enc["hidden_size"])
        state[r + "proj_in.bias"] = rand(cross)
        state[r + "proj_out.weight"] = rand(cross, cross)
        state[r + "proj_out.bias"] = rand(cross)
        state[r + "norm_out.weight"] = torch.ones(cross)
        state[r + "norm_out.bias"] = torch.zeros(cross)
        _perceiver_layers(state, r, cross, 64, rand)
    else:
        raise ValueError(f"unknown IP-Adapter kind {kind!r}: plain, plus, plus-face, faceid, faceid-plus or "
                         "faceid-plusv2")
    rank = 4
    for key, (size, is_cross) in enumerate(_unet_attention_sizes(unet_config)):
        if is_cross:
            # Strong enough that a tiny random adapter visibly moves the output.
            state[f"ip_adapter.{key}.to_k_ip.weight"] = rand(size, cross, scale=1.0)
            state[f"ip_adapter.{key}.to_v_ip.weight"] = rand(size, cross, scale=1.0)
        if kind.startswith("faceid"):  # FaceID's LoRA on q/k/v/out of every attention
            kv_in = cross if is_cross else size
            for name, fan_in in (("to_q", size), ("to_k", kv_in), ("to_v", kv_in), ("to_out", size)):
                state[f"ip_adapter.{key}.{name}_lora.down.weight"] = rand(rank, fan_in)
                state[f"ip_adapter.{key}.{name}_lora.up.weight"] = rand(size, rank)
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    family = "sdxl" if "addition_embed_type" in unet_config and unet_config["addition_embed_type"] == "text_time" \
        else "sd15"
    suffix = {"plain": "", "plus": "-plus", "plus-face": "-plus-face", "faceid": "-faceid",
              "faceid-plus": "-faceid-plus", "faceid-plusv2": "-faceid-plusv2"}[kind]
    weight = f"ip-adapter{suffix}_{family}.safetensors"
    save_file(state, str(models / weight))
    encoder_dir = models / "image_encoder"
    if not (encoder_dir / "config.json").exists():
        torch.manual_seed(seed + 1)
        config = CLIPVisionConfig(
            hidden_size=enc["hidden_size"],
            projection_dim=enc["projection_dim"],
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=enc["image_size"],
            patch_size=enc["patch_size"],
            intermediate_size=37,
        )
        CLIPVisionModelWithProjection(config).save_pretrained(encoder_dir, safe_serialization=True)
    return folder, weight


def build_tiny_lora(folder: str | Path, pipeline_folder: str | Path, kohya: bool = False, seed: int = 2) -> Path:
    """Write a random LoRA for a tiny pipeline's UNet attention; diffusers (peft) or kohya keys."""
    from diffusers import UNet2DConditionModel

    folder, pipeline_folder = Path(folder), Path(pipeline_folder)
    unet = UNet2DConditionModel.from_pretrained(pipeline_folder / "unet")
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    rank = 4
    for name, module in unet.named_modules():
        if not isinstance(module, torch.nn.Linear) or name.split(".")[-1] not in ("to_q", "to_k", "to_v"):
            continue
        down = torch.randn(rank, module.in_features, generator=generator) * 0.5
        up = torch.randn(module.out_features, rank, generator=generator) * 0.5
        if kohya:
            key = "lora_unet_" + name.replace(".", "_")
            state[f"{key}.lora_down.weight"] = down
            state[f"{key}.lora_up.weight"] = up
            state[f"{key}.alpha"] = torch.tensor(float(rank))
        else:
            state[f"unet.{name}.lora_A.weight"] = down
            state[f"unet.{name}.lora_B.weight"] = up
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("tiny_kohya_lora.safetensors" if kohya else "pytorch_lora_weights.safetensors")
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def build_tiny_package(folder: str | Path, views: dict[str, tuple[object, float]] | None = None,
                       character_id: str = "tiny_character", character_name: str = "Tiny Character") -> Path:
    """Write a profile package (PNG per view + ``package.json``) from ``{name: (rgb_array, camera_yaw)}``.

    Without ``views``: three 64 px views (front, three-quarter left/right) of a made-up pattern.
    """
    import numpy as np
    from PIL import Image


    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if views is None:
        rng = np.random.default_rng(7)
        views = {}
        for name, yaw in (("front", 0.0), ("three_quarter_left", 45.0), ("three_quarter_right", -45.0)):
            base = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
            views[name] = (np.asarray(Image.fromarray(base).resize((64, 64), Image.Resampling.BICUBIC)), yaw)
    records = []
    for name, (array, yaw) in views.items():
        path = folder / f"{name}.png"
        image = np.asarray(array, dtype=np.uint8)
        Image.fromarray(image).save(path)
        records.append(ViewRecord(name=name, file=path.name, yaw=float(yaw), pitch=0.0, roll=0.0,
                                  width=int(image.shape[1]), height=int(image.shape[0]), sha256=file_sha256(path)))
    manifest = PackageManifest(character_id=character_id, character_name=character_name, views=tuple(records),
                               contact_sheet=None, origin="imported", source={"kind": "test"})
    (folder / MANIFEST_NAME).write_text(manifest.dumps(), encoding="utf-8")
    return folder


# -- A1111 single-file checkpoints -------------------------------------------------------------
# The inverse of diffusers' own single-file conversion (``diffusers.loaders.single_file_utils``:
# ``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``),
# written for any SD 1.5-shaped UNet/VAE (any number of levels and layers per block), so a tiny
# pipeline can be saved the way A1111 users keep their models and loaded back through
# ``from_single_file``. ``ldm_to_diffusers`` runs diffusers' forward conversion; a test checks that
# the two are exact inverses on every tensor.
_RESNET_TO_LDM = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                  ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_TOP_LEVEL = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                   "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
_VAE_ATTENTION_TO_LDM = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def _swap_prefix(key: str, old: str, new: str) -> str | None:
    return new + key[len(old):] if key.startswith(old) else None


def _unet_key_to_ldm(key: str, config: dict) -> str:
    """One diffusers UNet key in the original LDM layout (``model.diffusion_model.`` omitted)."""
    for old, new in _UNET_TOP_LEVEL.items():
        if key.startswith(old + "."):
            return new + key[len(old):]
    per_level = int(config["layers_per_block"]) + 1
    parts = key.split(".")
    if parts[0] == "down_blocks":
        level, kind = int(parts[1]), parts[2]
        if kind == "downsamplers":  # down_blocks.L.downsamplers.0.conv.* -> input_blocks.N.0.op.*
            return f"input_blocks.{(level + 1) * per_level}.0.op." + ".".join(parts[5:])
        layer = int(parts[3])
        block = 1 + level * per_level + layer
        rest = ".".join(parts[4:])
        if kind == "resnets":
            return f"input_blocks.{block}.0.{_resnet_name(rest)}"
        return f"input_blocks.{block}.1.{rest}"  # attentions: same names inside the transformer
    if parts[0] == "mid_block":
        index, rest = int(parts[2]), ".".join(parts[3:])
        if parts[1] == "resnets":
            return f"middle_block.{2 * index}.{_resnet_name(rest)}"
        return f"middle_block.1.{rest}"
    if parts[0] == "up_blocks":
        level, kind = int(parts[1]), parts[2]
        if kind == "upsamplers":  # after the level's last resnet (and its attention, if any)
            block = level * per_level + per_level - 1
            has_attention = "CrossAttn" in config["up_block_types"][level]
            return f"output_blocks.{block}.{2 if has_attention else 1}.conv." + ".".join(parts[5:])
        layer = int(parts[3])
        block = level * per_level + layer
        rest = ".".join(parts[4:])
        if kind == "resnets":
            return f"output_blocks.{block}.0.{_resnet_name(rest)}"
        return f"output_blocks.{block}.1.{rest}"
    raise ValueError(f"no LDM name for UNet key {key!r}")


def _resnet_name(rest: str) -> str:
    for old, new in _RESNET_TO_LDM:
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    raise ValueError(f"unknown resnet parameter {rest!r}")


def _vae_key_to_ldm(key: str, num_up: int) -> str:
    """One diffusers VAE key in the original layout (``first_stage_model.`` omitted)."""
    for side in ("encoder", "decoder"):
        for old, new in ((f"{side}.conv_norm_out.", f"{side}.norm_out."),):
            swapped = _swap_prefix(key, old, new)
            if swapped:
                return swapped
    parts = key.split(".")
    if len(parts) > 2 and parts[1] in ("down_blocks", "up_blocks"):
        side, level, kind = parts[0], int(parts[2]), parts[3]
        ldm_level = level if side == "encoder" else num_up - 1 - level
        group = "down" if side == "encoder" else "up"
        if kind in ("downsamplers", "upsamplers"):
            name = "downsample" if kind == "downsamplers" else "upsample"
            return f"{side}.{group}.{ldm_level}.{name}." + ".".join(parts[5:])
        rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
        return f"{side}.{group}.{ldm_level}.block.{parts[4]}.{rest}"
    if len(parts) > 2 and parts[1] == "mid_block":
        side, kind, index = parts[0], parts[2], int(parts[3])
        rest = ".".join(parts[4:])
        if kind == "resnets":
            return f"{side}.mid.block_{index + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        for old, new in _VAE_ATTENTION_TO_LDM:
            if rest.startswith(old + "."):
                return f"{side}.mid.attn_1.{new}{rest[len(old):]}"
    return key  # conv_in/conv_out/quant_conv/post_quant_conv keep their names


def diffusers_to_ldm(pipe) -> dict[str, torch.Tensor]:
    """An SD 1.5 pipeline's UNet, VAE and CLIP text encoder as one original-LDM state dict."""
    state: dict[str, torch.Tensor] = {}
    unet_config = dict(pipe.unet.config)
    for key, value in pipe.unet.state_dict().items():
        state["model.diffusion_model." + _unet_key_to_ldm(key, unet_config)] = value
    num_up = len(pipe.vae.config.up_block_types)
    for key, value in pipe.vae.state_dict().items():
        ldm = _vae_key_to_ldm(key, num_up)
        if ".mid.attn_1." in ldm and ldm.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]  # the original attention is 1x1 convolutions
        state["first_stage_model." + ldm] = value
    for key, value in pipe.text_encoder.state_dict().items():
        inner = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + inner] = value
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def ldm_to_diffusers(state: dict[str, torch.Tensor], unet_config: dict, vae_config: dict) -> dict[str, dict]:
    """diffusers' own forward conversion of an LDM state dict (what ``from_single_file`` runs)."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    return {"unet": convert_ldm_unet_checkpoint(dict(state), dict(unet_config)),
            "vae": convert_ldm_vae_checkpoint(dict(state), dict(vae_config)),
            "text_encoder": convert_ldm_clip_checkpoint(dict(state))}


def build_tiny_single_file(path: str | Path, pipeline_folder: str | Path) -> Path:
    """Write a diffusers SD 1.5 folder as an A1111-style single ``.safetensors`` checkpoint.

    Load it back with ``from_single_file(path, config=pipeline_folder)`` (the folder supplies the
    configs, tokenizer and scheduler; the file supplies every weight).
    """
    from diffusers import StableDiffusionImg2ImgPipeline

    path = Path(path)
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(Path(pipeline_folder), safety_checker=None,
                                                          requires_safety_checker=False, use_safetensors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(diffusers_to_ldm(pipe), str(path), metadata={"format": "pt"})
    return path


# -- insightface recognition model ---------------------------------------------------------------
def build_tiny_arcface(path: str | Path, seed: int = 3, width: int = 8) -> Path:
    """Write a tiny random ArcFace recognition model as ONNX, in insightface's IResNet shape.

    Same interface as buffalo_l's ``w600k_r50.onnx``: input ``input.1`` of shape (N, 3, 112, 112)
    (RGB, (x - 127.5) / 127.5), output (N, 512). The graph is IResNet's: conv-BN-PReLU stem,
    "improved" residual blocks (BN, conv, BN, PReLU, strided conv, BN, plus a strided 1x1 shortcut)
    down to 7x7, BN, flatten, fully connected, and the feature BatchNorm.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name: str, array) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def conv(x: str, cin: int, cout: int, k: int, stride: int, name: str) -> str:
        w = weight(f"{name}.w", rng.normal(0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k)))
        nodes.append(helper.make_node("Conv", [x, w], [name], kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[k // 2] * 4))
        return name

    def bn(x: str, c: int, name: str) -> str:
        ins = [x, weight(f"{name}.g", rng.uniform(0.8, 1.2, c)), weight(f"{name}.b", rng.normal(0, 0.1, c)),
               weight(f"{name}.m", rng.normal(0, 0.1, c)), weight(f"{name}.v", rng.uniform(0.8, 1.2, c))]
        nodes.append(helper.make_node("BatchNormalization", ins, [name], epsilon=1e-5))
        return name

    def prelu(x: str, c: int, name: str) -> str:
        nodes.append(helper.make_node("PRelu", [x, weight(f"{name}.a", np.full((c, 1, 1), 0.25))], [name]))
        return name

    x = prelu(bn(conv("input.1", 3, width, 3, 1, "stem"), width, "stem.bn"), width, "stem.prelu")
    for i in range(4):  # 112 -> 56 -> 28 -> 14 -> 7
        b = f"block{i}"
        y = bn(x, width, f"{b}.bn1")
        y = prelu(bn(conv(y, width, width, 3, 1, f"{b}.conv1"), width, f"{b}.bn2"), width, f"{b}.prelu")
        y = bn(conv(y, width, width, 3, 2, f"{b}.conv2"), width, f"{b}.bn3")
        shortcut = bn(conv(x, width, width, 1, 2, f"{b}.down"), width, f"{b}.down.bn")
        nodes.append(helper.make_node("Add", [y, shortcut], [f"{b}.out"]))
        x = f"{b}.out"
    x = bn(x, width, "bn2")
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    flat = width * 7 * 7
    fc_w = weight("fc.w", rng.normal(0, (1.0 / flat) ** 0.5, (ARCFACE_DIM, flat)))
    nodes.append(helper.make_node("Gemm", ["flat", fc_w, weight("fc.b", np.zeros(ARCFACE_DIM))], ["fc"], transB=1))
    features = [weight(f"features.{k}", v) for k, v in (("g", np.ones(ARCFACE_DIM)), ("b", np.zeros(ARCFACE_DIM)),
                                                        ("m", np.zeros(ARCFACE_DIM)), ("v", np.ones(ARCFACE_DIM)))]
    nodes.append(helper.make_node("BatchNormalization", ["fc", *features], ["683"], epsilon=1e-5))
    graph = helper.make_graph(
        nodes, "tiny_iresnet",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, [1, ARCFACE_DIM])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
