"""Face-finding benchmark: our rotated tile pyramid vs a FacePop-style baseline, on ground truth built in code.

    python benchmarks/bench_faces.py [--images 100] [--seed 1] [--width 1440 --height 960]

Every image is a cluttered photo background with real faces (scikit-image's astronaut,
matplotlib's Grace Hopper) pasted at known sizes (16-400 px), rolls (-180..180), positions and
mirroring, then damaged (noise, blur, JPEG). Both detectors run on the same images in the same
run; the table prints recall by face size and by roll, false positives per image, roll error
and milliseconds per image. The geometry path runs on the same images from a sidecar built
from the truth and must find 100 % with 0 detector calls.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bump_backend.faces import FaceFinderSettings, find_faces
from bump_backend.faces import detect as ours
from bump_backend.faces.groundtruth import Scene, TruthFace, make_scene
from bump_backend.faces.transform import roll_of, wrap
from bump_contracts.face_geometry import FaceGeometry
from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

SIZES = (16, 20, 24, 32, 48, 64, 96, 128, 200, 300, 400)
SIZE_BUCKETS = ((16, 16), (20, 20), (24, 24), (32, 32), (48, 64), (96, 128), (200, 400))
ROLL_BUCKETS = ((0, 45), (45, 90), (90, 135), (135, 180))
DAMAGE = ("none", "noise", "blur", "jpeg")


@dataclass
class Found:
    centre: tuple[float, float]
    size: float
    roll: float


@dataclass
class Tally:
    hits: dict = field(default_factory=dict)  # bucket -> [found, total]
    roll_hits: dict = field(default_factory=dict)
    false_positives: int = 0
    roll_errors: list = field(default_factory=list)
    ms: list = field(default_factory=list)
    cpu_ms: list = field(default_factory=list)
    calls: list = field(default_factory=list)

    def add(self, table: dict, key, ok: bool) -> None:
        row = table.setdefault(key, [0, 0])
        row[0] += int(ok)
        row[1] += 1


def size_bucket(size: float):
    for lo, hi in SIZE_BUCKETS:
        if lo - 0.5 <= size <= hi + 0.5:
            return (lo, hi)
    return None


def roll_bucket(roll: float):
    r = abs(wrap(roll))
    for lo, hi in ROLL_BUCKETS:
        if lo <= r <= hi:
            return (lo, hi)
    return ROLL_BUCKETS[-1]


def matches(truth: TruthFace, found: Found) -> bool:
    d = math.hypot(truth.centre[0] - found.centre[0], truth.centre[1] - found.centre[1])
    return d < 0.5 * truth.size and 0.6 < found.size / truth.size < 1.6


def score(tally: Tally, scene: Scene, found: list[Found]) -> None:
    used = set()
    for truth in scene.faces:
        hit = next((i for i, f in enumerate(found) if i not in used and matches(truth, f)), None)
        if hit is not None:
            used.add(hit)
            if truth.size >= 32:
                tally.roll_errors.append(abs(wrap(found[hit].roll - truth.roll)))
        bucket = size_bucket(truth.size)
        if bucket:
            tally.add(tally.hits, bucket, hit is not None)
        if truth.size >= 32:
            tally.add(tally.roll_hits, roll_bucket(truth.roll), hit is not None)
    tally.false_positives += len(found) - len(used)


def build(seed: int, count: int, width: int, height: int) -> list[Scene]:
    rng = np.random.default_rng(seed)
    scenes = []
    for i in range(count):
        n = int(rng.integers(3, 8))
        faces = [(float(rng.choice(SIZES)), float(rng.uniform(-180, 180))) for _ in range(n)]
        scenes.append(make_scene(rng, width, height, faces, damage=DAMAGE[i % len(DAMAGE)]))
    return scenes


class FacePopBaseline:
    """What FacePop does: mediapipe full-range once on the image and on its 90/180/270° rotations."""

    def __init__(self, confidence: float = 0.5):
        from mediapipe.python.solutions import face_detection

        self.detector = face_detection.FaceDetection(model_selection=1, min_detection_confidence=confidence)

    def __call__(self, image: np.ndarray) -> tuple[list[Found], int]:
        h, w = image.shape[:2]
        raw: list[ours.Candidate] = []
        for k in range(4):
            rotated = np.ascontiguousarray(np.rot90(image, k))
            result = self.detector.process(rotated)
            back = ours.rot90_back(k, w, h)
            rh, rw = rotated.shape[:2]
            raw.extend(ours._parse(d, back, rw, rh, 90 * k) for d in result.detections or [])
        merged = ours.merge(raw)
        found = []
        for c in merged:
            roll = roll_of(tuple(c.keypoints[0]), tuple(c.keypoints[1]))
            found.append(Found(tuple(c.centre), c.side * 1.12, roll))
        return found, 4


def run_ours(image: np.ndarray, settings: FaceFinderSettings) -> tuple[list[Found], int, float]:
    result = find_faces(image, settings=settings)
    faces = result.faces + [s.face for s in result.skipped]
    return [Found(f.centre, f.size, f.roll) for f in faces], result.detector_calls, result.ms


def sidecar_for(scene: Scene) -> RenderSidecar:
    faces = []
    for i, t in enumerate(scene.faces):
        x0, y0, x1, y1 = t.box
        g = FaceGeometry(head_centre=t.centre, right_eye=t.right_eye, left_eye=t.left_eye, face_box=t.box,
                         roll=t.roll, yaw=0.0, pitch=0.0, eye_distance_px=math.dist(t.right_eye, t.left_eye),
                         depth_m=2.0)
        faces.append(SidecarFace(character_id=f"c{i}", character_name=f"c{i}", geometry=g))
    h, w = scene.image.shape[:2]
    return RenderSidecar(width=w, height=h, faces=tuple(faces))


def percent(row) -> str:
    return f"{100 * row[0] / row[1]:5.1f} % ({row[0]}/{row[1]})" if row and row[1] else "-"


def report(name: str, tally: Tally, images: int) -> dict[str, str]:
    out = {}
    for bucket in SIZE_BUCKETS:
        label = f"recall {bucket[0]} px" if bucket[0] == bucket[1] else f"recall {bucket[0]}-{bucket[1]} px"
        out[label] = percent(tally.hits.get(bucket))
    for bucket in ROLL_BUCKETS:
        out[f"recall ≥32 px, roll ±{bucket[0]}-{bucket[1]}°"] = percent(tally.roll_hits.get(bucket))
    out["false positives / 100 images"] = f"{100 * tally.false_positives / images:.1f}"
    errors = np.array(tally.roll_errors or [float("nan")])
    out["roll error median / p95 (≥32 px)"] = f"{np.median(errors):.2f}° / {np.percentile(errors, 95):.2f}°"
    ms = np.array(tally.ms)
    out["wall ms per image mean / p95"] = f"{ms.mean():.0f} / {np.percentile(ms, 95):.0f}"
    out["CPU ms per image (all threads) / 2 cores"] = f"{np.mean(tally.cpu_ms):.0f} / {np.mean(tally.cpu_ms) / 2:.0f}"
    out["detector calls per image"] = f"{np.mean(tally.calls):.0f}"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args(argv)
    print(f"building {args.images} images of {args.width}x{args.height}...", file=sys.stderr)
    scenes = build(args.seed, args.images, args.width, args.height)
    settings = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    fast = FaceFinderSettings(min_face_size=32, skip_smaller_than=0)
    baseline = FacePopBaseline()
    find_faces(scenes[0].image, settings=settings)  # warm both threads' graphs
    baseline(scenes[0].image)
    tallies = {
        "FacePop-style (full-range x4 rotations)": Tally(),
        "ours, min face 24 px (default)": Tally(),
        "ours, min face 32 px": Tally(),
    }
    base, mine, mine_fast = tallies.values()
    geometry = Tally()
    for i, scene in enumerate(scenes):
        start, cpu = time.perf_counter(), time.process_time()
        found, calls = baseline(scene.image)
        base.ms.append((time.perf_counter() - start) * 1000)
        base.cpu_ms.append((time.process_time() - cpu) * 1000)
        base.calls.append(calls)
        score(base, scene, found)
        for tally, chosen in ((mine, settings), (mine_fast, fast)):
            cpu = time.process_time()
            found, calls, ms = run_ours(scene.image, chosen)
            tally.cpu_ms.append((time.process_time() - cpu) * 1000)
            tally.ms.append(ms)
            tally.calls.append(calls)
            score(tally, scene, found)
        cpu = time.process_time()
        result = find_faces(scene.image, sidecar_for(scene), settings=settings)
        geometry.cpu_ms.append((time.process_time() - cpu) * 1000)
        geometry.ms.append(result.ms)
        geometry.calls.append(result.detector_calls)
        score(geometry, scene, [Found(f.centre, f.size, f.roll) for f in result.faces + [s.face for s in result.skipped]])
        if (i + 1) % 20 == 0:
            print(f"  {i + 1}/{len(scenes)}", file=sys.stderr)
    columns = {name: report(name, t, len(scenes)) for name, t in tallies.items()}
    columns["geometry (sidecar)"] = report("geometry", geometry, len(scenes))
    faces = sum(len(s.faces) for s in scenes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{len(scenes)} images {args.width}x{args.height}, {faces} faces, seed {args.seed}, "
          f"damage cycled {'/'.join(DAMAGE)}, 30 % mirrored; {os.cpu_count()} CPUs, load average {load:.1f}\n")
    names = list(columns)
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for metric in columns[names[0]]:
        print(f"| {metric} | " + " | ".join(columns[n][metric] for n in names) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
