"""Character library benchmark: queries on a big library, and import-images of a 300-frame clip.

    python benchmarks/bench_library.py [--characters 10000] [--runs 50000] [--frames 300]

Builds the library through the public API (so the numbers include the real write path), then
times the queries the add-on's panel makes. Prints a Markdown table for docs/library.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "library"))

from character_library import Library


def timed(fn, repeat: int = 20) -> float:
    """Median milliseconds of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def build(root: Path, characters: int, runs: int) -> tuple[Library, float, float]:
    lib = Library.open(root)
    rng = random.Random(1)
    eth = ["Spanish", "Korean", "Nigerian", "Irish", "Brazilian", "Indian"]
    start = time.perf_counter()
    ids = []
    for i in range(characters):
        c = lib.create_character(
            f"Character {i:05d}", age=rng.randint(18, 80), gender=rng.choice(["man", "woman"]), ethnicity=rng.choice(eth),
            features=rng.choice(["goatee", "freckles", "mole on cheek", "short beard", ""]), tags=[f"set{i % 20}"],
            notes=f"note {i}",
        )
        ids.append(c.id)
    per_character = (time.perf_counter() - start) / characters * 1000
    start = time.perf_counter()
    for i in range(runs):
        lib.add_run(ids[i % 50] if i < runs // 2 else rng.choice(ids), seed=rng.randint(0, 2**31), steps=rng.randint(33, 40),
                    cfg=7.0, denoise=rng.choice([0.32, 0.35, 0.4]), sampler="Restart", identity_score=rng.random())
    per_run = (time.perf_counter() - start) / max(runs, 1) * 1000
    return lib, per_character, per_run


def bench_queries(lib: Library, characters: int) -> list[tuple[str, float]]:
    busy = lib.list_characters(limit=1)[0].id  # character 00000 holds ~500 runs
    return [
        ("list first page (50, by name)", timed(lambda: lib.list_characters(limit=50))),
        (f"list all {characters:,} characters as summaries (list_summaries)", timed(lambda: lib.list_summaries(), repeat=5)),
        (f"list all {characters:,} characters as full records", timed(lambda: lib.list_characters(), repeat=5)),
        ("count all", timed(lambda: lib.count_characters())),
        ("search text 'freckles' (page of 50)", timed(lambda: lib.list_characters("freckles", limit=50))),
        ("search name 'character 0042'", timed(lambda: lib.list_characters("character 0042"))),
        ("search with no hit", timed(lambda: lib.list_characters("zzzz"))),
        (f"filter by tag ({characters // 20:,} hits)", timed(lambda: lib.list_characters(tag="set7"))),
        ("open one character by name", timed(lambda: lib.get_character(f"Character {int(characters * 0.4242):05d}"))),
        ("best 5 runs of a character with ~500 runs", timed(lambda: lib.best_runs(busy, limit=5))),
        ("best seeds of that character", timed(lambda: lib.best_seeds(busy))),
        ("newest 50 runs of that character", timed(lambda: lib.list_runs(busy, limit=50))),
        ("open the library (Library.open)", timed(lambda: Library.open(lib.root).close(), repeat=5)),
    ]


def bench_import(frames: int, tmp: Path) -> tuple[float, int, dict]:
    import cv2
    from face_fixtures import astronaut, turn_head

    from bump_backend.library_import import ImportOptions, build_package

    base = astronaut()
    angles = list(range(-30, 31, 5))
    turned = {a: turn_head(base, a) for a in angles}
    video = tmp / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (512, 512))
    for i in range(frames):
        # a head turning left and right, with every 25th frame motion-blurred
        phase = (i / frames) * 2 * len(angles)
        frame = turned[angles[int(phase) % len(angles)]]
        if i % 25 == 7:
            frame = cv2.blur(frame, (15, 1))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    start = time.perf_counter()
    report = build_package([video], tmp / "pkg", "clip_1", "Clip", ImportOptions())
    return {report.detector: ((time.perf_counter() - start) / frames * 1000, len(report.kept), report.frames)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--characters", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib, per_char, per_run = build(tmp / "lib", args.characters, args.runs)
        rows = bench_queries(lib, args.characters)
        lib.close()
        imports = bench_import(args.frames, tmp) if args.frames else {}
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    print(f"Library of {args.characters:,} characters and {args.runs:,} history runs (median of repeated calls):\n")
    print("| operation | ms |\n|---|---:|")
    print(f"| create a character (write path, incl. folder + character.json) | {per_char:.2f} |")
    print(f"| add a history run (row + history.jsonl append) | {per_run:.2f} |")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")
    if imports:
        print(f"\nimport-images of a {args.frames}-frame 512x512 clip:\n")
        print("| detector | ms per frame | views kept | frames read |\n|---|---:|---:|---:|")
    for detector, (ms, kept, frames) in imports.items():
        print(f"| {detector} | {ms:.1f} | {kept} | {frames} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
