"""Face pass + whole-image pass: our engine vs a plain diffusers loop, side by side in one run.

Ours: faces batched through the UNet together, package embeddings encoded once and cached, a warm
pipeline. Plain: one face at a time through ``pipe(ip_adapter_image=[[views...]])``, which
re-encodes the package's views on every call (what a straightforward script does). Both run the
same steps, sampler, sizes and seeds.

    python benchmarks/bench_bump.py                   # CPU, tiny random model (overhead ratio)
    python benchmarks/bench_bump.py --full --faces 4  # CUDA: full-size random SD 1.5 UNet/VAE, 720 px, fp16

Prints a Markdown table (per-face time, peak memory), the engine's stage timings and a check of
both outputs; the figures live in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bump_backend.testing import tiny_models as tiny


def build_full_sd15(folder: Path) -> Path:
    """A full-size SD 1.5 UNet and VAE with random weights (a small text encoder: it is not timed)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    path = tiny.build_tiny_sd15(folder)
    config = json.loads((path / "unet" / "config.json").read_text())
    config.update(block_out_channels=[320, 640, 1280, 1280], layers_per_block=2, sample_size=64,
                  down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                  up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3, attention_head_dim=8,
                  cross_attention_dim=32)
    UNet2DConditionModel.from_config(config).save_pretrained(path / "unet", safe_serialization=True)
    AutoencoderKL(block_out_channels=[128, 256, 512, 512], in_channels=3, out_channels=3,
                  down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                  latent_channels=4, layers_per_block=2, sample_size=512).save_pretrained(path / "vae",
                                                                                      safe_serialization=True)
    return path


def scene(width: int, height: int, faces: int, face_px: int):
    """A textured image with ``faces`` face squares on a row, and a sidecar giving their geometry."""
    from PIL import Image

    from bump_contracts.face_geometry import FaceGeometry
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    rng = np.random.default_rng(0)
    image = (rng.random((height // 2, width // 2, 3)) * 255).astype(np.uint8)
    image = np.asarray(Image.fromarray(image).resize((width, height)))
    entries = []
    for i in range(faces):
        cx = (i + 0.5) * width / faces
        cy = height / 2
        half = face_px / 2
        geometry = FaceGeometry(head_centre=(cx, cy), right_eye=(cx - face_px * 0.2, cy - face_px * 0.1),
                                left_eye=(cx + face_px * 0.2, cy - face_px * 0.1),
                                face_box=(cx - half, cy - half, cx + half, cy + half), roll=5.0 * i,
                                yaw=-30.0 + 20 * i, pitch=0.0, eye_distance_px=face_px * 0.4, depth_m=2.0)
        entries.append(SidecarFace(f"c{i}", f"C{i}", geometry))
    return np.ascontiguousarray(image), RenderSidecar(width=width, height=height, faces=tuple(entries))


def peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process high-water mark (Linux: KiB)


def plain_loop(engine, image, sidecar, package: Path, settings) -> np.ndarray:
    """The straightforward script: one face at a time, references re-encoded each call."""
    from PIL import Image

    from bump_backend.faces import align_face, combined_mask, find_faces, paste_back
    from bump_backend.generate import samplers
    from bump_contracts.package_manifest import load_package

    pipe = engine.pipe
    manifest = load_package(package)
    fs = settings.face_pass_settings()
    pipe.scheduler = samplers.make_scheduler(fs.sampler, engine._scheduler_config)
    pipe.set_ip_adapter_scale(fs.ip_adapter_scale)
    strength = samplers.img2img_strength(fs.denoise, fs.steps)
    out = image.copy()
    aligned_all = []
    for face in find_faces(image, sidecar).faces:
        views = [Image.open(package / v.file).convert("RGB") for v in manifest.views]  # reloaded every face
        aligned = align_face(image, face, size=settings.face_size)
        aligned_all.append(aligned)
        crop = pipe(prompt=fs.prompt, negative_prompt=fs.negative_prompt, image=Image.fromarray(aligned.crop),
                    strength=strength, num_inference_steps=fs.steps, guidance_scale=fs.cfg,
                    ip_adapter_image=[views], generator=torch.Generator().manual_seed(settings.seed),
                    output_type="np").images[0]
        out = paste_back(out, aligned, np.clip(np.round(crop * 255), 0, 255).astype(np.uint8))
    mask = combined_mask(image.shape, aligned_all)
    whole = pipe(prompt=settings.prompt, negative_prompt=settings.negative_prompt, image=Image.fromarray(out),
                 strength=samplers.img2img_strength(settings.denoise, settings.steps),
                 num_inference_steps=settings.steps, guidance_scale=settings.cfg,
                 ip_adapter_image=[[Image.open(package / v.file).convert("RGB") for v in manifest.views]],
                 generator=torch.Generator().manual_seed(settings.seed), output_type="np").images[0]
    whole = np.clip(np.round(whole * 255), 0, 255).astype(np.uint8)
    m = mask[:, :, None]
    return np.clip(whole * (1 - m) + out * m + 0.5, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full-size SD 1.5 UNet/VAE (CUDA), 720 px faces")
    parser.add_argument("--faces", type=int, default=4)
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bump_backend.generate import BumpEngine, BumpSettings, ModelSpec

    root = Path(tempfile.mkdtemp(prefix="bench_bump_"))
    base = build_full_sd15(root / "sd15") if args.full else tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", base, "plus-face")
    package = tiny.build_tiny_package(root / "package")
    face_size = 720 if args.full else 64
    width, height = (1440, 816) if args.full else (256, 96)
    image, sidecar = scene(width, height, args.faces, face_px=160 if args.full else 40)
    from bump_backend.faces import find_faces

    found = find_faces(image, sidecar)
    if len(found.faces) != args.faces:  # a skipped face would leave the face pass out of the timing
        sys.exit(f"the scene's faces were not all bumpable: {found.skipped}")
    spec = ModelSpec(base=str(base), ip_adapter=str(ip_dir), ip_adapter_weight=weight)
    t = time.perf_counter()
    engine = BumpEngine(spec)
    load_s = time.perf_counter() - t
    device = engine.loaded.device
    settings = BumpSettings(prompt="photo of a person", steps=args.steps, sampler="Restart", seed=1,
                            face_size=face_size, batch_size=args.faces, max_side=max(width, height))
    rows, outputs = [], []
    for name, fn in (("plain diffusers loop", lambda: plain_loop(engine, image, sidecar, package, settings)),
                     ("ours (batched, cached refs)", lambda: engine.run(image, package, sidecar, settings))):
        fn()  # warm-up (first CUDA kernels, first package encoding for ours)
        peak_reset(device)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        best = min(times)
        rows.append((name, best, best / args.faces, peak_mib(device)))
        outputs.append(out)
    ours, plain = rows[1][1], rows[0][1]
    print(f"\ndevice: {device} ({engine.loaded.dtype}), threads {args.threads}, model: "
          f"{'full-size random SD 1.5 UNet/VAE' if args.full else 'tiny random SD 1.5'}, {args.faces} faces at "
          f"{face_size} px + whole image {width}x{height}, {args.steps} steps Restart denoise 0.4, load {load_s:.1f} s")
    print("\n| pipeline | total s | per face s | peak MiB |\n|---|---:|---:|---:|")
    for name, total, per_face, peak in rows:
        print(f"| {name} | {total:.2f} | {per_face:.3f} | {peak:.0f} |")
    print(f"\nspeed-up (plain / ours): {plain / ours:.2f}x")
    print(f"ours, last run's stages (s): {outputs[1].record.timings}")
    for (name, *_), out in zip(rows, outputs, strict=True):
        print(f"{name}: {output_check(image, out if isinstance(out, np.ndarray) else out.image)}")


def output_check(before: np.ndarray, after: np.ndarray) -> str:
    """What the output looks like in numbers: a half-precision overflow shows as black or flat pixels."""
    change = np.abs(after.astype(np.int16) - before.astype(np.int16)).mean()
    black = float(np.mean(after.max(axis=2) == 0))
    return f"mean |change| {change:.1f} of 255, output std {after.std():.1f}, black pixels {black:.1%}"


if __name__ == "__main__":
    main()
