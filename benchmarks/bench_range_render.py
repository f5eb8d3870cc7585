"""What a frame range costs on Blender's main thread: the add-on's per-frame step against a plain render.

The user's scene (the demo character turning, its own camera and light, Cycles) is rendered over a
frame range twice in one run:

* **baseline**: ``scene.frame_set(f)`` + ``bpy.ops.render.render()`` per frame, what F12 over the
  frames costs (nothing written, no vectors);
* **range step**: the add-on's ``frame_range.RangeRender.step()`` per frame (the same render with the
  Vector pass to a multilayer EXR, read back, the PNG through the view transform, the vectors array
  and the render sidecar written into the clip folder).

The modal operator renders one frame per timer tick, so the longest time the UI cannot redraw is one
step; rendering the whole range in one call (what a script does) blocks for the sum. The clip's size
on disk per frame is printed too (the vectors dominate: 16 bytes a pixel).

    python benchmarks/bench_range_render.py [--frames 6] [--size 128] [--samples 2] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402

from addon import frame_range  # noqa: E402
from addon.operators_bump import render_engine, save_render_result  # noqa: E402
from profile_rig.blender.demo_character import build_demo_character  # noqa: E402
from profile_rig.blender.shot_sidecar import ShotCharacter  # noqa: E402
from profile_rig.core.phenotype import PRESETS  # noqa: E402


def user_scene(size: int, samples: int, frames: int) -> tuple[bpy.types.Scene, bpy.types.Object]:
    """The demo character turning over ``frames`` frames, seen by the user's camera (tests/addon's scene)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    rig = build_demo_character(PRESETS["demo_man"], scene.collection, subdivision=0)
    cam = bpy.data.objects.new("UserCam", bpy.data.cameras.new("UserCam"))
    cam.data.lens, cam.location, cam.rotation_euler = 60.0, (0.0, -0.7, 1.6), (1.5708, 0.0, 0.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    light = bpy.data.objects.new("UserLight", bpy.data.lights.new("UserLight", "AREA"))
    light.location, light.data.energy = (0.5, -1.0, 2.0), 80.0
    scene.collection.objects.link(light)
    render = scene.render
    render.engine, render.resolution_x, render.resolution_y, render.resolution_percentage = "CYCLES", size, size, 100
    scene.cycles.samples, scene.cycles.use_denoising = samples, False
    scene.view_settings.view_transform = "Standard"
    rig.rotation_euler[2] = 0.0
    rig.keyframe_insert("rotation_euler", index=2, frame=1)
    rig.rotation_euler[2] = 0.09 * frames
    rig.keyframe_insert("rotation_euler", index=2, frame=frames + 1)
    scene.frame_set(1)
    return scene, rig


def baseline(scene: bpy.types.Scene, frames: range) -> list[float]:
    seconds = []
    for frame in frames:
        started = time.perf_counter()
        scene.frame_set(frame)
        bpy.ops.render.render(scene=scene.name)
        seconds.append(time.perf_counter() - started)
    return seconds


def range_steps(scene: bpy.types.Scene, rig: bpy.types.Object, frames: range, out: Path) -> tuple[list[float], int]:
    shot = [ShotCharacter(rig.name, "demo", "Demo")]
    render = frame_range.RangeRender(scene, frames, out, shot, render_engine(scene, "SCENE"), save_render_result)
    seconds = []
    for _ in frames:
        started = time.perf_counter()
        render.step()
        seconds.append(time.perf_counter() - started)
    clip = render.finish("demo", "Demo")
    size = sum(p.stat().st_size for p in clip.rglob("*") if p.is_file())
    return seconds, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 frames at 96 px, 1 sample")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.frames, args.size, args.samples = 3, 96, 1
    scene, rig = user_scene(args.size, args.samples, args.frames)
    frames = range(1, args.frames + 1)
    baseline(scene, range(1, 2))  # warm-up: Cycles compiles its kernels and loads the scene once
    with tempfile.TemporaryDirectory(prefix="bench_range_") as tmp:
        plain = baseline(scene, frames)
        ours, size = range_steps(scene, rig, frames, Path(tmp) / "clip")
    rows = [("baseline: frame_set + render per frame", plain), ("range step (render + EXR + PNG + vectors + "
                                                                "sidecar)", ours)]
    result = {"frames": args.frames, "size": args.size, "samples": args.samples,
              "clip_bytes_per_frame": size // args.frames,
              "rows": [{"scenario": name, "median_s": statistics.median(s), "longest_s": max(s), "total_s": sum(s)}
                       for name, s in rows]}
    result["step_over_render"] = statistics.median(ours) / statistics.median(plain)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.frames} frames, {args.size}x{args.size} px, {args.samples} sample(s), Cycles CPU")
    print("| scenario | median s/frame | longest s (UI blocked, modal) | whole range s (UI blocked, one call) |")
    print("|---|---|---|---|")
    for row in result["rows"]:
        print(f"| {row['scenario']} | {row['median_s']:.3f} | {row['longest_s']:.3f} | {row['total_s']:.3f} |")
    print(f"range step / plain render (median): {result['step_over_render']:.2f}x; "
          f"clip on disk: {size / args.frames / 1024:.0f} KiB a frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
