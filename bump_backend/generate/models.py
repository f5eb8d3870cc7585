"""Model registry and loading: a checkpoint, its IP-Adapter and LoRAs, loaded once and kept warm.

Everything loads through diffusers' own loaders (``from_pretrained``, ``from_single_file``,
``load_ip_adapter``, ``load_lora_weights``) from a hub id or a local path, safetensors only, so
the tiny test models and a user's real checkpoints go through one code path.
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from bump_backend.generate import model_files
from bump_backend.generate.model_files import FACEID_REPO, IP_ADAPTER_REPO, SD15_REPO, SDXL_REPO
from bump_contracts.package_manifest import file_sha256 as sha256_of_file


class ModelError(RuntimeError):
    """A model is missing or unusable; the message says what to download or where to put it."""


@dataclass(frozen=True)
class LoraSpec:
    path: str
    weight: float = 1.0


@dataclass(frozen=True)
class ModelSpec:
    """Which weights make a bump pipeline. Every field is a hub id or a local path."""

    base: str = SD15_REPO
    family: str = "auto"  # "sd15", "sdxl" or "auto" (read from the checkpoint)
    config: str | None = None  # diffusers folder/repo with the configs for a single-file checkpoint
    ip_adapter: str | None = IP_ADAPTER_REPO
    ip_adapter_subfolder: str = "models"
    ip_adapter_weight: str = "ip-adapter-plus-face_sd15.safetensors"
    image_encoder_folder: str = "image_encoder"
    loras: tuple[LoraSpec, ...] = ()
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    dtype: str = "auto"  # "auto" = fp16 on CUDA, float32 on the CPU
    # The CLIP image encoder when it is not inside the IP-Adapter's repo (FaceID-plus releases ship
    # none): a local folder, or "owner/repo/sub/folder" on the hub.
    image_encoder: str | None = None
    # FaceID adapters: insightface's recognition model (buffalo_l's w600k_r50.onnx, or its folder).
    face_embedder: str | None = None

    def key(self) -> tuple:
        return (self.base, self.family, self.config, self.ip_adapter, self.ip_adapter_subfolder,
                self.ip_adapter_weight, self.image_encoder_folder, self.loras, self.device, self.dtype,
                self.image_encoder, self.face_embedder)

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "family": self.family,
            "config": self.config,
            "ip_adapter": self.ip_adapter,
            "ip_adapter_subfolder": self.ip_adapter_subfolder,
            "ip_adapter_weight": self.ip_adapter_weight,
            "image_encoder_folder": self.image_encoder_folder,
            "loras": [{"path": lora.path, "weight": lora.weight} for lora in self.loras],
            "device": self.device,
            "dtype": self.dtype,
            "image_encoder": self.image_encoder,
            "face_embedder": self.face_embedder,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        data = dict(data)
        data["loras"] = tuple(LoraSpec(**item) for item in data.get("loras", ()))
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"model spec: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**data)


# Named presets; any other string is taken as a hub id, a diffusers folder or a .safetensors file.
REGISTRY: dict[str, ModelSpec] = {
    "sd15": ModelSpec(),
    "sd15-plain": ModelSpec(ip_adapter_weight="ip-adapter_sd15.safetensors"),
    "sdxl": ModelSpec(
        base=SDXL_REPO,
        family="sdxl",
        ip_adapter_subfolder="sdxl_models",
        ip_adapter_weight="ip-adapter-plus-face_sdxl_vit-h.safetensors",
        image_encoder_folder="models/image_encoder",
    ),
    # FaceID-plus-v2: h94 publishes these weights as pickles (.bin); they load here only once converted
    # to .safetensors. Needs face_embedder (insightface buffalo_l) and peft for its LoRA.
    "sd15-faceid-plusv2": ModelSpec(
        ip_adapter=FACEID_REPO,
        ip_adapter_subfolder="",
        ip_adapter_weight="ip-adapter-faceid-plusv2_sd15.safetensors",
        image_encoder=f"{IP_ADAPTER_REPO}/models/image_encoder",
    ),
}


def resolve_spec(model: str | ModelSpec | None, **overrides: Any) -> ModelSpec:
    """A registry name, a path or a hub id (or a ready spec) as a :class:`ModelSpec`."""
    if isinstance(model, ModelSpec):
        spec = model
    elif model is None or model in REGISTRY:
        spec = REGISTRY[model or "sd15"]
    else:
        spec = replace(REGISTRY["sd15"], base=named_checkpoint(str(model)))
    return replace(spec, **{k: v for k, v in overrides.items() if v is not None})


def named_checkpoint(model: str) -> str:
    """``--model NAME``: a checkpoint of a registered folder by file name or stem, else ``model`` itself."""
    if Path(model).expanduser().exists() or "/" in model or "\\" in model:
        return model
    found = model_files.find_named(model, "checkpoint")
    return str(found.path) if found is not None else model


def locate_all(spec: ModelSpec, found: list[model_files.FoundFile] | None = None) -> list[model_files.Located]:
    """Every part ``spec`` needs and where it is on this machine (one scan of the registered folders)."""
    found = model_files.scan_registered() if found is None else found
    return [model_files.locate(need, found) for need in model_files.needs_of(spec)]


def localize(spec: ModelSpec, located: list[model_files.Located] | None = None) -> ModelSpec:
    """``spec`` with hub parts that are not in the HF cache replaced by the files found in registered folders.

    Parts in the HF cache keep their hub id (diffusers reads the cache); parts found nowhere are
    left as they are, so the loader's error (with its fix line) names them.
    """
    located = locate_all(spec) if located is None else located
    parts = {item.need.role: item for item in located}
    changes: dict[str, Any] = {}

    def from_folder(role: str) -> model_files.FoundFile | None:
        item = parts.get(role)
        return item.found if item is not None and item.found is not None and item.found.source.startswith(
            "folder") else None

    base = from_folder("base")
    if base is not None:
        changes["base"] = str(base.path)
        configs = parts.get("base-configs")
        if base.path.is_file() and spec.config is None and configs is not None and configs.found is not None:
            changes["config"] = str(configs.found.path)
    adapter = from_folder("ip-adapter")
    if adapter is not None:
        changes.update(ip_adapter=str(adapter.path.parent), ip_adapter_subfolder="",
                       ip_adapter_weight=adapter.path.name)
    encoder = parts.get("image-encoder")
    if encoder is not None and encoder.found is not None and (adapter is not None or from_folder("image-encoder")):
        changes["image_encoder"] = str(encoder.found.path)
    elif adapter is not None and encoder is not None and encoder.need.repo is not None and spec.image_encoder is None:
        # the adapter lies in a folder, its encoder only on the hub: name it there (fetched once when online)
        changes["image_encoder"] = f"{encoder.need.repo}/{Path(encoder.need.files[0]).parent.as_posix()}"
    embedder = from_folder("face-embedder")
    if embedder is not None and spec.face_embedder is None:
        changes["face_embedder"] = str(embedder.path)
    return replace(spec, **changes) if changes else spec


def preset_for_need(need: model_files.Need) -> str | None:
    """The first preset that needs exactly these hub files (so `models fetch PRESET` downloads them)."""
    if need.repo is None:
        return None
    for name, preset in REGISTRY.items():
        if any((n.repo, n.files) == (need.repo, need.files) for n in model_files.needs_of(preset)):
            return name
    return None


def fix_hint(spec: ModelSpec, role: str) -> str:
    """`` Fix: <command>`` for the part ``role`` of ``spec`` (the exact models command that supplies it)."""
    for item in locate_all(spec):
        if item.need.role == role and not item.ok:
            return f" Fix: {model_files.fix_line(item, preset_for_need(item.need))}"
    return ""


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16,
            "float32": torch.float32, "fp32": torch.float32}[dtype]


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def is_single_file(base: str) -> bool:
    return base.lower().endswith(".safetensors")


def _detect_family(spec: ModelSpec) -> str:
    if spec.family != "auto":
        return spec.family
    base = Path(spec.base)
    if base.is_dir():
        index = base / "model_index.json"
        if index.is_file() and "XL" in index.read_text(encoding="utf-8"):
            return "sdxl"
        return "sd15"
    if base.is_file():
        from safetensors import safe_open

        with safe_open(str(base), "pt") as handle:
            keys = handle.keys()
            if any(k.startswith("conditioner.embedders.1") for k in keys):
                return "sdxl"
        return "sd15"
    return "sdxl" if "xl" in spec.base.lower() else "sd15"


def _missing(what: str, where: str, exc: BaseException, spec: ModelSpec, role: str) -> ModelError:
    fix = fix_hint(spec, role)
    if where.startswith((".", "/", "~")) or "\\" in where or Path(where).parent.exists() and where.count("/") != 1:
        return ModelError(f"{what} not found at the local path {where}: put the model files there (a diffusers "
                          f"folder, or a .safetensors checkpoint) or give a hub id.{fix} "
                          f"Cause: {type(exc).__name__}: {exc}")
    if not fix:
        fix = (f" Fix: `{model_files.MODELS_CMD} add-folder DIR` with the folder that holds it (A1111, Forge, "
               "ComfyUI or any folder), then pass its file or folder name")
    note = " (HF_HUB_OFFLINE is set, so nothing is downloaded)" if offline() else ""
    return ModelError(f"{what} not found: {where}{note}.{fix}. Cause: {type(exc).__name__}: {exc}")


def file_shorthash(path: str | Path) -> str:
    """A1111's model hash: the first 10 hex digits of the file's SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]


def model_hash(spec: ModelSpec) -> str:
    """The shorthash of the checkpoint file, or of the UNet weights of a diffusers folder."""
    base = Path(spec.base)
    if base.is_file():
        return file_shorthash(base)
    if base.is_dir():
        for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
            candidate = base / "unet" / name
            if candidate.is_file():
                return file_shorthash(candidate)
    return hashlib.sha256(spec.base.encode("utf-8")).hexdigest()[:10]


# -- what determines the output, part by part (the record's model.components) -----------------
_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # (path, size, mtime, ctime) -> sha256: read once
PIPELINE_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")


def file_sha256(path: Path) -> str:
    """The file's SHA-256, cached while its size and modification time stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)  # ctime: any rewrite
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = sha256_of_file(path)
    return _FILE_DIGESTS[key]


def folder_hash(folder: Path) -> str:
    """One hash of every file in a folder (names and contents; hidden files left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest.update(relative.as_posix().encode("utf-8") + b"\0" + file_sha256(path).encode("ascii"))
    return digest.hexdigest()[:10]


def _local(where: str | None) -> Path | None:
    """A local path, or the hub cache's snapshot of a repo id (never a download); None when neither."""
    if not where:
        return None
    path = Path(where).expanduser()
    if path.exists():
        return path
    parts = where.strip("/").split("/")
    if len(parts) < 2:
        return None
    try:
        from huggingface_hub import snapshot_download  # diffusers' own dependency

        root = Path(snapshot_download("/".join(parts[:2]), local_files_only=True))
    except Exception:  # not in the cache (or no hub client): that part goes unhashed
        return None
    found = root.joinpath(*parts[2:])
    return found if found.exists() else None


def component_hashes(spec: ModelSpec) -> dict[str, str]:
    """A hash per part that determines the output: the pipeline's folders (UNet, VAE, text encoders,
    tokenizers, scheduler config), a single-file checkpoint, the IP-Adapter weight and its image
    encoder, each LoRA and the face embedder. A part that cannot be found locally is left out."""
    out: dict[str, str] = {}
    base = _local(spec.base)
    parts = base if base is not None and base.is_dir() else None
    if base is not None and base.is_file():
        out["checkpoint"] = file_sha256(base)[:10]
        parts = _local(spec.config)
    if parts is not None and parts.is_dir():
        for name in PIPELINE_PARTS:
            if (parts / name).is_dir():
                out[name] = folder_hash(parts / name)
    if spec.ip_adapter:
        repo = _local(spec.ip_adapter)
        if repo is not None:
            weight = repo / spec.ip_adapter_subfolder / spec.ip_adapter_weight
            if weight.is_file():
                out["ip_adapter"] = file_sha256(weight)[:10]
            folder = spec.image_encoder_folder
            encoder = (_local(spec.image_encoder) if spec.image_encoder
                       else repo / (folder if "/" in folder else Path(spec.ip_adapter_subfolder, folder)))
            if encoder is not None and encoder.is_dir() and _ip_adapter_kind(spec.ip_adapter_weight) != "faceid":
                out["image_encoder"] = folder_hash(encoder)
    for lora in spec.loras:
        path = Path(lora.path).expanduser()
        if path.is_file():
            out[f"lora:{path.name}"] = file_sha256(path)[:10]
    face = _local(spec.face_embedder)
    if face is not None:
        out["face_embedder"] = file_sha256(face)[:10] if face.is_file() else folder_hash(face)
    return out


@dataclass
class LoadedModels:
    """A warm img2img pipeline plus what the record needs to name it."""

    spec: ModelSpec
    family: str
    pipe: Any
    device: torch.device
    dtype: torch.dtype
    model_hash: str
    ip_adapter_kind: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    component_hashes: dict[str, str] = field(default_factory=dict)  # part -> hash (see component_hashes)

    @property
    def model_name(self) -> str:
        return Path(self.spec.base).stem if Path(self.spec.base).exists() else self.spec.base.split("/")[-1]

    def release(self) -> None:
        """Drop the pipeline so its memory can be reclaimed before another model loads."""
        self.pipe = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _pipeline_class(family: str):
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    return StableDiffusionXLImg2ImgPipeline if family == "sdxl" else StableDiffusionImg2ImgPipeline


def _load_base(spec: ModelSpec, family: str, dtype: torch.dtype):
    cls = _pipeline_class(family)
    common: dict[str, Any] = {"dtype": dtype, "use_safetensors": True}
    if family == "sd15":
        common.update(safety_checker=None, requires_safety_checker=False)
    if is_single_file(spec.base):
        if not Path(spec.base).is_file():
            raise ModelError(f"checkpoint file not found: {spec.base}. Put the .safetensors file there or fix the path"
                             f" (or `{model_files.MODELS_CMD} add-folder DIR` and --model NAME)")
        config = spec.config or (SDXL_REPO if family == "sdxl" else SD15_REPO)
        try:
            return cls.from_single_file(spec.base, config=config, local_files_only=offline() or Path(config).is_dir(),
                                        **common)
        except (OSError, ValueError) as exc:
            preset = "sdxl" if family == "sdxl" else "sd15"
            raise ModelError(
                f"cannot load single-file checkpoint {spec.base}: it needs a diffusers config folder of the same "
                f"family ({config}): `{model_files.MODELS_CMD} fetch {preset} --configs-only` caches them (a few kB, "
                f"no weights), or pass a local folder as --config. Cause: {type(exc).__name__}: {exc}"
            ) from exc
    try:
        return cls.from_pretrained(spec.base, local_files_only=offline() or Path(spec.base).is_dir(), **common)
    except (OSError, ValueError) as exc:
        raise _missing("base model", spec.base, exc, spec, "base") from exc


def _ip_adapter_kind(weight: str) -> str:
    name = weight.lower()
    if "faceid" in name:
        return "faceid-plusv2" if "plusv2" in name else "faceid-plus" if "plus" in name else "faceid"
    if "plus-face" in name or "plus_face" in name:
        return "plus-face"
    if "plus" in name:
        return "plus"
    return "plain"


# CLIP vision widths -> attention heads (not readable from the weights): ViT-B/L/H/bigG as released.
CLIP_HEADS = {768: 12, 1024: 16, 1280: 16, 1664: 16}


def clip_vision_config(state: dict[str, torch.Tensor]):
    """A ``CLIPVisionConfig`` read off a transformers-keyed CLIP vision state dict (a single file has none)."""
    from transformers import CLIPVisionConfig  # heavy: loaded with the model, like the other loaders here

    prefix = "vision_model."
    patch = state[prefix + "embeddings.patch_embedding.weight"]
    hidden, patch_size = int(patch.shape[0]), int(patch.shape[-1])
    positions = int(state[prefix + "embeddings.position_embedding.weight"].shape[0]) - 1
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(prefix + "encoder.layers."))
    return CLIPVisionConfig(
        hidden_size=hidden, patch_size=patch_size, image_size=int(round(positions ** 0.5)) * patch_size,
        num_hidden_layers=layers, num_attention_heads=CLIP_HEADS.get(hidden, max(1, hidden // 64)),
        intermediate_size=int(state[prefix + "encoder.layers.0.mlp.fc1.weight"].shape[0]),
        projection_dim=int(state["visual_projection.weight"].shape[0]), hidden_act="gelu", layer_norm_eps=1e-5)


def _encoder_from_file(path: Path, dtype: torch.dtype):
    """A single-file CLIP vision encoder (ComfyUI's ``models/clip_vision``, a converted ``clip_h``), used in place."""
    from safetensors.torch import load_file  # heavy: loaded with the model
    from transformers import CLIPVisionModelWithProjection

    state = load_file(str(path))
    if not any(k.startswith("vision_model.") for k in state):
        raise ModelError(f"{path}: not a CLIP vision encoder in transformers' layout (no vision_model.* keys)")
    encoder = CLIPVisionModelWithProjection(clip_vision_config(state))
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelError(f"{path}: CLIP vision weights do not fit ({len(missing)} missing, {len(unexpected)} "
                         "unexpected keys)")
    return encoder.to(dtype).eval()


def _load_image_encoder(pipe, where: str, dtype: torch.dtype, spec: ModelSpec) -> None:
    """Register a CLIP image encoder from a folder, a .safetensors file or "owner/repo/sub/folder"."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    local = Path(where).expanduser()
    if local.is_file():
        if local.suffix.lower() != ".safetensors":
            raise ModelError(f"{local}: pickled weights are not loaded; convert it once with "
                             f"`{model_files.MODELS_CMD} convert {local}`")
        encoder = _encoder_from_file(local, dtype)
    else:
        if local.is_dir():
            repo, subfolder = str(local), None
        else:
            parts = where.strip("/").split("/")
            repo, subfolder = "/".join(parts[:2]), "/".join(parts[2:]) or None
        try:
            encoder = CLIPVisionModelWithProjection.from_pretrained(repo, subfolder=subfolder or "", dtype=dtype,
                                                                    use_safetensors=True,
                                                                    local_files_only=offline() or local.is_dir())
        except (OSError, ValueError) as exc:
            raise _missing("CLIP image encoder", where, exc, spec, "image-encoder") from exc
    size = int(encoder.config.image_size)
    pipe.register_modules(image_encoder=encoder,
                          feature_extractor=CLIPImageProcessor(size=size, crop_size=size))


def _load_face_embedder(spec: ModelSpec):
    from bump_backend.generate.faceid import ArcFaceEmbedder, FaceEmbedderError

    if not spec.face_embedder:
        raise ModelError(
            f"the FaceID IP-Adapter {spec.ip_adapter_weight} needs face embeddings from an insightface recognition "
            "model: download insightface's buffalo_l model pack once (it contains w600k_r50.onnx), then "
            f"`{model_files.MODELS_CMD} add-folder DIR` with the folder holding it (ComfyUI's models/insightface "
            "is found as is), or pass its file or folder with --face-embedder")
    try:
        return ArcFaceEmbedder(spec.face_embedder)
    except FaceEmbedderError as exc:
        raise ModelError(str(exc)) from exc


def _load_ip_adapter(pipe, spec: ModelSpec, dtype: torch.dtype) -> str | None:
    if not spec.ip_adapter:
        return None
    kind = _ip_adapter_kind(spec.ip_adapter_weight)
    if kind.startswith("faceid"):
        try:
            import peft  # noqa: F401  (without it diffusers skips FaceID's LoRA with only a log line)
        except ImportError as exc:
            raise ModelError("FaceID IP-Adapters need `peft` for their LoRA: pip install peft") from exc
    if spec.image_encoder and kind != "faceid":
        _load_image_encoder(pipe, spec.image_encoder, dtype, spec)
    local = Path(spec.ip_adapter).is_dir()
    encoder_folder = None if kind == "faceid" or spec.image_encoder else spec.image_encoder_folder
    try:
        pipe.load_ip_adapter(
            spec.ip_adapter,
            subfolder=spec.ip_adapter_subfolder,
            weight_name=spec.ip_adapter_weight,
            image_encoder_folder=encoder_folder,
            local_files_only=offline() or local,
        )
    except (OSError, ValueError, KeyError) as exc:
        where = "/".join(p for p in (spec.ip_adapter, spec.ip_adapter_subfolder, spec.ip_adapter_weight) if p)
        what = "IP-Adapter" if encoder_folder is None else "IP-Adapter (with its image_encoder folder)"
        role = "ip-adapter" if encoder_folder is None or fix_hint(spec, "ip-adapter") else "image-encoder"
        raise _missing(what, where, exc, spec, role) from exc
    if kind in ("faceid-plus", "faceid-plusv2") and getattr(pipe, "image_encoder", None) is None:
        raise ModelError(f"the FaceID-plus adapter {spec.ip_adapter_weight} also needs a CLIP image encoder: set "
                         f"--image-encoder (e.g. {IP_ADAPTER_REPO}/models/image_encoder, a local folder or file; "
                         f"`{model_files.MODELS_CMD} fetch sd15` fetches that one)")
    return kind


def _load_loras(pipe, loras: tuple[LoraSpec, ...]) -> list[str]:
    # FaceID adapters bring their own LoRA ("faceid_0"); it must stay active beside the user's.
    active = list(pipe.get_active_adapters()) if loras and getattr(pipe.unet, "peft_config", None) else []
    names = []
    for i, lora in enumerate(loras):
        path = Path(lora.path)
        if path.suffix.lower() in model_files.PICKLE_SUFFIXES and path.is_file():
            raise ModelError(f"LoRA {lora.path} is pickled, which is never loaded. Fix: "
                             f"{model_files.MODELS_CMD} convert {lora.path}")
        if path.suffix != ".safetensors" or not path.is_file():
            raise ModelError(f"LoRA not found or not a .safetensors file: {lora.path}. Fix: give its path, or "
                             f"`{model_files.MODELS_CMD} add-folder DIR` with the folder holding it and --lora NAME")
        name = f"lora{i}_{path.stem}"[:60]
        try:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except ImportError as exc:
            raise ModelError("LoRA loading needs `peft`: pip install peft") from exc
        names.append(name)
    if names:
        pipe.set_adapters(active + names, [1.0] * len(active) + [lora.weight for lora in loras])
    return names


def load_models(spec: ModelSpec) -> LoadedModels:
    """Load the checkpoint, IP-Adapter and LoRAs of ``spec`` onto its device."""
    spec = localize(spec)  # parts found in registered folders, used where they lie
    device = pick_device(spec.device)
    dtype = pick_dtype(spec.dtype, device)
    family = _detect_family(spec)
    extra: dict[str, Any] = {}
    if spec.ip_adapter and not spec.ip_adapter_weight.lower().endswith(".safetensors"):
        where = Path(spec.ip_adapter) / spec.ip_adapter_subfolder / spec.ip_adapter_weight
        raise ModelError(f"IP-Adapter {spec.ip_adapter_weight}: pickled weights are never loaded; convert the file "
                         f"once with `{model_files.MODELS_CMD} convert {where}` and use the .safetensors it writes")
    if _ip_adapter_kind(spec.ip_adapter_weight).startswith("faceid") and spec.ip_adapter:
        extra["face_embedder"] = _load_face_embedder(spec)  # first: its error is the cheapest to hit
    pipe = _load_base(spec, family, dtype)
    kind = _load_ip_adapter(pipe, spec, dtype)
    _load_loras(pipe, spec.loras)
    pipe.to(device)  # diffusers' default attention is PyTorch SDPA
    pipe.set_progress_bar_config(disable=True)
    return LoadedModels(spec=spec, family=family, pipe=pipe, device=device, dtype=dtype,
                        model_hash=model_hash(spec), ip_adapter_kind=kind, extra=extra,
                        component_hashes=component_hashes(spec))


class ModelCache:
    """Keeps one pipeline warm; loading another spec releases the previous one first."""

    def __init__(self) -> None:
        self._current: LoadedModels | None = None
        self._key: tuple | None = None  # the spec as asked for (the loaded one has found paths filled in)

    def get(self, spec: ModelSpec) -> LoadedModels:
        if self._current is not None and self._key == spec.key():
            return self._current
        if self._current is not None:
            self._current.release()
            self._current = None
        self._current = load_models(spec)
        self._key = spec.key()
        return self._current

    def clear(self) -> None:
        if self._current is not None:
            self._current.release()
            self._current = None
