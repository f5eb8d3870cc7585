"""Tiny test models at real image sizes: the 8x VAE (SD 1.5's ratio) against the earlier 2x one.

Both tiny SD 1.5 pipelines are built in the same run with the same UNet, text encoder and seed; only
the VAE differs (four levels, latents 1/8 of the image side, against two levels, 1/2). One bump
each (whole-image pass, IP-Adapter plus-face, the workflow's Restart sampler) at each size.

    python benchmarks/bench_tiny_sizes.py --quick     # 512x384, both VAEs (the 2x one takes about 10 minutes)
    python benchmarks/bench_tiny_sizes.py             # and 1024x768 with the 8x VAE (the 2x one is not run
                                                      # there: self-attention over 49k latent tokens, hours)

Prints a Markdown table (seconds per bump, latent size, ratio) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bump_backend.generate import BumpEngine, BumpSettings, ModelSpec
from bump_backend.testing import tiny_models as tiny


def _engine(root: Path, levels: int) -> BumpEngine:
    base = tiny.build_tiny_sd15(root / f"sd15_vae{levels}", vae_levels=levels)
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / f"ip{levels}", base, "plus-face")
    return BumpEngine(ModelSpec(base=str(base), ip_adapter=str(ip_dir), ip_adapter_weight=weight, device="cpu"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="512x384 only")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [(512, 384)] if args.quick else [(512, 384), (1024, 768)]
    rng = np.random.default_rng(0)
    settings = BumpSettings(seed=1, steps=args.steps, denoise=0.5, face_pass=False, max_side=2048)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = tiny.build_tiny_package(root / "package")
        engines = {levels: _engine(root, levels) for levels in (4, 2)}
        for width, height in sizes:
            image = (rng.random((height, width, 3)) * 255).astype(np.uint8)
            seconds = {}
            for levels, engine in engines.items():
                if levels == 2 and width > 512:
                    continue
                engine.run(image[:64, :64], package, None, settings)  # warm: references encoded, kernels ready
                t = time.perf_counter()
                result = engine.run(image, package, None, settings)
                seconds[levels] = time.perf_counter() - t
                assert result.image.shape == image.shape
            rows.append((width, height, seconds[4], seconds.get(2)))
    print(f"torch threads {args.threads}, {args.steps} steps at denoise 0.5 (Restart), whole pass, CPU")
    print("| image | 8x VAE (latent) s | 2x VAE (latent) s | ratio |")
    print("| --- | --- | --- | --- |")
    for width, height, new, old in rows:
        before = "not run" if old is None else f"{old:.2f}"
        ratio = "-" if old is None else f"{old / new:.1f}x"
        print(f"| {width}x{height} | {new:.2f} ({width // 8}x{height // 8}) | {before} ({width // 2}x{height // 2}) "
              f"| {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
