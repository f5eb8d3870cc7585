"""The model options ``bump`` and ``serve`` share: one definition, so the same flag means the same thing.

``--model`` takes a preset (sd15, sdxl, ...), a hub id, a diffusers folder, a ``.safetensors``
checkpoint (with ``--config`` for its diffusers configs), a checkpoint's name in a registered
folder, or a ``.json`` ModelSpec. Parsing stays torch-free; the spec is built in ``spec_from_args``.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from bump_backend.generate import model_files


def add_model_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    group = parser.add_argument_group("model", "which weights (see `python -m bump_backend models list`)")
    group.add_argument("--model", default=None,
                       help="preset (sd15, sdxl, sd15-plain, sd15-faceid-plusv2), hub id, diffusers folder, "
                            ".safetensors checkpoint (a path, or its name in a registered folder), or a .json "
                            "ModelSpec (default: sd15)")
    group.add_argument("--config", default=None, help="diffusers config folder or hub id for a single-file checkpoint")
    group.add_argument("--ip-adapter", default=None, help="IP-Adapter repo id or folder ('none' to disable)")
    group.add_argument("--ip-adapter-weight", default=None, help="weight file name inside its subfolder")
    group.add_argument("--ip-adapter-subfolder", default=None, help="subfolder of the weight ('' for the top)")
    group.add_argument("--image-encoder", default=None,
                       help="CLIP image encoder: folder, .safetensors file or owner/repo/sub/folder")
    group.add_argument("--face-embedder", default=None,
                       help="FaceID: insightface recognition model (buffalo_l's w600k_r50.onnx or its folder)")
    group.add_argument("--lora", action="append", default=[], metavar="FILE[:WEIGHT]",
                       help="LoRA .safetensors (a path, or its name in a registered folder), optional :weight "
                            "(repeatable)")
    group.add_argument("--device", default=None, help="cuda, cpu or auto")
    return parser


def parse_lora(item: str) -> tuple[str, float]:
    """``FILE[:WEIGHT]`` (a Windows drive colon is part of the path); a bare name is looked up in the folders."""
    path, sep, weight = item.rpartition(":")
    if not (sep and re.fullmatch(r"-?\d+(\.\d+)?", weight)):
        path, weight = item, "1.0"
    if not Path(path).expanduser().exists() and "/" not in path and "\\" not in path:
        found = model_files.find_named(path, "lora")
        if found is not None:
            path = str(found.path)
    return path, float(weight)


def model_name(model: str | None) -> str:
    """The model as the user named it, for health and logs: a preset or hub id as is, a path by its file name."""
    if not model:
        return "sd15"
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")) or "\\" in model:
        return path.name
    return model


def spec_from_args(args: argparse.Namespace) -> Any:
    """The ``ModelSpec`` the options ask for (no weights load here)."""
    # models imports torch: only commands that load a model get here
    from bump_backend.generate.models import LoraSpec, ModelSpec, resolve_spec

    model: Any = args.model
    if isinstance(model, str) and model.endswith(".json"):
        try:
            model = ModelSpec.from_dict(json.loads(Path(model).expanduser().read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"--model {args.model}: not a readable ModelSpec JSON ({exc})") from None
    loras = tuple(LoraSpec(*parse_lora(item)) for item in args.lora)
    overrides = {"config": args.config, "ip_adapter_weight": args.ip_adapter_weight, "device": args.device,
                 "loras": loras or None, "ip_adapter_subfolder": args.ip_adapter_subfolder,
                 "image_encoder": args.image_encoder, "face_embedder": args.face_embedder}
    spec = resolve_spec(model, **overrides)
    if args.ip_adapter is not None:
        spec = replace(spec, ip_adapter=None if args.ip_adapter.lower() == "none" else args.ip_adapter)
    return spec
