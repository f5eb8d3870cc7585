"""Model files where users keep them: A1111, Forge, ComfyUI installs and the Hugging Face cache.

Tiny real models are laid out exactly as each tool lays them out, registered with ``models
add-folder``, found by ``models list`` and bumped through, used in place (never copied).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from bump_backend.generate import BumpEngine, ModelError, model_files
from bump_backend.generate.models import localize, resolve_spec
from bump_backend.testing import tiny_models as tiny

REPO = Path(__file__).resolve().parents[2]
WEIGHT = "ip-adapter-plus-face_sd15.safetensors"


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bump_backend", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                                **(env or {})})


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    """An empty models config and an empty Hugging Face cache for this test."""
    monkeypatch.setenv("BUMP_STUDIO_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-empty"))
    return {"BUMP_STUDIO_CONFIG": str(tmp_path / "config"), "HF_HUB_CACHE": str(tmp_path / "hf-empty")}


@pytest.fixture(scope="module")
def parts(model_dirs):
    """The tiny model's files as the tools keep them: one checkpoint file, the adapter, the encoder."""
    root = model_dirs["root"]
    checkpoint = root / "layouts-src" / "tiny.safetensors"
    if not checkpoint.exists():
        tiny.build_tiny_single_file(checkpoint, model_dirs["sd15"])
    encoder = model_dirs["ip"] / "models" / "image_encoder"
    return {"checkpoint": checkpoint, "adapter": model_dirs["ip"] / "models" / model_dirs["plus"],
            "encoder_dir": encoder, "encoder_file": encoder / "model.safetensors", "config": model_dirs["sd15"]}


def _put(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def make_a1111(root: Path, parts: dict, forge: bool = False) -> Path:
    """stable-diffusion-webui (or Forge): models/Stable-diffusion, models/Lora, models/ControlNet; the encoder
    as the ControlNet extension's annotator keeps it (A1111, a pickle) or in models/clip_vision (Forge)."""
    (root / ("modules_forge" if forge else "modules")).mkdir(parents=True)
    _put(parts["checkpoint"], root / "models" / "Stable-diffusion" / "v1-5-pruned-emaonly.safetensors")
    _put(parts["adapter"], root / "models" / "ControlNet" / WEIGHT)
    (root / "models" / "ControlNet" / "control_v11p_sd15_canny.safetensors").write_bytes(b"not ours")
    (root / "models" / "Lora").mkdir(parents=True)
    (root / "models" / "VAE").mkdir(parents=True)
    if forge:
        (root / "models" / "ControlNetPreprocessor").mkdir(parents=True)
        _put(parts["encoder_file"], root / "models" / "clip_vision" / "clip_h.safetensors")
    else:
        clip = root / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads" / "clip_vision" / "clip_h.pth"
        clip.parent.mkdir(parents=True)
        torch.save(load_file(str(parts["encoder_file"])), clip)  # the annotator's file is a pickle
    return root


def make_comfyui(root: Path, parts: dict) -> Path:
    (root / "comfy").mkdir(parents=True)
    _put(parts["checkpoint"], root / "models" / "checkpoints" / "v1-5-pruned-emaonly.safetensors")
    _put(parts["adapter"], root / "models" / "ipadapter" / WEIGHT)
    _put(parts["encoder_file"], root / "models" / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    (root / "models" / "loras").mkdir(parents=True)
    (root / "output").mkdir()
    (root / "output" / "ComfyUI_00001_.safetensors").write_bytes(b"outputs are never scanned")
    return root


def make_hf_cache(cache: Path, repo: str, files: dict[str, Path], commit: str = "a" * 40) -> Path:
    """``models--owner--name`` with ``blobs/<sha256>``, ``snapshots/<commit>/<file>`` symlinks and ``refs/main``."""
    repo_dir = cache / ("models--" + repo.replace("/", "--"))
    for name, src in files.items():
        data = src.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo_dir / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return repo_dir


def tree_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


# -- recognising the layouts ------------------------------------------------------------------------------
def test_layouts_are_recognised_and_scanned_in_place(tmp_path, parts):
    a1111 = make_a1111(tmp_path / "stable-diffusion-webui", parts)
    forge = make_a1111(tmp_path / "forge", parts, forge=True)
    comfy = make_comfyui(tmp_path / "ComfyUI", parts)
    assert [model_files.layout_of(r) for r in (a1111, forge, comfy, tmp_path)] == ["a1111", "forge", "comfyui",
                                                                                   "folder"]
    kinds = {p: {(f.path.name, f.kind) for f in model_files.scan_folder(p)} for p in (a1111, forge, comfy)}
    assert kinds[a1111] == {("v1-5-pruned-emaonly.safetensors", "checkpoint"), (WEIGHT, "ip_adapter"),
                            ("clip_h.pth", "clip_vision")}  # the ControlNet model beside the adapter is not ours
    assert kinds[forge] == {("v1-5-pruned-emaonly.safetensors", "checkpoint"), (WEIGHT, "ip_adapter"),
                            ("clip_h.safetensors", "clip_vision")}
    assert kinds[comfy] == {("v1-5-pruned-emaonly.safetensors", "checkpoint"), (WEIGHT, "ip_adapter"),
                            ("CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors", "clip_vision")}
    found = model_files.scan_folder(comfy)
    assert all(str(f.path).startswith(str(comfy)) for f in found)  # where they are, not copies


def test_registered_folders_are_stored_atomically(isolated, tmp_path):
    folder = tmp_path / "any"
    folder.mkdir()
    path, new = model_files.add_folder(folder)
    assert new and path == folder.resolve() and model_files.add_folder(folder) == (path, False)
    doc = json.loads(model_files.config_path().read_text())
    assert doc == {"schema": "bump-studio-models", "version": 1, "folders": [str(path)]}
    assert not [p for p in model_files.config_path().parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(model_files.ContractError, match="not a folder"):
        model_files.add_folder(tmp_path / "missing")
    model_files.config_path().write_text("{broken")
    with pytest.raises(model_files.ContractError, match="models config"):
        model_files.load_folders()


def test_hf_cache_follows_refs_and_honours_the_env(tmp_path, monkeypatch, parts):
    cache = tmp_path / "hub"
    make_hf_cache(cache, "owner/name", {"a/x.safetensors": parts["adapter"]}, commit="1" * 40)
    make_hf_cache(cache, "owner/name", {"a/x.safetensors": parts["encoder_file"]}, commit="2" * 40)  # refs/main
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert model_files.hf_cache_dir() == cache
    hit = model_files.hf_cached("owner/name", "a/x.safetensors")
    assert hit is not None and hit.parent.parent.name == "2" * 40 and hit.is_symlink()
    assert hit.read_bytes() == parts["encoder_file"].read_bytes()
    (cache / "models--owner--name" / "refs" / "main").write_text("1" * 40)
    assert model_files.hf_cached("owner/name", "a/x.safetensors").parent.parent.name == "1" * 40
    assert model_files.hf_cached("owner/name", "a/missing.json") is None
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert model_files.hf_cached("owner/name", "a/x.safetensors") is None


# -- the sd15 preset resolved from each layout, then bumped ------------------------------------------------
def _bump(spec, scene, package_dir, fast_settings):
    image, sidecar = scene
    settings = replace(fast_settings, steps=2)
    engine = BumpEngine(spec)
    result = engine.run(image, package_dir, sidecar, settings)
    assert result.image.shape == image.shape and len(result.face_crops) == 1
    assert not np.array_equal(result.image, image)
    return engine


def test_a1111_needs_its_pickled_encoder_converted_then_bumps(isolated, tmp_path, parts, scene, package_dir,
                                                              fast_settings):
    root = make_a1111(tmp_path / "stable-diffusion-webui", parts)
    before = tree_files(root)
    model_files.add_folder(root)
    spec = resolve_spec("sd15", config=str(parts["config"]), device="cpu")
    with pytest.raises(ModelError) as info:
        BumpEngine(spec)
    clip = root / "extensions/sd-webui-controlnet/annotator/downloads/clip_vision/clip_h.pth"
    assert f"python -m bump_backend models convert {clip}" in str(info.value)

    done = cli("models", "convert", str(clip), env=isolated)
    assert done.returncode == 0, done.stderr
    assert load_file(str(clip.with_suffix(".safetensors"))).keys() == load_file(str(parts["encoder_file"])).keys()
    local = localize(spec)
    assert local.base == str(root / "models/Stable-diffusion/v1-5-pruned-emaonly.safetensors")
    assert local.ip_adapter == str(root / "models/ControlNet") and local.ip_adapter_weight == WEIGHT
    assert local.image_encoder == str(clip.with_suffix(".safetensors"))
    engine = _bump(spec, scene, package_dir, fast_settings)
    assert engine.loaded.model_name == "v1-5-pruned-emaonly"
    assert set(tree_files(root)) == set(before) | {clip.with_suffix(".safetensors").relative_to(root).as_posix()}


def test_forge_bumps_in_place(isolated, tmp_path, parts, scene, package_dir, fast_settings):
    root = make_a1111(tmp_path / "forge", parts, forge=True)
    model_files.add_folder(root)
    spec = resolve_spec("sd15", config=str(parts["config"]), device="cpu")
    assert localize(spec).image_encoder == str(root / "models/clip_vision/clip_h.safetensors")
    _bump(spec, scene, package_dir, fast_settings)


def test_comfyui_from_add_folder_to_bump_on_the_command_line(isolated, tmp_path, parts, scene, package_dir):
    root = make_comfyui(tmp_path / "ComfyUI", parts)
    before = {k: p.stat().st_mtime_ns for k, p in tree_files(root).items()}
    added = cli("models", "add-folder", str(root), env=isolated)
    assert added.returncode == 0, added.stderr
    assert "(comfyui): 1 checkpoint(s), 1 IP-Adapter(s), 1 CLIP vision(s)" in added.stdout
    listed = cli("models", "list", env=isolated)
    assert listed.returncode == 0, listed.stderr
    sd15 = listed.stdout.split("sd15-plain:")[0]
    assert f"base           folder {root.resolve()} (comfyui): {root.resolve()}/models/checkpoints/" in sd15
    assert f"ip-adapter     folder {root.resolve()} (comfyui): {root.resolve()}/models/ipadapter/{WEIGHT}" in sd15
    assert "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors" in sd15
    assert "fix: python -m bump_backend models fetch sd15" in sd15  # only the base's configs are missing

    image, sidecar = scene
    Image.fromarray(image).save(tmp_path / "shot.png")
    (tmp_path / "shot.json").write_text(sidecar.dumps())
    out = tmp_path / "out"
    bumped = cli("bump", str(tmp_path / "shot.png"), "--sidecar", str(tmp_path / "shot.json"), "--package",
                 str(package_dir), "--out", str(out), "--config", str(parts["config"]), "--device", "cpu",
                 "--steps", "2", "--denoise", "0.5", "--face-size", "64", "--seed", "3", env=isolated)
    assert bumped.returncode == 0, bumped.stderr
    record = json.loads((out / "shot_bump.json").read_text())
    assert record["model"]["base"] == f"{root.resolve()}/models/checkpoints/v1-5-pruned-emaonly.safetensors"
    assert record["model"]["image_encoder"].endswith("clip_vision/CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    assert {k: p.stat().st_mtime_ns for k, p in tree_files(root).items()} == before  # nothing moved or written


def test_hf_cache_preset_bumps_by_its_name(tmp_path, parts, model_dirs, scene, package_dir):
    """``--model sd15`` with the hub's files only in a cache laid out as huggingface_hub writes it."""
    cache = tmp_path / "hub"
    sd15 = model_dirs["sd15"]
    # the hub repo's file names: a slow-tokenizer set beside the fast one, and a feature extractor config
    extra = tmp_path / "repo-extra"
    (extra / "tokenizer").mkdir(parents=True)
    (extra / "tokenizer" / "vocab.json").write_text(json.dumps(tiny._tokenizer_vocab()))
    (extra / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    (extra / "tokenizer" / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
         "pad_token": "<|endoftext|>"}))
    (extra / "feature_extractor").mkdir()
    (extra / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps({"crop_size": 224}))
    make_hf_cache(cache, model_files.SD15_REPO, {**tree_files(extra), **tree_files(sd15)})
    ip = {f"models/{k}": p for k, p in tree_files(model_dirs["ip"] / "models").items() if k == model_dirs["plus"]
          or k.startswith("image_encoder/")}
    make_hf_cache(cache, model_files.IP_ADAPTER_REPO, ip)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "BUMP_STUDIO_CONFIG": str(tmp_path / "config")}
    listed = cli("models", "list", env=env)
    assert listed.stdout.startswith("sd15: complete\n"), listed.stdout
    assert "sd15-plain: 1 missing" in listed.stdout  # its own adapter file is not in this cache
    image, sidecar = scene
    Image.fromarray(image).save(tmp_path / "shot.png")
    (tmp_path / "shot.json").write_text(sidecar.dumps())
    bumped = cli("bump", str(tmp_path / "shot.png"), "--sidecar", str(tmp_path / "shot.json"), "--package",
                 str(package_dir), "--out", str(tmp_path / "out"), "--model", "sd15", "--device", "cpu", "--steps", "2",
                 "--denoise", "0.5", "--face-size", "64", env=env)
    assert bumped.returncode == 0, bumped.stderr
    record = json.loads((tmp_path / "out" / "shot_bump.json").read_text())
    assert record["model"]["base"] == model_files.SD15_REPO and record["model"]["ip_adapter"] == "h94/IP-Adapter"


# -- messages, fetch offline, convert, no pickles -------------------------------------------------------------
def test_missing_models_name_the_models_command(isolated, tmp_path):
    env = {**isolated, "HF_HUB_OFFLINE": "1"}
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    done = cli("bump", str(image), "--out", str(tmp_path / "out"), "--device", "cpu", env=env)
    assert done.returncode == 2 and done.stderr.splitlines()[-1].startswith("error: base model not found")
    assert "Fix: python -m bump_backend models fetch sd15" in done.stderr and "huggingface-cli" not in done.stderr
    done = cli("bump", str(image), "--out", str(tmp_path / "out"), "--model", "someone/private-model", env=env)
    assert "Fix: python -m bump_backend models add-folder DIR" in done.stderr


def test_fetch_offline_says_so_in_one_line(isolated):
    done = cli("models", "fetch", "sd15", env={**isolated, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: offline (HF_HUB_OFFLINE=1): 16 file(s) of sd15 not fetched")
    unreachable = cli("models", "fetch", "sdxl", env={**isolated, "HF_ENDPOINT": "http://127.0.0.1:9",
                                                      "HF_HUB_OFFLINE": "0"})
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("error: cannot reach the Hugging Face hub")
    assert unreachable.stderr.count("\n") == 1
    assert cli("models", "fetch", "sd99", env=isolated).returncode == 2


def test_fetch_plans_only_what_is_missing(isolated, tmp_path, parts):
    from bump_backend.generate.models_cli import fetch_plan

    root = make_comfyui(tmp_path / "ComfyUI", parts)
    plan, _ = fetch_plan("sd15")
    assert len(plan) == 16 and (model_files.IP_ADAPTER_REPO, f"models/{WEIGHT}", False) in plan
    model_files.add_folder(root)
    plan, elsewhere = fetch_plan("sd15")
    assert {f for _, f, _ in plan} == set(model_files.BASE_FILES[model_files.SD15_REPO]["configs"]) and not elsewhere
    assert fetch_plan("sd15", configs_only=True)[0] == plan
    plan, elsewhere = fetch_plan("sd15-faceid-plusv2")
    assert ("h94/IP-Adapter-FaceID", "ip-adapter-faceid-plusv2_sd15.bin", True) in plan  # converted once fetched
    assert [item.need.role for item in elsewhere] == ["face-embedder"]


def test_convert_faceid_pickle_to_safetensors(tmp_path):
    state = {"image_proj": {"proj.0.weight": torch.randn(4, 3)}, "ip_adapter": {"1.to_k_ip.weight": torch.ones(2, 2)}}
    source = tmp_path / "ip-adapter-faceid-plusv2_sd15.bin"
    torch.save(state, source)
    done = cli("models", "convert", str(source))
    assert done.returncode == 0, done.stderr
    out = load_file(str(source.with_suffix(".safetensors")))
    assert set(out) == {"image_proj.proj.0.weight", "ip_adapter.1.to_k_ip.weight"}
    assert torch.equal(out["image_proj.proj.0.weight"], state["image_proj"]["proj.0.weight"])
    again = cli("models", "convert", str(source))
    assert again.returncode == 2 and "--force" in again.stderr

    class Payload:  # anything but tensors is refused, never run
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Payload()}, evil)
    refused = cli("models", "convert", str(evil))
    assert refused.returncode == 2 and "refusing to unpickle" in refused.stderr and "pwned" not in refused.stdout
    assert not evil.with_suffix(".safetensors").exists()


def test_no_runtime_code_loads_pickles():
    """Only ``models convert`` unpickles, with weights_only=True; loaders take safetensors only. The one other
    unpickler is ``faces/torch_state.py``, for MTCNN's weights as facenet-pytorch ships them: it resolves only the
    names a state dict of plain tensors needs, so a payload naming anything else is refused before it runs
    (tests/faces/test_faces_mtcnn.py), and the wheel's files are checked against their SHA-256 first."""
    offenders = []
    allowed = {("models_cli.py", "torch.load("), ("torch_state.py", "import pickle")}
    for path in (REPO / "bump_backend").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for needle in ("torch.load(", "pickle.load", "import pickle", "weights_only=False", "use_safetensors=False"):
            if needle in text and (path.name, needle) not in allowed:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []
    source = (REPO / "bump_backend/generate/models_cli.py").read_text()
    calls = [line for line in source.splitlines() if "torch.load(" in line]
    assert calls and all("weights_only=True" in line for line in calls)


def test_pickled_weights_are_refused_with_the_convert_line(spec, tmp_path):
    from bump_backend.generate import LoraSpec

    with pytest.raises(ModelError, match="models convert"):
        BumpEngine(replace(spec, ip_adapter_weight="ip-adapter-faceid-plusv2_sd15.bin"))
    lora = tmp_path / "detail.pt"
    torch.save({"x": torch.ones(1)}, lora)
    with pytest.raises(ModelError, match=f"Fix: python -m bump_backend models convert {lora}"):
        BumpEngine(replace(spec, loras=(LoraSpec(str(lora)),)))


def test_doctor_labels_its_smoke_run(isolated):
    done = cli("models", "doctor", "--device", "cpu", env={**isolated, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("python: 3.11") and lines[1].startswith("torch: ")
    assert any(line.startswith("gpu: none found") for line in lines)
    assert any(line.startswith("disk: hugging face cache:") for line in lines)
    assert "presets complete: none" in done.stdout
    assert lines[-1].startswith("smoke test (tiny random model, not a result): ok on cpu")
    assert "1 face(s), img2img + IP-Adapter plus-face + paste" in lines[-1] and "nothing written" in lines[-1]


def test_bump_and_serve_take_the_same_model_options(tmp_path):
    from bump_backend.cli import build_parser, commands
    from bump_backend.server.cli import config_from_args

    parser = build_parser(commands())
    subcommands = parser._subparsers._group_actions[0]  # the {faces,bump,serve,models,...} action

    def model_flags(name: str) -> set[str]:
        group = next(g for g in subcommands.choices[name]._action_groups if g.title == "model")
        return {o for action in group._group_actions for o in action.option_strings}

    assert model_flags("bump") == model_flags("serve") >= {"--model", "--config", "--lora", "--face-embedder",
                                                            "--image-encoder", "--ip-adapter", "--device"}
    lora = tmp_path / "detail.safetensors"
    args = parser.parse_args(["serve", "--model", str(tmp_path / "tiny.safetensors"), "--config", str(tmp_path),
                              "--lora", f"{lora}:0.6", "--face-embedder", str(tmp_path / "w600k_r50.onnx"),
                              "--device", "cpu", "--data-dir", str(tmp_path / "data")])
    config = config_from_args(args)
    assert config.model.base == str(tmp_path / "tiny.safetensors") and config.model.config == str(tmp_path)
    assert [(x.path, x.weight) for x in config.model.loras] == [(str(lora), 0.6)]
    assert config.model.face_embedder == str(tmp_path / "w600k_r50.onnx") and config.model_name == "tiny.safetensors"
