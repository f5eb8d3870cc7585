"""Package render speed and quality: the project's preset vs Blender's default Cycles settings.

Renders the same 8 views of the demo character with each preset in one run, plus a
high-sample reference, and prints seconds per view and PSNR against the reference (whole
image, and over the character only, where the flat backdrop cannot flatter the score).

    python benchmarks/bench_package.py [--resolution 720] [--views 8] [--out out/bench_package]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(Path("out/.blender_user").resolve()))

from profile_rig.package_render import PackageOptions
from profile_rig.phenotype import PRESETS as PHENOTYPES
from profile_rig.png_io import read_png
from profile_rig.render_presets import BLENDER_DEFAULT, FAST, REFERENCE
from profile_rig.scene_session import prepare_scene
from profile_rig.views import resolve_views

EIGHT_VIEWS = "front,three_quarter_left,three_quarter_right,profile_left,profile_right,over_shoulder_left,over_shoulder_right,up"


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        diff = diff[mask]
    mse = float(diff.mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def render(preset, views, resolution, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    session = prepare_scene(demo=PHENOTYPES["demo_man"], subdivision=preset.subdivision)
    options = PackageOptions(views=views, resolution=(resolution, resolution), preset=preset, overwrite=True)
    started = time.perf_counter()
    result = session.render(out, options, lambda i, n, name, s: print(f"  {preset.name} [{i}/{n}] {name}: {s:.1f} s", file=sys.stderr, flush=True))
    print(f"{preset.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return result.seconds_per_view


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=720)
    parser.add_argument("--views", type=int, default=8, help="how many of the 8 benchmark views to render")
    parser.add_argument("--out", default="out/bench_package")
    parser.add_argument("--skip-reference", action="store_true", help="reuse an earlier reference render in --out")
    args = parser.parse_args()
    views = resolve_views(EIGHT_VIEWS)[: args.views]
    out = Path(args.out)
    timings = {}
    for preset in (FAST, BLENDER_DEFAULT):
        timings[preset.name] = render(preset, views, args.resolution, out / preset.name)
    if not args.skip_reference or not (out / "reference" / "package.json").exists():
        timings["reference"] = render(REFERENCE, views, args.resolution, out / "reference")

    backdrop = None
    rows = []
    for view in views:
        ref = read_png(out / "reference" / f"{view.name}.png")
        if backdrop is None:
            backdrop = ref[0, 0]
        character = np.any(ref != backdrop, axis=-1)
        row = {"view": view.name}
        for name in ("fast", "blender_default"):
            image = read_png(out / name / f"{view.name}.png")
            row[f"{name}_s"] = timings[name][view.name]
            row[f"{name}_psnr"] = psnr(image, ref)
            row[f"{name}_psnr_char"] = psnr(image, ref, character)
        rows.append(row)

    header = "| view | ours s | ours PSNR dB (all / character) | Blender default s | default PSNR dB (all / character) | speed-up |"
    print(f"\nresolution {args.resolution}px, {len(views)} views, reference = {REFERENCE.samples} samples + OIDN accurate\n")
    print(header)
    print("|" + "---|" * 6)
    for r in rows:
        print(
            f"| {r['view']} | {r['fast_s']:.1f} | {r['fast_psnr']:.1f} / {r['fast_psnr_char']:.1f} | "
            f"{r['blender_default_s']:.1f} | {r['blender_default_psnr']:.1f} / {r['blender_default_psnr_char']:.1f} | "
            f"{r['blender_default_s'] / r['fast_s']:.1f}x |"
        )
    ours = sum(r["fast_s"] for r in rows)
    default = sum(r["blender_default_s"] for r in rows)
    print(
        f"| **total** | **{ours:.1f}** | min {min(r['fast_psnr'] for r in rows):.1f} / {min(r['fast_psnr_char'] for r in rows):.1f} | "
        f"**{default:.1f}** | min {min(r['blender_default_psnr'] for r in rows):.1f} / {min(r['blender_default_psnr_char'] for r in rows):.1f} | "
        f"**{default / ours:.1f}x** |"
    )
    (out / "results.json").write_text(json.dumps({"rows": rows, "timings": timings}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
