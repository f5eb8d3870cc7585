"""Package render speed and quality: the project's preset vs Blender's default Cycles settings.

Renders 8 views of the demo character with the project's preset, and the same views (all, or
the subset given by --baseline-views, since Blender's defaults take minutes per view on two
cores) with Blender's default Cycles settings and a high-sample reference, in one run. Prints
wall and CPU seconds per view (CPU seconds / cores estimates an idle machine when others share
it) and PSNR against the reference (whole image, and over the character only, where the flat
backdrop cannot flatter the score).

    python benchmarks/bench_package.py [--resolution 720] [--views 8] [--baseline-views all|N]
    python benchmarks/bench_package.py --posing [--quick]   # posed views vs the same views unposed
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(Path("out/.blender_user").resolve()))

from bump_contracts.views import resolve_views
from profile_rig.blender.package_render import PackageOptions
from profile_rig.blender.scene_session import prepare_scene
from profile_rig.core.phenotype import PRESETS as PHENOTYPES
from profile_rig.core.render_presets import BLENDER_DEFAULT, FAST, REFERENCE
from profile_rig.imaging.png_io import read_png

EIGHT_VIEWS = "front,three_quarter_left,three_quarter_right,profile_left,profile_right,over_shoulder_left,over_shoulder_right,up"


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if mask is not None:
        diff = diff[mask]
    mse = float(diff.mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def render(preset, views, resolution, out: Path, *, pose_views: bool = True) -> tuple[dict[str, float], dict[str, float]]:
    """Wall and CPU seconds per view (Cycles renders on threads of this process)."""
    shutil.rmtree(out, ignore_errors=True)
    session = prepare_scene(demo=PHENOTYPES["demo_man"], subdivision=preset.subdivision)
    options = PackageOptions(views=views, resolution=(resolution, resolution), preset=preset, overwrite=True,
                             pose_views=pose_views)
    cpu: dict[str, float] = {}
    last = [cpu_seconds()]

    def progress(i: int, n: int, name: str, seconds: float) -> None:
        now = cpu_seconds()
        cpu[name], last[0] = now - last[0], now
        print(f"  {preset.name} [{i}/{n}] {name}: {seconds:.1f} s wall, {cpu[name]:.1f} s CPU", file=sys.stderr, flush=True)

    started = time.perf_counter()
    result = session.render(out, options, progress)
    print(f"{preset.name}: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return result.seconds_per_view, cpu


def posing(views, resolution: int, out: Path) -> int:
    """The pose-aware package (over-shoulder and up/down views posed) against the same package
    with the camera moved only, in one run: the cost of posing."""
    cores = os.cpu_count() or 1
    runs = {}
    for name, pose_views in (("unposed", False), ("posed", True)):
        started = time.perf_counter()
        wall, cpu = render(FAST, views, resolution, out / name, pose_views=pose_views)
        runs[name] = (time.perf_counter() - started, sum(wall.values()), sum(cpu.values()), wall)
    print(f"\n{len(views)} views at {resolution}px, fast preset, {cores} cores\n")
    print("| view | unposed wall s | posed wall s |")
    print("|---|---|---|")
    for view in views:
        print(f"| {view.name} | {runs['unposed'][3][view.name]:.1f} | {runs['posed'][3][view.name]:.1f} |")
    print("\n| package | total wall s (build + render) | views wall s | views CPU s |")
    print("|---|---|---|---|")
    for name, (total, wall, cpu, _) in runs.items():
        print(f"| {name} | {total:.1f} | {wall:.1f} | {cpu:.1f} |")
    ratio = runs["posed"][0] / runs["unposed"][0]
    print(f"\nposed / unposed total: {ratio:.2f}x")
    out.mkdir(parents=True, exist_ok=True)
    (out / "posing.json").write_text(json.dumps({name: {"total_s": r[0], "views_wall_s": r[1], "views_cpu_s": r[2], "per_view": r[3]}
                                                 for name, r in runs.items()}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=720)
    parser.add_argument("--views", type=int, default=8, help="how many of the 8 benchmark views to render")
    parser.add_argument("--out", default="out/bench_package")
    parser.add_argument("--baseline-views", default="all", help="all, or how many of the views also get the baseline and reference renders")
    parser.add_argument(
        "--reuse-baseline",
        action="store_true",
        help="re-render only our preset; take the Blender-default and reference renders and timings of an earlier run in --out",
    )
    parser.add_argument("--posing", action="store_true", help="compare the posed package with the same views unposed")
    parser.add_argument("--quick", action="store_true", help="with --posing: 4 views at 256 px")
    args = parser.parse_args()
    views = resolve_views(EIGHT_VIEWS)[: args.views]
    if args.posing:
        if args.quick:
            views = [v for v in views if v.name in ("front", "over_shoulder_left", "over_shoulder_right", "up")]
        return posing(views, 256 if args.quick else args.resolution, Path(args.out))
    baseline_views = views if args.baseline_views == "all" else views[: int(args.baseline_views)]
    out = Path(args.out)
    cores = os.cpu_count() or 1
    timings, cpu = {}, {}
    timings["fast"], cpu["fast"] = render(FAST, views, args.resolution, out / "fast")
    if args.reuse_baseline:
        earlier = json.loads((out / "results.json").read_text())
        for name in ("blender_default", "reference"):
            timings[name], cpu[name] = earlier["timings"][name], earlier["cpu"][name]
        baseline_views = [v for v in baseline_views if v.name in timings["reference"]]
        print(f"reusing the Blender-default and reference renders of an earlier run in {out}", file=sys.stderr)
    else:
        timings["blender_default"], cpu["blender_default"] = render(BLENDER_DEFAULT, baseline_views, args.resolution, out / "blender_default")
        timings["reference"], cpu["reference"] = render(REFERENCE, baseline_views, args.resolution, out / "reference")
    views = baseline_views

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
            row[f"{name}_cpu"] = cpu[name][view.name]
            row[f"{name}_psnr"] = psnr(image, ref)
            row[f"{name}_psnr_char"] = psnr(image, ref, character)
        rows.append(row)

    print(f"\nresolution {args.resolution}px, reference = {REFERENCE.samples} samples + OIDN accurate, {cores} cores\n")
    print("| view | ours wall s | ours CPU s | ours PSNR dB (all / character) | default wall s | default CPU s | default PSNR dB (all / character) | speed-up (CPU) |")
    print("|" + "---|" * 8)
    for r in rows:
        print(
            f"| {r['view']} | {r['fast_s']:.1f} | {r['fast_cpu']:.1f} | {r['fast_psnr']:.1f} / {r['fast_psnr_char']:.1f} | "
            f"{r['blender_default_s']:.1f} | {r['blender_default_cpu']:.1f} | {r['blender_default_psnr']:.1f} / {r['blender_default_psnr_char']:.1f} | "
            f"{r['blender_default_cpu'] / r['fast_cpu']:.1f}x |"
        )
    all_wall = sum(timings["fast"].values())
    all_cpu = sum(cpu["fast"].values())
    print(
        f"\nours, all {len(timings['fast'])} views: {all_wall:.1f} s wall, {all_cpu:.1f} s CPU "
        f"(= {all_cpu / cores:.1f} s on {cores} idle cores); "
        f"speed-up over Blender's defaults on the compared views: "
        f"{sum(r['blender_default_cpu'] for r in rows) / sum(r['fast_cpu'] for r in rows):.1f}x CPU, "
        f"{sum(r['blender_default_s'] for r in rows) / sum(r['fast_s'] for r in rows):.1f}x wall; "
        f"min PSNR ours {min(r['fast_psnr'] for r in rows):.1f} dB (character {min(r['fast_psnr_char'] for r in rows):.1f} dB)"
    )
    (out / "results.json").write_text(json.dumps({"rows": rows, "timings": timings, "cpu": cpu}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
