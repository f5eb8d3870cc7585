"""Where a preset's files are on this machine: a path, a registered folder, or the Hugging Face cache.

Most users already keep their weights in an A1111, Forge or ComfyUI install. ``models add-folder``
registers such a folder (or any folder) in a small JSON file; this module scans registered folders
for checkpoints, LoRAs, IP-Adapters, CLIP vision encoders and insightface models by the names and
folders those tools use, and finds hub files in the Hugging Face cache (``snapshots/`` + ``refs/``).
Files are used where they are, never copied. Plain Python (no torch), so listing and resolving
are quick and tested without loading anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_contracts.atomic_io import write_bytes_atomic
from bump_contracts.errors import ContractError

CONFIG_SCHEMA = "bump-studio-models"
CONFIG_VERSION = 1
MODELS_CMD = "python -m bump_backend models"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt")
SKIP_DIRS = {"venv", ".venv", "outputs", "output", "input", "temp", "tmp", "log", "logs", "node_modules",
             "__pycache__", "repositories", "embeddings", "vae", "vae_approx", "upscale_models", "ESRGAN",
             "RealESRGAN", "GFPGAN", "Codeformer", "hypernetworks", "unet", "diffusion_models", "text_encoders",
             "clip", "controlnet_aux"}
MAX_DEPTH = 8

SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_REPO = "stabilityai/stable-diffusion-xl-base-1.0"
IP_ADAPTER_REPO = "h94/IP-Adapter"
FACEID_REPO = "h94/IP-Adapter-FaceID"

_TOKENIZER = ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
# Per base repo: the small config files (enough for a single-file checkpoint), the weights of the
# diffusers layout, and the names its single-file release has in the tools' checkpoint folders.
BASE_FILES: dict[str, dict[str, tuple[str, ...]]] = {
    SD15_REPO: {
        "configs": ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                    *(f"tokenizer/{n}" for n in _TOKENIZER), "unet/config.json", "vae/config.json",
                    "feature_extractor/preprocessor_config.json"),
        "weights": ("text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                    "vae/diffusion_pytorch_model.safetensors"),
        "single": ("v1-5-pruned-emaonly.safetensors", "v1-5-pruned.safetensors",
                   "v1-5-pruned-emaonly-fp16.safetensors"),
    },
    SDXL_REPO: {
        "configs": ("model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                    "text_encoder_2/config.json", *(f"tokenizer/{n}" for n in _TOKENIZER),
                    *(f"tokenizer_2/{n}" for n in _TOKENIZER), "unet/config.json", "vae/config.json"),
        "weights": ("text_encoder/model.safetensors", "text_encoder_2/model.safetensors",
                    "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"),
        "single": ("sd_xl_base_1.0.safetensors", "sd_xl_base_1.0_0.9vae.safetensors"),
    },
}
# The ViT-H image encoder of h94/IP-Adapter under the names the tools give it.
CLIP_H_NAMES = ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "clip_vision_h.safetensors",
                "clip-vit-h-14.safetensors", "clip_h.safetensors", "clip_h.pth", "ip-adapter_image_encoder.safetensors")
FACE_EMBEDDER_NAMES = ("w600k_r50.onnx",)

# Folder kinds: what the tools call the folder a file sits in.
KIND_FOLDERS = {
    "checkpoint": {"stable-diffusion", "checkpoints"},
    "lora": {"lora", "loras", "lycoris"},
    "ip_adapter": {"ipadapter", "ip-adapter", "ip_adapter", "controlnet"},
    "clip_vision": {"clip_vision", "image_encoder", "clipvision"},
    "face_embedder": {"insightface", "buffalo_l", "antelopev2"},
}


# -- the registered folders -------------------------------------------------------------------------------
def config_path() -> Path:
    """``$BUMP_STUDIO_CONFIG/models.json`` (a folder), else ``$XDG_CONFIG_HOME`` or ``~/.config``."""
    base = os.environ.get("BUMP_STUDIO_CONFIG")
    if base:
        return Path(base).expanduser() / "models.json"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg).expanduser() / "bump_studio" / "models.json"


def load_folders(path: Path | None = None) -> list[Path]:
    """The registered folders, in the order they were added (a missing file: none)."""
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ContractError(f"{path}: not a readable models config ({exc}); fix or delete it") from None
    if not isinstance(data, dict) or data.get("schema") != CONFIG_SCHEMA or not isinstance(data.get("folders"), list):
        raise ContractError(f"{path}: not a {CONFIG_SCHEMA} file; fix or delete it")
    return [Path(str(item)) for item in data["folders"]]


def save_folders(folders: Iterable[Path], path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"schema": CONFIG_SCHEMA, "version": CONFIG_VERSION, "folders": [str(f) for f in folders]}
    return write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode("utf-8"))


def add_folder(folder: str | Path, path: Path | None = None) -> tuple[Path, bool]:
    """Register ``folder`` (absolute, resolved); (its path, whether it was new)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ContractError(f"{folder}: not a folder", "path")
    folder = folder.resolve()
    folders = load_folders(path)
    if folder in folders:
        return folder, False
    save_folders([*folders, folder], path)
    return folder, True


# -- scanning a folder --------------------------------------------------------------------------------
def layout_of(root: Path) -> str:
    """``a1111``, ``forge``, ``comfyui`` or ``folder``, from the folders each tool creates."""
    models = root / "models"
    if (models / "checkpoints").is_dir() and ((root / "comfy").is_dir() or (models / "clip_vision").is_dir()
                                              or (models / "loras").is_dir()):
        return "comfyui"
    if (models / "Stable-diffusion").is_dir():
        if (root / "modules_forge").is_dir() or (models / "ControlNetPreprocessor").is_dir():
            return "forge"
        return "a1111"
    return "folder"


@dataclass(frozen=True)
class FoundFile:
    """A model file (or a diffusers folder) found on disk, with the kind of model it is."""

    path: Path
    kind: str  # checkpoint | lora | ip_adapter | clip_vision | face_embedder
    source: str  # "folder <root> (a1111)", "hf-cache", "path"

    @property
    def size(self) -> int:
        return tree_size(self.path)

    @property
    def pickled(self) -> bool:
        return self.path.suffix.lower() in PICKLE_SUFFIXES


def tree_size(path: Path) -> int:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def _kind_of(path: Path, root: Path) -> str | None:
    name = path.name.lower()
    parts = {p.lower() for p in path.relative_to(root).parts[:-1]}
    if path.suffix.lower() == ".onnx":
        return "face_embedder" if name in FACE_EMBEDDER_NAMES else None
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        return None
    if name.startswith(("ip-adapter", "ip_adapter")) and "image_encoder" not in name:
        return "ip_adapter"
    if parts & KIND_FOLDERS["clip_vision"] or name in {n.lower() for n in CLIP_H_NAMES}:
        return "clip_vision"
    if parts & KIND_FOLDERS["lora"]:
        return "lora"
    if parts & KIND_FOLDERS["checkpoint"]:
        return "checkpoint"
    if parts & {"controlnet", "ipadapter"}:
        return None  # ControlNet models beside the IP-Adapters: not ours
    return "checkpoint" if path.suffix.lower() == ".safetensors" else None


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                       and len(here.parts) - base_depth < MAX_DEPTH]
        yield here, dirnames, filenames


def _scan_roots(root: Path, layout: str) -> list[Path]:
    """The sub-folders of a tool's install that hold models (never its outputs or its venv)."""
    if layout == "folder":
        return [root]
    roots = [root / "models"]
    if layout in ("a1111", "forge"):
        cn = root / "extensions" / "sd-webui-controlnet"
        roots += [cn / "models", cn / "annotator" / "downloads"]
    return [r for r in roots if r.is_dir()]


def scan_folder(root: Path) -> list[FoundFile]:
    """Every model file of a registered folder, with its kind; diffusers folders count as one file."""
    root = Path(root)
    layout = layout_of(root)
    source = f"folder {root} ({layout})"
    found: list[FoundFile] = []
    for top in _scan_roots(root, layout):
        for here, dirnames, filenames in _walk(top):
            if "model_index.json" in filenames:
                found.append(FoundFile(here, "checkpoint", source))
                dirnames[:] = []
                continue
            if "config.json" in filenames and "model.safetensors" in filenames and _is_clip_vision(here / "config.json"):
                found.append(FoundFile(here, "clip_vision", source))
                dirnames[:] = []
                continue
            for name in sorted(filenames):
                kind = _kind_of(here / name, top)
                if kind is not None:
                    found.append(FoundFile(here / name, kind, source))
    return found


def _is_clip_vision(config: Path) -> bool:
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any("CLIPVision" in str(a) for a in data.get("architectures") or ()) or data.get("model_type") == \
        "clip_vision_model"


def scan_registered(folders: Iterable[Path] | None = None) -> list[FoundFile]:
    found: list[FoundFile] = []
    for folder in load_folders() if folders is None else folders:
        if folder.is_dir():
            found += scan_folder(folder)
    return found


# -- the Hugging Face cache -----------------------------------------------------------------------------
def hf_cache_dir() -> Path:
    """``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (read now, not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                                            / "huggingface")
    return Path(home).expanduser() / "hub"


def hf_cached(repo: str, filename: str, revision: str = "main") -> Path | None:
    """The snapshot path of ``repo``'s ``filename`` in the cache: the ``refs/<revision>`` commit first,
    then any other snapshot that has it (newest first)."""
    repo_dir = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    order: list[Path] = []
    ref = repo_dir / "refs" / revision
    if ref.is_file():
        order.append(snapshots / ref.read_text(encoding="utf-8").strip())
    others = sorted((p for p in snapshots.iterdir() if p.is_dir() and p not in order),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for snap in order + others:
        candidate = snap / filename
        if candidate.exists():  # a symlink into blobs/ that resolves
            return candidate
    return None


# -- what a preset needs ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Need:
    """One part of a pipeline: the hub files that make it, or a file found by name in the user's folders."""

    role: str  # base | base-configs | ip-adapter | image-encoder | face-embedder
    repo: str | None  # the hub repo publishing it (None: not on the hub)
    files: tuple[str, ...]  # its files in that repo
    kind: str  # the folder kind it can come from (checkpoint, ip_adapter, clip_vision, face_embedder)
    names: tuple[str, ...] = ()  # the file names it has in the tools' folders
    path: str | None = None  # an explicit local path (the user gave one)
    convert_from: tuple[str, ...] = ()  # pickled releases of it that `models convert` turns into `names`


@dataclass
class Located:
    need: Need
    found: FoundFile | None = None
    pickled: FoundFile | None = None  # only a pickle found: it needs `models convert`
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found is not None


def _is_local(value: str) -> bool:
    return value.startswith((".", "/", "~")) or "\\" in value or Path(value).expanduser().exists() \
        or value.count("/") != 1


def _is_local_path(value: str) -> bool:
    """A path rather than "owner/repo/sub/folder" on the hub."""
    return value.startswith((".", "/", "~")) or "\\" in value or ":" in value or Path(value).expanduser().exists()


def needs_of(spec: Any) -> list[Need]:
    """The parts a :class:`~bump_backend.generate.models.ModelSpec` needs, each a hub file set or a path."""
    needs: list[Need] = []
    base = spec.base
    if _is_local(base):
        needs.append(Need("base", None, (), "checkpoint", path=base))
        if base.lower().endswith(".safetensors"):
            config = spec.config or (SDXL_REPO if spec.family == "sdxl" else SD15_REPO)
            if _is_local(config):
                needs.append(Need("base-configs", None, (), "checkpoint", path=config))
            elif config in BASE_FILES:
                needs.append(Need("base-configs", config, BASE_FILES[config]["configs"], "configs"))
    elif base in BASE_FILES:
        files = BASE_FILES[base]
        needs.append(Need("base-configs", base, files["configs"], "configs"))
        needs.append(Need("base", base, files["weights"], "checkpoint", names=files["single"]))
    else:
        needs.append(Need("base", base, ("model_index.json",), "checkpoint"))
    if spec.ip_adapter:
        weight = "/".join(p for p in (spec.ip_adapter_subfolder, spec.ip_adapter_weight) if p)
        stem = Path(spec.ip_adapter_weight).stem
        pickles = (f"{stem}.bin",) if "faceid" in stem.lower() else ()
        if _is_local(spec.ip_adapter):
            needs.append(Need("ip-adapter", None, (), "ip_adapter", path=str(Path(spec.ip_adapter) / weight)))
        else:
            needs.append(Need("ip-adapter", spec.ip_adapter, (weight,), "ip_adapter",
                              names=(spec.ip_adapter_weight,), convert_from=pickles))
        faceid = "faceid" in stem.lower()
        encoder = spec.image_encoder
        if encoder is not None and (not faceid or "plus" in stem.lower()):
            if _is_local_path(encoder):
                needs.append(Need("image-encoder", None, (), "clip_vision", path=encoder))
            else:
                parts = encoder.strip("/").split("/")
                repo, folder = "/".join(parts[:2]), "/".join(parts[2:])
                needs.append(Need("image-encoder", repo, (f"{folder}/config.json", f"{folder}/model.safetensors"),
                                  "clip_vision", names=CLIP_H_NAMES))
        elif encoder is None and not faceid and not _is_local(spec.ip_adapter):
            folder = spec.image_encoder_folder if "/" in spec.image_encoder_folder else \
                "/".join(p for p in (spec.ip_adapter_subfolder, spec.image_encoder_folder) if p)
            needs.append(Need("image-encoder", spec.ip_adapter, (f"{folder}/config.json", f"{folder}/model.safetensors"),
                              "clip_vision", names=CLIP_H_NAMES))
        if "faceid" in stem.lower():
            if spec.face_embedder:
                needs.append(Need("face-embedder", None, (), "face_embedder", path=spec.face_embedder))
            else:
                needs.append(Need("face-embedder", None, (), "face_embedder", names=FACE_EMBEDDER_NAMES))
    return needs


def locate(need: Need, found: list[FoundFile] | None = None) -> Located:
    """Where ``need`` is: its explicit path, else the HF cache (every file), else a registered folder."""
    if need.path is not None:
        path = Path(need.path).expanduser()
        return Located(need, FoundFile(path, need.kind, "path") if path.exists() else None)
    if need.repo is not None and need.files:
        hits = [hf_cached(need.repo, f) for f in need.files]
        if all(hits):
            top = _common_parent([h for h in hits if h is not None], len(need.files))
            return Located(need, FoundFile(top, need.kind, "hf-cache"))
    found = scan_registered() if found is None else found
    wanted = {n.lower() for n in need.names}
    for item in found:
        if item.kind == need.kind and item.path.name.lower() in wanted and not item.pickled:
            return Located(need, item)
    if need.kind == "clip_vision":  # a CLIP vision folder (transformers layout) under any name
        for item in found:
            if item.kind == "clip_vision" and item.path.is_dir():
                return Located(need, item)
    pickled_names = {n.lower() for n in need.convert_from} | {Path(n).stem.lower() + ext for n in wanted
                                                               for ext in PICKLE_SUFFIXES}
    for item in found:
        if item.pickled and item.path.name.lower() in pickled_names:
            return Located(need, None, pickled=item)
    if need.repo is not None:
        for name in need.convert_from:
            hit = hf_cached(need.repo, name)
            if hit is not None:
                return Located(need, None, pickled=FoundFile(hit, need.kind, "hf-cache"))
    return Located(need)


def _common_parent(paths: list[Path], count: int) -> Path:
    """The file itself for one file, else the snapshot folder the files share."""
    if count == 1:
        return paths[0]
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def find_named(name: str, kind: str, found: list[FoundFile] | None = None) -> FoundFile | None:
    """A registered file by its name or stem (``--model realisticVision``, ``--lora detail``)."""
    found = scan_registered() if found is None else found
    lower = name.lower()
    for item in found:
        if item.kind == kind and not item.pickled and lower in (item.path.name.lower(), item.path.stem.lower()):
            return item
    return None


# -- what fixes a missing part ----------------------------------------------------------------------------
def fix_line(located: Located, preset: str | None) -> str:
    """The one command that makes ``located`` found."""
    need = located.need
    if located.pickled is not None:
        return f"{MODELS_CMD} convert {located.pickled.path}"
    if need.path is not None:
        return f"put the file at {need.path}, or `{MODELS_CMD} add-folder DIR` and name the file"
    if need.repo is not None and preset is not None:
        return f"{MODELS_CMD} fetch {preset}"
    return f"{MODELS_CMD} add-folder DIR  (DIR: your A1111, Forge or ComfyUI folder, or any folder holding it)"


def describe_need(need: Need) -> str:
    if need.path is not None:
        return need.path
    if need.repo is not None:
        shown = need.files[0] if len(need.files) == 1 else f"{len(need.files)} files"
        return f"{need.repo} ({shown})"
    return " or ".join(need.names)
