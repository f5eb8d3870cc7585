"""Where a still-image face search spends its time: model calls per stage, per setting, same images.

    python benchmarks/profile_faces.py --quick     # one 1440x1440 and one 1280x720 tune scene
    python benchmarks/profile_faces.py --images 3  # three scenes of each size
    python benchmarks/profile_faces.py --default-only --images 10  # today's search only: where each stage's CPU goes

Every mediapipe call (short-range, full-range, mesh) is counted and timed under the stage that
made it: the tile pyramid, the re-check at quarter turns (with the full-range calls that tell
its turns apart), the full-range second opinion, the mesh and its
re-check. ``FaceSearchResult.detector_calls`` is printed beside the counted calls: it leaves out
the second opinion's extra roll tries. A LiteRT call on a batch counts one call per input.
Settings compared: the short-range model through mediapipe's graph, one call per tile (before),
through LiteRT (``blazeface``) on the same tiles, and on whole windows of each pyramid level
(``detect.WINDOWS``, a window counts one call), with and without the cost cuts (``bench_faces.COST_CUTS``:
the re-check's full-range tries, the early drop, no second opinion where the short-range evidence decides,
balanced work); the default tile turns ``(0,)`` and ``(0, 180)``; with
``--four-turn`` the re-check that always looks at four turns; with and without the third pass
(``bench_faces.THIRD_PASS``: the full-range model through LiteRT, the finest level's tighter windows); full-range
calls are listed apart (``[full-range]``) under the stage that made them (before
``detect.OPPOSITE_TURNS_DECIDE``). MTCNN's networks (``[P-Net]``, ``[R-Net]``, ``[O-Net]``, one call per input) are
counted under their stages too: the second look (``detect.rescued``), P-Net's small faces (``detect.small_faces``) and
the quarter check (``finder._quarter_turned``); YuNet's calls (``[YuNet]``) under its word on refined faces
(``detect.yunet_opinion``). ``--default-only`` runs the default search alone and adds each stage's thread CPU, the
model calls' time and everything around them (crops, decoding, merging). Scenes are the benchmark's *tune* part
(``bench_faces.py``), never the held-out one.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_faces import COST_CUTS, PHOTOS, THIRD_PASS, build
from face_sources import load_renders

from bump_backend.faces import (
    FaceFinderSettings,
    blazeface,
    detect,
    find_faces,
    finder,
    landmarks,
    mtcnn,
    runtime,
    yunet,
)

_stage = threading.local()
_calls: collections.Counter = collections.Counter()
_ms: collections.Counter = collections.Counter()
# this process's threads' CPU ms per outermost stage (not mediapipe's own threads')
_cpu: collections.Counter = collections.Counter()
_lock = threading.Lock()


class _Counted:
    """A mediapipe graph whose ``process`` calls are counted under the calling thread's stage."""

    def __init__(self, graph) -> None:
        self.graph = graph

    def process(self, image):
        start = time.perf_counter()
        out = self.graph.process(image)
        _record(" [full-range]" if image.shape[:2] == (192, 192) else "", 1, start)
        return out


def _record(model: str, calls: int, start: float) -> None:
    """Count ``calls`` model calls (``model``: the label after the stage's name) made since ``start`` under the
    calling thread's stage."""
    stage = (getattr(_stage, "name", None) or "other") + model
    with _lock:
        _calls[stage] += calls
        _ms[stage] += (time.perf_counter() - start) * 1000


def _staged(module, name: str, stage: str) -> None:
    """Run ``module.name`` with the thread's stage set (the outermost stage wins)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        outer = getattr(_stage, "name", None)
        _stage.name = outer or stage
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            _stage.name = outer
            if outer is None:
                with _lock:
                    _cpu[stage] += (time.thread_time() - start) * 1000

    setattr(module, name, wrapper)


def _wrap_graph(name: str) -> None:
    original = getattr(runtime, name)
    cache: dict = {}

    def wrapper(*args):
        graph = original(*args)
        return cache.setdefault(id(graph), _Counted(graph))

    setattr(runtime, name, wrapper)


_LITERT_LABELS = {"run_full_range": " [full-range]", "run_back": " [back-camera]"}


def _wrap_litert(name: str) -> None:
    """Count each input of a LiteRT call (``runtime.run_short_range``, ``run_full_range`` or ``run_back``) as one
    model call (as the graph path counts them)."""
    original = getattr(runtime, name)

    def wrapper(inputs):
        start = time.perf_counter()
        out = original(inputs)
        _record(_LITERT_LABELS.get(name, ""), inputs.shape[0], start)
        return out

    setattr(runtime, name, wrapper)


def _wrap_mtcnn() -> None:
    """Count each input of an MTCNN network's LiteRT call (``runtime.run_model``) as one call, by network."""
    original = runtime.run_model

    def wrapper(name, content, inputs, *args, **kwargs):
        start = time.perf_counter()
        out = original(name, content, inputs, *args, **kwargs)
        net = ("P-Net" if name.startswith("mtcnn-p-") else "R-Net" if name.startswith(f"mtcnn-{mtcnn.R_INPUT}-")
               else "O-Net")
        _record(f" [{net}]", inputs.shape[0], start)
        return out

    runtime.run_model = wrapper


def _wrap_yunet() -> None:
    """Count each YuNet call (``yunet.detect``, one crop) as one call."""
    original = yunet.detect

    def wrapper(image):
        start = time.perf_counter()
        out = original(image)
        _record(" [YuNet]", 1, start)
        return out

    yunet.detect = wrapper


def install() -> None:
    """Count every model call by stage (measuring only: the search itself is unchanged)."""
    for name in ("face_detector", "full_range_detector", "face_mesh"):
        _wrap_graph(name)
    _wrap_litert("run_short_range")
    _wrap_litert("run_full_range")
    _wrap_litert("run_back")
    _staged(detect, "back_opinion", "second opinion")
    _staged(detect, "_run_tiles", "tiles")
    _staged(detect, "second_opinion", "second opinion")
    _staged(detect, "recheck_turns", "re-check")
    _staged(landmarks, "fit_mesh", "mesh")
    _staged(detect, "recheck", "mesh re-check")
    _wrap_mtcnn()
    _staged(detect, "rescued", "second look")
    _staged(detect, "small_faces", "small faces")
    _staged(finder, "_quarter_turned", "quarter check")
    _wrap_yunet()
    _staged(detect, "yunet_opinion", "YuNet's word")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one scene of each size")
    parser.add_argument("--images", type=int, default=3, help="scenes of each size (3)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--four-turn", action="store_true", help="also the re-check that always sees four turns")
    parser.add_argument("--default-only", action="store_true",
                        help="only the default search, with each stage's CPU (a breakdown over more scenes)")
    args = parser.parse_args(argv)
    per_size = 1 if args.quick else args.images
    tune = [r for r in load_renders() if not r.held_out]
    scenes = build(args.seed, 2 * per_size, tune, PHOTOS)
    install()
    base = FaceFinderSettings(min_face_size=24, skip_smaller_than=0)
    # (label, settings, re-check stops when 0° and 180° see nothing, short-range model through LiteRT,
    # pyramid levels in windows, bench_faces.COST_CUTS on, bench_faces.THIRD_PASS on)
    turned = dataclasses.replace(base, rotations=(0, 180))
    variants = [("(0,), graph calls, tiles (before)", base, True, False, False, False, False),
                ("(0,), LiteRT, tiles", base, True, True, False, False, False),
                ("(0,), LiteRT, windows, before cost cuts", base, True, True, True, False, False),
                ("(0,), LiteRT, windows, cost cuts, before third pass", base, True, True, True, True, False),
                ("(0,), LiteRT, windows, cost cuts, third pass (default)", base, True, True, True, True, True),
                ("(0, 180), LiteRT, windows, cost cuts, third pass", turned, True, True, True, True, True)]
    if args.four_turn:
        variants.insert(0, ("(0,), 4-turn re-check, graph calls, tiles", base, False, False, False, False, False))
    if args.default_only:
        return _breakdown(scenes, base, variants[4][2:])
    for batched in (False, True):  # warm both threads' graphs and interpreters
        blazeface.USE_BATCH = batched
        find_faces(scenes[0].image, settings=base)
    load = os.getloadavg()[0]
    print("| size | setting | faces (true) | wall ms | CPU ms | counted calls | detector_calls | calls by stage (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for scene in scenes:
        h, w = scene.image.shape[:2]
        for label, settings, early, batched, windows, cuts, third in variants:
            detect.OPPOSITE_TURNS_DECIDE = early
            blazeface.USE_BATCH = batched
            detect.WINDOWS = windows
            for module, name in COST_CUTS:
                setattr(module, name, cuts)
            for module, name in THIRD_PASS:
                setattr(module, name, third)
            _calls.clear()
            _ms.clear()
            start, cpu = time.perf_counter(), time.process_time()
            result = find_faces(scene.image, settings=settings)
            wall, cpu = (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000
            stages = ", ".join(f"{k} {_calls[k]} ({_ms[k]:.0f})" for k in sorted(_calls, key=lambda k: -_calls[k]))
            found = [(round(f.centre[0]), round(f.centre[1])) for f in result.faces + [s.face for s in result.skipped]]
            print(f"| {w}x{h} | {label} | {len(found)} ({len(scene.faces)}) | {wall:.0f} | {cpu:.0f} | {sum(_calls.values())} | "
                  f"{result.detector_calls} | {stages} |")
    load = max(load, os.getloadavg()[0])
    print(f"\n{os.cpu_count()} CPUs, {base.workers} workers, load average up to {load:.1f} (shared machine); "
          "stage ms are summed over both worker threads")
    return 0


def _breakdown(scenes: list, settings: FaceFinderSettings, switches: tuple) -> int:
    """The default search per image size: wall and CPU per image, then per stage its thread CPU, model calls and
    model ms, summed over the scenes' images and divided by their count."""
    early, batched, windows, cuts, third = switches
    detect.OPPOSITE_TURNS_DECIDE, blazeface.USE_BATCH, detect.WINDOWS = early, batched, windows
    for modules, on in ((COST_CUTS, cuts), (THIRD_PASS, third)):
        for module, name in modules:
            setattr(module, name, on)
    find_faces(scenes[0].image, settings=settings)
    load = os.getloadavg()[0]
    for shape in sorted({s.image.shape[:2] for s in scenes}, reverse=True):
        group = [s for s in scenes if s.image.shape[:2] == shape]
        _calls.clear(), _ms.clear(), _cpu.clear()
        wall = cpu = 0.0
        for scene in group:
            start, used = time.perf_counter(), time.process_time()
            find_faces(scene.image, settings=settings)
            wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - used
        n = len(group)
        print(f"\n{shape[1]}x{shape[0]}, {n} scenes: {1000 * wall / n:.0f} ms wall, "
              f"{1000 * cpu / n:.0f} ms CPU an image")
        print("\n| stage | thread CPU ms | model | calls | model ms |\n|---|---|---|---|---|")
        for stage in sorted(_cpu, key=lambda k: -_cpu[k]):
            print(f"| {stage} | {_cpu[stage] / n:.0f} | | | |")
            for key in sorted((k for k in _calls if k.split(" [")[0] == stage), key=lambda k: -_ms[k]):
                model = key.split(" [")[1].rstrip("]") if " [" in key else "mesh" if stage == "mesh" else "short-range"
                print(f"| | | {model} | {_calls[key] / n:.1f} | {_ms[key] / n:.0f} |")
        rest = [k for k in _calls if k.split(" [")[0] not in _cpu]
        for key in sorted(rest, key=lambda k: -_ms[k]):
            print(f"| {key} | | | {_calls[key] / n:.1f} | {_ms[key] / n:.0f} |")
    load = max(load, os.getloadavg()[0])
    print(f"\n{os.cpu_count()} CPUs, {settings.workers} workers, load average up to {load:.1f}; thread CPU is that of "
          "the search's own threads under the stage (mediapipe's mesh runs on its own threads: its wall ms is under "
          "model ms); a stage inside another is counted under the outer one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
