"""Sequence bumping: ours (one track seed, motion-carried result) against per-frame bumping, same settings.

Clips with a KNOWN motion, built from a real photo (scikit-image's astronaut moved, zoomed and
rotated by a similarity per frame; ``bump_backend.testing.clips``):

* **flicker**: mean |frame - previous frame warped by the true motion| inside the face, output over
  input; per-frame bumping (``--no-temporal``, same seed and settings) beside ours, both on the
  footage path (faces detected, motion from DIS optical flow) and ours on the render path (sidecar
  geometry from the known eyes and the true motion written as ``.flow.npy``: what a renderer gives);
* **identity stability**: mean and standard deviation over frames of the output face's identity
  distance to the package's front view, by dlib's face-recognition ResNet (the ranking embedder,
  offline). The tiny model's faces are noise, so with it the figure shows the wiring; with
  ``--model sd15 --device cuda`` (real weights, the real loaders) it is the figure that counts;
* **analysis speed** on footage: the job's analysis (faces, cuts, tracks) with the full face search
  on every frame (``--detect-every 1``) against the default (``FaceTracker``: a full search every N
  frames, a window re-check of each known face between), on two faces crossing at three frame sizes;
* **crop jitter** on a still face with sensor noise, through the job's analysis (full search every
  frame and the default): std of the true eye points in the 720 px aligned crop, raw vs the smoothed
  track; renders (sidecar) 0;
* **overhead**: analysis (detection, tracking), flow and warping per frame against the diffusion
  time per frame (tiny model on this CPU: the ratio for real weights on a GPU is not measured here);
* **a rendered demo clip** (``--demo-clip``): the demo character turning (-30..+30 degrees of camera
  yaw), its package's per-view face geometry as sidecars; its motion is not known, so the metric's
  flow is DIS between the input frames (estimated);
* **the animated demo clip** (``--animation CLIP PACKAGE``): ``headless_renderer animation --demo``
  (head turn, blink, smile) with its render sidecars; ours is carried by its Cycles motion vectors,
  and the flicker metric uses the same vectors: the renderer's known motion;
* **memory**: peak RSS of the job without diffusion (sidecar faces, starts pasted back unchanged)
  on a 100-frame and a long small clip, each in its own process.

    python benchmarks/bench_sequence.py --quick      # 8 frames, 64 px faces, 100 vs 1000 frames memory
    python benchmarks/bench_sequence.py --quick --skip-bump --skip-memory   # the analysis and jitter only
    python benchmarks/bench_sequence.py              # 16 frames, 128 px faces, 100 vs 3000 frames memory
    python benchmarks/bench_sequence.py --quick --demo-clip out/demo_turn   # + a rendered turning demo clip
    python benchmarks/bench_sequence.py --quick --skip-memory --animation out/anim_clip out/demo_package
    python benchmarks/bench_sequence.py --skip-memory --model sd15 --device cuda --animation out/anim_clip \
        out/demo_package                           # real weights on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bump_backend.faces.align import align_face, crop_matrix  # noqa: E402
from bump_backend.faces.geometry import faces_from_sidecar  # noqa: E402
from bump_backend.faces.types import Face, rotated_square_bounds  # noqa: E402
from bump_backend.generate.model_args import add_model_options  # noqa: E402
from bump_backend.generate.rank import DlibEmbedder, identity_distance  # noqa: E402
from bump_backend.sequence import metrics, temporal, tracks  # noqa: E402
from bump_backend.sequence.job import FaceOptions, SequenceJob  # noqa: E402
from bump_backend.sequence.sources import open_source  # noqa: E402
from bump_backend.testing import clips  # noqa: E402
from bump_contracts.face_geometry import FaceGeometry  # noqa: E402
from bump_contracts.package_manifest import load_package  # noqa: E402
from bump_contracts.render_sidecar import RenderSidecar, SidecarFace, load  # noqa: E402
from bump_contracts.sequence_job import SequenceParams  # noqa: E402


def sidecar_for(frame: clips.ClipFrame, width: int, height: int) -> RenderSidecar:
    """The render path's geometry: the clip's known eyes and face size as a render sidecar."""
    (r, left), size = frame.eyes[0], frame.sizes[0]
    roll = float(np.degrees(np.arctan2(left[1] - r[1], left[0] - r[0])))
    d = float(np.hypot(left[0] - r[0], left[1] - r[1]))
    nx, ny = -(left[1] - r[1]) / d, (left[0] - r[0]) / d
    c = ((r[0] + left[0]) / 2 + 0.45 * d * nx, (r[1] + left[1]) / 2 + 0.45 * d * ny)
    box = rotated_square_bounds(c, size, roll)
    g = FaceGeometry(head_centre=c, right_eye=r, left_eye=left, face_box=box, roll=roll, yaw=0.0, pitch=0.0,
                     eye_distance_px=d, depth_m=1.0)
    return RenderSidecar(width=width, height=height, faces=(SidecarFace("astronaut", "Astronaut", g),))


def write_render_folder(frames: list[clips.ClipFrame], folder: Path) -> Path:
    clips.write_folder(iter(frames), folder, flow=True)
    for i, frame in enumerate(frames):
        h, w = frame.image.shape[:2]
        (folder / f"frame_{i + 1:04d}.json").write_text(sidecar_for(frame, w, h).dumps(), encoding="utf-8")
    return folder


def outputs_of(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out / "frames").glob("*.png"))]


def identity_spread(outputs: list[np.ndarray], faces: list[Face], reference: np.ndarray,
                    reference_face: Face) -> tuple[float, float]:
    """Mean and standard deviation over frames of the output face's identity distance to the package
    view, by dlib's face-recognition ResNet (``generate.rank``, the embedder that ranks candidates; same
    person ~0.06, different people 0.63-0.75), on upright aligned crops."""
    embedder = DlibEmbedder(padding=0.35)

    def vector(image: np.ndarray, face: Face) -> np.ndarray:
        return embedder.embed(align_face(image, face, size=256, padding=0.35).crop)

    ref = vector(reference, reference_face)
    distances = [identity_distance(vector(o, f), [ref]) for o, f in zip(outputs, faces, strict=True)]
    return float(np.mean(distances)), float(np.std(distances))


def _identity(outputs, faces, reference, reference_face) -> dict[str, float]:
    mean, std = identity_spread(outputs, faces, reference, reference_face)
    return {"identity_distance": mean, "identity_std": std}


def package_front(package_dir: Path) -> tuple[np.ndarray, Face]:
    """The package's front view (its first view) and the face its manifest records there."""
    manifest = load_package(str(package_dir))
    view = next((v for v in manifest.views if v.name == "front"), manifest.views[0])
    image = np.asarray(Image.open(package_dir / view.file).convert("RGB"))
    sidecar = RenderSidecar(width=view.width, height=view.height, faces=(SidecarFace("ref", "Ref", view.face),))
    (face,), _ = faces_from_sidecar(sidecar, image.shape)
    return image, face


def _truth_face(frame: clips.ClipFrame) -> Face:
    (r, left), size = frame.eyes[0], frame.sizes[0]
    roll = float(np.degrees(np.arctan2(left[1] - r[1], left[0] - r[0])))
    c = ((r[0] + left[0]) / 2, (r[1] + left[1]) / 2 + 0.2 * size)
    return Face(rotated_square_bounds(c, size, roll), 1.0, (r, left), roll, 0.0, 0.0, "geometry")


def bump_comparison(args, root: Path) -> list[dict]:
    import torch  # the memory child and the jitter part run without torch

    from bump_backend.generate import BumpEngine, BumpSettings
    from bump_backend.generate.model_args import spec_from_args
    from bump_backend.generate.models import ModelSpec
    from bump_backend.sequence.bumper import EngineBumper
    from bump_backend.testing import tiny_models as tiny

    if args.model:  # real weights through the real loaders (a GPU machine): the identity figure that counts
        engine = BumpEngine(spec_from_args(args))
    else:
        torch.set_num_threads(1)
        sd15 = tiny.build_tiny_sd15(root / "models" / "sd15")
        ip_dir, weight = tiny.build_tiny_ip_adapter(root / "models" / "ip", sd15, "plus-face")
        engine = BumpEngine(ModelSpec(base=str(sd15), ip_adapter=str(ip_dir), ip_adapter_weight=weight,
                                      device="cpu"))
    frames = list(clips.photo_clip(args.frames, args.width, args.height, args.face))
    package = tiny.build_tiny_package(root / "package", {"front": (frames[0].image, 0.0)}, character_id="astronaut")
    settings = BumpSettings(prompt="photo of a man", steps=args.steps, denoise=0.5, sampler="Euler a", seed=1234,
                            face_size=args.face_size, cfg=5.0)
    footage = clips.write_folder(iter(frames), root / "footage")
    renders = write_render_folder(frames, root / "renders")
    masks = [metrics.face_disk(f.image.shape, f.eyes[0], f.sizes[0]) for f in frames]
    rows = []
    every = SequenceParams().detect_every
    runs = (("per-frame (footage)", footage, False, every), ("ours (footage, DIS flow)", footage, True, every),
            ("per-frame (footage, full search every frame)", footage, False, 1),
            ("ours (footage, full search every frame)", footage, True, 1),
            ("per-frame (render)", renders, False, every), ("ours (render, motion vectors)", renders, True, every))
    for label, folder, carry, detect_every in runs:
        out = root / f"out_{len(rows)}"
        job = SequenceJob(folder, out, SequenceParams(video=False, temporal=carry, detect_every=detect_every),
                          face=FaceOptions(args.face_size, 0.35, 1234), package=package, log=None)
        t = time.perf_counter()
        record = job.run(EngineBumper(engine, settings))
        wall = time.perf_counter() - t
        outs = outputs_of(out)
        n = len(outs)
        tm = record["timings"]
        overhead = (tm["analyse_s"] + tm["flow_s"] + tm["align_warp_s"]) / n
        rows.append({"run": label, "flicker": metrics.flicker_ratio(outs, [f.image for f in frames],
                                                                  [f.flow for f in frames], masks),
                     **_identity(outs, [_truth_face(f) for f in frames], frames[0].image, _truth_face(frames[0])),
                     "analyse_s_per_frame":
                     tm["analyse_s"] / n, "diffusion_s_per_frame": tm["diffusion_s"] / n, "overhead_s_per_frame": overhead,
                     "flow_s_per_frame": tm["flow_s"] / n, "wall_s": wall})
    if args.demo_clip:
        rows += demo_comparison(args, root, engine, settings, Path(args.demo_clip))
    if args.animation:
        clip_dir, package_dir = (Path(p) for p in args.animation)
        rows += animation_comparison(args, root, engine, settings, clip_dir, package_dir)
    return rows


def demo_clip_folder(package: Path, folder: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """A turning clip from a package rendered with yaw steps (``--views t00:-30,t01:-25,...``): its views in
    order as frames, each view's projected face geometry as the frame's render sidecar. Returns the folder,
    the frames and the face masks."""
    manifest = load_package(str(package))
    folder.mkdir(parents=True)
    images, masks = [], []
    for i, view in enumerate(manifest.views):
        image = np.asarray(Image.open(package / view.file).convert("RGB"))
        Image.fromarray(image).save(folder / f"frame_{i + 1:04d}.png")
        g = view.face
        sidecar = RenderSidecar(width=view.width, height=view.height, faces=(SidecarFace("demo", "Demo", g),))
        (folder / f"frame_{i + 1:04d}.json").write_text(sidecar.dumps(), encoding="utf-8")
        x0, y0, x1, y1 = g.face_box
        images.append(image)
        masks.append(metrics.face_disk(image.shape, (g.right_eye, g.left_eye), max(x1 - x0, y1 - y0)))
    return folder, images, masks


def demo_comparison(args, root: Path, engine, settings, package_dir: Path) -> list[dict]:
    """The rendered turning clip: per-frame vs ours (sidecar geometry; no motion files, so DIS flow in the
    crop). The flicker metric's motion is DIS flow between the input frames: estimated, not known."""
    folder, images, masks = demo_clip_folder(package_dir, root / "demo_clip")
    flows = [None] + [temporal.image_flow(images[t - 1], images[t]) for t in range(1, len(images))]
    faces = [sidecar_face_of(folder, i) for i in range(len(images))]
    return compare_on_clip(args, root / "demo", engine, settings, folder, package_dir, "demo render",
                           images, flows, masks, faces)


def animation_comparison(args, root: Path, engine, settings, clip_dir: Path, package_dir: Path) -> list[dict]:
    """The animated demo clip (``headless_renderer animation --demo``: head turn, blink, smile): faces from
    its render sidecars, ours carried by its Cycles motion vectors; the flicker metric's motion is those
    same vectors (the renderer's known motion)."""
    source = open_source(clip_dir)
    images, flows, masks, faces = [], [], [], []
    for frame in source.frames():
        (face,), _ = faces_from_sidecar(frame.sidecar, frame.image.shape)
        images.append(frame.image)
        flows.append(frame.motion if frame.index else None)
        masks.append(metrics.face_disk(frame.image.shape, face.eyes, face.size))
        faces.append(face)
    return compare_on_clip(args, root / "animation", engine, settings, clip_dir, package_dir,
                           "animated demo, motion vectors", images, flows, masks, faces)


def compare_on_clip(args, root: Path, engine, settings, folder: Path, package_dir: Path, name: str,
                    images, flows, masks, faces) -> list[dict]:
    """Per-frame bumping against ours on one rendered clip, flicker over the given motion."""
    from bump_backend.sequence.bumper import EngineBumper  # torch: only when the diffusion runs

    reference, reference_face = package_front(package_dir)
    rows = []
    for label, carry in ((f"per-frame ({name})", False), (f"ours ({name})", True)):
        out = root / f"out_{carry}"
        job = SequenceJob(folder, out, SequenceParams(video=False, temporal=carry, min_sharpness=0.0),
                          face=FaceOptions(args.face_size, 0.35, 1234), package=package_dir, log=None)
        record = job.run(EngineBumper(engine, settings))
        outs = outputs_of(out)
        n = len(outs)
        tm = record["timings"]
        rows.append({"run": label, "flicker": metrics.flicker_ratio(outs, images, flows, masks),
                     **_identity(outs, faces, reference, reference_face),
                     "diffusion_s_per_frame": tm["diffusion_s"] / n, "analyse_s_per_frame": tm["analyse_s"] / n,
                     "overhead_s_per_frame": (tm["analyse_s"] + tm["flow_s"] + tm["align_warp_s"]) / n,
                     "flow_s_per_frame": tm["flow_s"] / n})
    return rows


def sidecar_face_of(folder: Path, i: int) -> Face:
    sidecar = load(str(folder / f"frame_{i + 1:04d}.json"))
    (face,), _ = faces_from_sidecar(sidecar, (sidecar.height, sidecar.width, 3))
    return face


def jitter(args, root: Path) -> dict:
    """Crop jitter of a still face with sensor noise, through the job's own analysis: the full search
    on every frame (``--detect-every 1``) and the default (FaceTracker between full searches), raw
    and smoothed, the mean over ``args.noise_seeds`` noise draws; renders (sidecar) for reference."""
    every_n = SequenceParams().detect_every
    sums: dict[str, list[float]] = {}
    for seed in range(args.noise_seeds):
        frames = list(clips.photo_clip(args.still_frames, 192, 160, 56, still=True, noise=6.0, seed=seed))
        folder = clips.write_folder(iter(frames), root / f"still_{seed}")
        eyes = [frames[0].eyes[0]] * len(frames)
        for every in (1, every_n):
            job = SequenceJob(folder, root / f"still_{seed}_{every}", SequenceParams(detect_every=every), log=None)
            (track,) = [t for t in job.analyse().tracks if len(t.observations) == len(frames)]
            raw = [crop_matrix(o.face(), 720, 0.35) for o in track.observations]
            sums.setdefault(f"every {every}: raw", []).append(metrics.aligned_eye_jitter(eyes, raw))
            for sigma in (2.0, 3.0):
                smooth = [crop_matrix(o.face(), 720, 0.35) for o in tracks.smooth_track(track, sigma).observations]
                sums.setdefault(f"every {every}: smooth {sigma:g}", []).append(metrics.aligned_eye_jitter(eyes, smooth))
        render = [crop_matrix(sidecar_face(f), 720, 0.35) for f in frames]
        sums.setdefault("render", []).append(metrics.aligned_eye_jitter(eyes, render))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def analysis_speed(args, root: Path) -> list[dict]:
    """The analysis alone (faces, cuts, tracks; no diffusion) on footage, the full search on every
    frame against the default FaceTracker, same frames, same run: time per frame and the faces found."""
    rows = []
    every = SequenceParams().detect_every
    # the faces cross the middle 60 % of the frame: more frames for wider frames keep the motion a
    # fifth of a face per frame (FaceTracker's window follows up to about half a face)
    clips_ = {f"crossing {w}x{h}, face {face} px, {n} frames": list(clips.crossing_clip(n, w, h, face))
              for w, h, face, n in ((256, 144, 52, args.analysis_frames), (640, 360, 52, 2 * args.analysis_frames),
                                    (1280, 720, 64, 3 * args.analysis_frames))}
    for name, frames in clips_.items():
        key = "".join(c if c.isalnum() else "_" for c in name)
        folder = clips.write_folder(iter(frames), root / f"analysis_{key}")
        truth = 2 * len(frames)
        for n in (1, every):
            job = SequenceJob(folder, root / f"analysis_out_{key}_{n}",
                              SequenceParams(detect_every=n), log=None)
            t = time.perf_counter()
            analysis = job.analyse()
            seconds = time.perf_counter() - t
            ids = {tid for m in analysis.frames for tid in m["tracks"]}
            rows.append({"clip": name, "detect_every": n, "ms_per_frame": 1000 * seconds / len(frames),
                         "full_searches": sum(m["faces_by"] == "detect" for m in analysis.frames),
                         "faces": sum(len(m["tracks"]) for m in analysis.frames), "truth": truth, "tracks": len(ids)})
    return rows


def sidecar_face(frame: clips.ClipFrame) -> Face:
    (face,), _ = faces_from_sidecar(sidecar_for(frame, 192, 160), frame.image.shape)
    return face


def memory_child(frames: int, folder: str) -> None:
    """One process: build a small sidecar clip of ``frames`` frames, run the job without diffusion."""
    root = Path(folder)
    src = root / "clip"
    src.mkdir(parents=True)
    base = list(clips.photo_clip(24, 96, 80, 32))
    for i in range(frames):
        f = base[i % len(base)]
        Image.fromarray(f.image).save(src / f"frame_{i + 1:05d}.png", compress_level=1)
        (src / f"frame_{i + 1:05d}.json").write_text(sidecar_for(f, 96, 80).dumps(), encoding="utf-8")
    rss_before = current_rss_mb()
    peak = [rss_before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], current_rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.perf_counter()
    SequenceJob(src, root / "out", SequenceParams(min_face=0, min_sharpness=0), face=FaceOptions(64, 0.35, 1),
                log=None).run(None)
    stop.set()
    sampler.join()
    print(json.dumps({"frames": frames, "peak_rss_mb": peak[0], "rss_before_job_mb": rss_before,
                      "growth_mb": peak[0] - rss_before, "s": time.perf_counter() - t}))


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def memory(args) -> list[dict]:
    rows = []
    for n in (100, args.long):
        folder = tempfile.mkdtemp(prefix="bench_seq_mem_")
        try:
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(n), folder], capture_output=True,
                                 text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small: for a shared 2-core machine")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-bump", action="store_true", help="leave out the tiny-model bumping (analysis only)")
    parser.add_argument("--skip-memory", action="store_true", help="leave out the memory runs (minutes at 3000 frames)")
    parser.add_argument("--demo-clip", metavar="PACKAGE", help="a demo package rendered as a turn, e.g. "
                        "python -m headless_renderer package --demo --views t00:-30,t01:-25,...,t12:30 "
                        "--resolution 160 --samples 2 --out out/demo_turn")
    parser.add_argument("--animation", nargs=2, metavar=("CLIP", "PACKAGE"),
                        help="an animated demo clip and the demo package, e.g. python -m headless_renderer "
                        "animation --demo --frames 12 --resolution 160 --samples 2 --out out/anim_clip")
    add_model_options(parser)  # --model sd15 --device cuda: real weights instead of the tiny model
    parser.add_argument("--memory-child", nargs=2, metavar=("FRAMES", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1])
        return 0
    q = args.quick
    args.frames, args.face, args.face_size, args.steps = (8, 56, 64, 6) if q else (16, 64, 128, 10)
    if args.model:  # real weights: the face pass's own crop size and a real step count
        args.face_size, args.steps = 512, 30
    args.width, args.height = 192, 160
    args.still_frames = 16 if q else 32
    args.noise_seeds = 3 if q else 4
    args.analysis_frames = 20 if q else 40
    args.long = 1000 if q else 3000
    root = Path(tempfile.mkdtemp(prefix="bench_sequence_"))
    try:
        speed = analysis_speed(args, root)
        rows = [] if args.skip_bump else bump_comparison(args, root)
        jit = jitter(args, root)
        mem = [] if args.skip_memory else memory(args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps({"analysis": speed, "bump": rows, "jitter": jit, "memory": mem}, indent=1))
        return 0
    print("analysis of footage (faces, cuts, tracks; no diffusion): full search every frame vs FaceTracker "
          f"(full search every {SequenceParams().detect_every} frames, window re-check between)")
    print("| clip | detect every | ms per frame | full searches | faces found / in the clip | tracks |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in speed:
        print(f"| {r['clip']} | {r['detect_every']} | {r['ms_per_frame']:.0f} | {r['full_searches']} | "
              f"{r['faces']} / {r['truth']} | {r['tracks']} |")
    for a, b in zip(speed[::2], speed[1::2], strict=True):
        print(f"{a['clip']}: FaceTracker / every frame: time x{b['ms_per_frame'] / a['ms_per_frame']:.2f}")
    if rows:
        print(f"clip: astronaut photo, {args.frames} frames {args.width}x{args.height}, face {args.face} px, "
              f"crop {args.face_size} px, {args.model or 'tiny SD 1.5 + plus-face'}, {args.steps} steps, denoise 0.5, seed 1234")
        print("| run | flicker (output/input) | identity distance (dlib) | identity std | analysis s/frame "
              "| diffusion s/frame | overhead s/frame | flow s/frame |")
        print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['flicker']:.2f} | {r['identity_distance']:.3f} | {r['identity_std']:.4f} | "
              f"{r['analyse_s_per_frame']:.3f} | "
              f"{r['diffusion_s_per_frame']:.3f} | {r['overhead_s_per_frame']:.3f} | {r['flow_s_per_frame']:.4f} |")
    for a, b in [(i, i + 1) for i in range(0, len(rows), 2)]:
        print(f"{rows[b]['run']} / {rows[a]['run']}: flicker x{rows[b]['flicker'] / rows[a]['flicker']:.2f}, "
              f"identity std x{rows[b]['identity_std'] / max(rows[a]['identity_std'], 1e-9):.2f}")
    print(f"crop jitter, still face + noise 6, {args.still_frames} frames x {args.noise_seeds} noise draws (mean), "
          "720 px crop: "
          + ", ".join(f"{k} {v:.3f} px" for k, v in jit.items()))
    print("| frames | RSS before the job MB | peak RSS during the job MB | growth MB | seconds |")
    print("|---|---|---|---|---|")
    for m in mem:
        print(f"| {m['frames']} | {m['rss_before_job_mb']:.0f} | {m['peak_rss_mb']:.0f} | {m['growth_mb']:.1f} | "
              f"{m['s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
