"""``python -m bump_backend models list|fetch|add-folder|convert|doctor``: from zero to the first bump.

``list`` shows every preset's files and where each was found (a path, a registered A1111, Forge or
ComfyUI folder, the Hugging Face cache) or what fixes it; ``add-folder`` registers an existing
install, used in place; ``fetch`` downloads exactly the missing files of a preset; ``convert``
turns a pickled ``.bin``/``.pth`` into ``.safetensors`` (nothing pickled is loaded at run time);
``doctor`` checks this install, with a smoke run on a tiny built-in model.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bump_backend.generate import model_files
from bump_backend.generate.model_files import Located
from bump_contracts.errors import ContractError

KIND_LABELS = {"checkpoint": "checkpoint", "lora": "LoRA", "ip_adapter": "IP-Adapter", "clip_vision": "CLIP vision",
               "face_embedder": "face embedder"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="find, fetch, register and check model weights",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="models_command", required=True, metavar="{list,fetch,add-folder,convert,doctor}")
    sub.add_parser("list", help="every preset's files: where each was found, or what fixes it")
    fetch = sub.add_parser("fetch", help="download the files a preset still misses (Hugging Face hub)")
    fetch.add_argument("preset", help="sd15, sdxl, sd15-plain, sd15-faceid-plusv2")
    fetch.add_argument("--configs-only", action="store_true",
                       help="only the base model's small config files (for a single-file checkpoint)")
    add = sub.add_parser("add-folder", help="register an A1111, Forge or ComfyUI install (or any folder)")
    add.add_argument("path")
    convert = sub.add_parser("convert", help="turn a pickled .bin/.pth into .safetensors beside it")
    convert.add_argument("file")
    convert.add_argument("--out", default=None, help="output file (default: FILE with .safetensors)")
    convert.add_argument("--force", action="store_true", help="replace an existing output file")
    doctor = sub.add_parser("doctor", help="check Python, torch, GPU, disk and presets; smoke-run a tiny model")
    doctor.add_argument("--no-smoke", action="store_true", help="skip the smoke run on the tiny built-in model")
    doctor.add_argument("--device", default="auto", help="device for the smoke run (auto, cpu, cuda)")
    return parser


def run(args: argparse.Namespace) -> int:
    command = {"list": cmd_list, "fetch": cmd_fetch, "add-folder": cmd_add_folder, "convert": cmd_convert,
               "doctor": cmd_doctor}[args.models_command]
    try:
        return command(args)
    except ContractError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def human(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _presets():
    # models imports torch (the presets are ModelSpecs): only the models command's run gets here
    from bump_backend.generate import models

    return models


def preset_status(name: str, found: list[model_files.FoundFile]) -> list[Located]:
    models = _presets()
    return models.locate_all(models.REGISTRY[name], found)


def _where(item: Located) -> str:
    if item.found is None:
        return "MISSING"
    if item.found.source == "hf-cache":
        return "hf-cache"
    return item.found.source


def cmd_list(_args: argparse.Namespace) -> int:
    models = _presets()
    folders = model_files.load_folders()
    found = model_files.scan_registered(folders)
    for name in models.REGISTRY:
        status = preset_status(name, found)
        missing = [item for item in status if not item.ok]
        print(f"{name}: {'complete' if not missing else f'{len(missing)} missing'}")
        for item in status:
            if item.found is not None:
                print(f"  {item.need.role:<14} {_where(item)}: {item.found.path} ({human(item.found.size)})")
            else:
                what = model_files.describe_need(item.need)
                state = "only pickled, convert it" if item.pickled is not None else "missing"
                print(f"  {item.need.role:<14} {state}: {what}")
                print(f"  {'':<14} fix: {model_files.fix_line(item, name)}")
    print(f"registered folders ({model_files.config_path()}):" if folders else
          f"registered folders: none yet (`{model_files.MODELS_CMD} add-folder DIR`)")
    by_root: dict[str, list[model_files.FoundFile]] = {}
    for item in found:
        by_root.setdefault(item.source, []).append(item)
    for folder in folders:
        layout = model_files.layout_of(folder) if folder.is_dir() else "gone"
        source = f"folder {folder} ({layout})"
        print(f"  {folder} ({layout})")
        for item in by_root.get(source, []):
            note = " (pickled: convert it)" if item.pickled else ""
            print(f"    {KIND_LABELS[item.kind]:<14} {item.path.name} ({human(item.size)}){note}")
    print(f"hugging face cache: {model_files.hf_cache_dir()}")
    return 0


def cmd_add_folder(args: argparse.Namespace) -> int:
    folder, new = model_files.add_folder(args.path)
    found = model_files.scan_folder(folder)
    counts: dict[str, int] = {}
    for item in found:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    listed = ", ".join(f"{counts[k]} {label}(s)" for k, label in KIND_LABELS.items() if k in counts) or \
        "no model files yet"
    print(f"{'registered' if new else 'already registered'}: {folder} ({model_files.layout_of(folder)}): {listed}")
    for item in found:
        if item.pickled:
            print(f"  pickled, not used until converted: `{model_files.MODELS_CMD} convert {item.path}`")
    print(f"see `{model_files.MODELS_CMD} list` for what each preset now finds")
    return 0


# -- fetch ------------------------------------------------------------------------------------------------
def _hub_sha256(repo: str) -> dict[str, str]:
    """The hub's sha256 of each LFS file of ``repo`` (small files have none)."""
    from huggingface_hub import HfApi  # network client: only fetch needs it

    info = HfApi().model_info(repo, files_metadata=True)
    return {s.rfilename: s.lfs.sha256 for s in info.siblings or () if getattr(s, "lfs", None) is not None
            and getattr(s.lfs, "sha256", None)}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_plan(name: str, configs_only: bool = False) -> tuple[list[tuple[str, str, bool]], list[Located]]:
    """(repo, file, convert-after) for every hub file the preset still misses; and the parts not on the hub."""
    plan: list[tuple[str, str, bool]] = []
    elsewhere: list[Located] = []
    for item in preset_status(name, model_files.scan_registered()):
        if item.ok or (configs_only and item.need.role != "base-configs"):
            continue
        if item.need.repo is None:
            elsewhere.append(item)
            continue
        if item.need.convert_from:
            folder = Path(item.need.files[0]).parent.as_posix()
            plan += [(item.need.repo, f"{folder}/{f}" if folder != "." else f, True) for f in item.need.convert_from]
            continue
        plan += [(item.need.repo, f, False) for f in item.need.files
                 if model_files.hf_cached(item.need.repo, f) is None]
    return plan, elsewhere


def cmd_fetch(args: argparse.Namespace) -> int:
    models = _presets()
    if args.preset not in models.REGISTRY:
        print(f"error: unknown preset {args.preset!r} (presets: {', '.join(models.REGISTRY)})", file=sys.stderr)
        return 2
    plan, elsewhere = fetch_plan(args.preset, args.configs_only)
    for item in elsewhere:
        print(f"{item.need.role}: not on the hub; {model_files.fix_line(item, args.preset)}", file=sys.stderr)
    if not plan:
        print(f"{args.preset}: nothing to fetch" + (" (see above)" if elsewhere else ", complete"))
        return 1 if elsewhere else 0
    if models.offline():
        print(f"error: offline (HF_HUB_OFFLINE=1): {len(plan)} file(s) of {args.preset} not fetched; unset it with "
              f"network access, or `{model_files.MODELS_CMD} add-folder DIR` with a folder that has them",
              file=sys.stderr)
        return 2
    from huggingface_hub import hf_hub_download  # network client: only fetch needs it

    sums: dict[str, dict[str, str]] = {}
    for repo in dict.fromkeys(repo for repo, _, _ in plan):
        try:
            sums[repo] = _hub_sha256(repo)
        except Exception as exc:  # no network, DNS, proxy, gated repo: one line, exit 2
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(f"error: cannot reach the Hugging Face hub for {repo} ({type(exc).__name__}: {first[:160]}); "
                  f"offline? run it again with network access, or `{model_files.MODELS_CMD} add-folder DIR`",
                  file=sys.stderr)
            return 2
    for repo, filename, convert_after in plan:
        print(f"fetching {repo}/{filename}", file=sys.stderr)
        path = Path(hf_hub_download(repo, filename))  # resumes a partial download; progress on stderr
        expected = sums[repo].get(filename)
        if expected is not None and sha256_of(path) != expected:
            print(f"error: {repo}/{filename}: checksum differs from the hub's ({expected[:12]}...); the download is "
                  f"corrupt: delete {path.resolve()} and fetch again", file=sys.stderr)
            return 2
        if convert_after:
            convert_file(path, path.with_suffix(".safetensors"), force=True)
    print(f"{args.preset}: fetched {len(plan)} file(s) into {model_files.hf_cache_dir()}")
    return 0


# -- convert ----------------------------------------------------------------------------------------------
def flatten_state(state: object, prefix: str = "") -> dict:
    """Tensors of a (nested) state dict under dotted names: FaceID's ``{"image_proj": {...}, "ip_adapter":
    {...}}`` becomes ``image_proj.*`` / ``ip_adapter.*``, the keys diffusers reads from a safetensors file."""
    import torch  # convert's own dependency

    if isinstance(state, torch.Tensor):
        return {prefix.rstrip("."): state}
    if not isinstance(state, dict):
        return {}
    if not prefix and set(state) == {"state_dict"}:
        return flatten_state(state["state_dict"])
    flat: dict = {}
    for key, value in state.items():
        flat.update(flatten_state(value, f"{prefix}{key}."))
    return flat


def convert_file(source: Path, target: Path, force: bool = False) -> tuple[Path, int]:
    """Load ``source`` with ``torch.load(weights_only=True)`` and write its tensors to ``target`` atomically."""
    import torch  # convert's own dependency
    from safetensors.torch import save_file

    if target.exists() and not force:
        raise ContractError(f"{target} exists: pass --force to replace it", "out")
    try:
        state = torch.load(str(source), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but tensors and plain containers
        raise ContractError(f"{source}: not a plain tensor file ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200]}); refusing to unpickle more than tensors") from None
    flat = {k: v.detach().clone().contiguous() for k, v in flatten_state(state).items()}
    if not flat:
        raise ContractError(f"{source}: no tensors in it")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        save_file(flat, str(tmp), metadata={"format": "pt", "converted_from": source.name})
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target, len(flat)


def cmd_convert(args: argparse.Namespace) -> int:
    source = Path(args.file).expanduser()
    if not source.is_file():
        raise ContractError(f"{source}: no such file", "file")
    if source.suffix.lower() not in model_files.PICKLE_SUFFIXES:
        raise ContractError(f"{source}: expected a pickled .bin, .pth, .pt or .ckpt file", "file")
    target = Path(args.out).expanduser() if args.out else source.with_suffix(".safetensors")
    target, count = convert_file(source, target, args.force)
    print(f"wrote {target} ({count} tensors, {human(target.stat().st_size)})")
    return 0


# -- doctor -----------------------------------------------------------------------------------------------
def smoke_run(device: str = "auto") -> str:
    """The whole pipeline (faces from a sidecar, img2img, IP-Adapter, paste) on a tiny random model in a
    temporary folder that is deleted afterwards: it checks the install, it makes no result."""
    # the engine, torch and the tiny-model builders: only doctor's smoke run loads them
    import numpy as np
    import torch

    from bump_backend.generate import BumpEngine, BumpSettings
    from bump_backend.generate.models import ModelSpec
    from bump_backend.testing import tiny_models as tiny
    from bump_contracts.face_geometry import FaceGeometry
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bump-smoke-") as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        sd15 = tiny.build_tiny_sd15(root / "sd15")
        ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
        package = tiny.build_tiny_package(root / "package")
        engine = BumpEngine(ModelSpec(base=str(sd15), ip_adapter=str(ip_dir), ip_adapter_weight=weight,
                                      device=device), embedder=None)
        rng = np.random.default_rng(0)
        image = np.asarray(rng.integers(0, 255, (96, 96, 3)), dtype=np.uint8)
        geometry = FaceGeometry(head_centre=(48.0, 48.0), right_eye=(40.0, 44.0), left_eye=(56.0, 44.0),
                                face_box=(28.0, 28.0, 68.0, 68.0), roll=0.0, yaw=0.0, pitch=0.0,
                                eye_distance_px=16.0, depth_m=1.0)
        sidecar = RenderSidecar(width=96, height=96, faces=(SidecarFace("smoke", "Smoke", geometry),))
        settings = BumpSettings(prompt="smoke test", steps=2, denoise=0.5, seed=1, face_size=64, cfg=4.0)
        result = engine.run(image, package, sidecar, settings)
        faces, shape, loaded = len(result.face_crops), result.image.shape, engine.loaded
    if faces != 1 or shape != image.shape:
        raise RuntimeError(f"expected 1 face and a {image.shape} image, got {faces} face(s) and {shape}")
    return (f"smoke test (tiny random model, not a result): ok on {loaded.device} in "
            f"{time.perf_counter() - started:.1f} s: {faces} face(s), img2img + IP-Adapter {loaded.ip_adapter_kind} "
            f"+ paste, {shape[1]}x{shape[0]}, nothing written")


def cmd_doctor(args: argparse.Namespace) -> int:
    import torch  # doctor reports on torch itself

    problems = 0
    print(f"python: {platform.python_version()} ({sys.executable})")
    print(f"torch: {torch.__version__}, CUDA build {torch.version.cuda or 'none'}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            print(f"gpu {i}: {torch.cuda.get_device_name(i)}, {free / 2**30:.1f} of {total / 2**30:.1f} GiB free")
        print("precision: fp16 on CUDA" + (", bf16 supported" if torch.cuda.is_bf16_supported() else ""))
        flash = torch.backends.cuda.flash_sdp_enabled()
        print(f"attention: PyTorch scaled_dot_product_attention (flash {'on' if flash else 'off'}, "
              f"memory-efficient {'on' if torch.backends.cuda.mem_efficient_sdp_enabled() else 'off'})")
    else:
        print("gpu: none found (CUDA not available): bumps run on the CPU in float32, very slowly")
        print("precision: fp32 on the CPU")
        print("attention: PyTorch scaled_dot_product_attention (CPU)")
    for label, path in (("hugging face cache", model_files.hf_cache_dir()),
                        *((f"folder {f}", f) for f in model_files.load_folders())):
        probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
        free = shutil.disk_usage(probe).free
        print(f"disk: {label}: {human(free)} free")
    models = _presets()
    found = model_files.scan_registered()
    complete = []
    for name in models.REGISTRY:
        status = preset_status(name, found)
        if all(item.ok for item in status):
            complete.append(name)
    print(f"presets complete: {', '.join(complete) or 'none'} (details: `{model_files.MODELS_CMD} list`)")
    if not args.no_smoke:
        try:
            print(smoke_run(args.device))
        except Exception as exc:  # the point of the smoke run: report any failure in one line
            print(f"smoke test FAILED: {type(exc).__name__}: {exc}")
            problems += 1
    return 1 if problems else 0
