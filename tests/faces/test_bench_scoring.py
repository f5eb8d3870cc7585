"""How benchmarks/bench_faces.py scores a scene: hits, misses, and false positives listed with the pasted face nearest
each (a face read at the wrong size lies on one; clutter away from every one)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")

from bump_backend.faces.groundtruth import TruthFace  # noqa: E402


def _truth(x: float, y: float, size: float) -> TruthFace:
    half = size / 2
    return TruthFace(box=(x - half, y - half, x + half, y + half), right_eye=(x - 0.2 * size, y),
                     left_eye=(x + 0.2 * size, y), roll=0.0, size=size, source="demo/front", mirrored=False)


def test_a_scene_s_false_positives_are_listed_with_the_pasted_face_nearest_each():
    scene = bench_faces.Scene(np.zeros((400, 400, 3), np.uint8), [_truth(100, 100, 24), _truth(300, 300, 48)])
    found = [bench_faces.Found((101.0, 99.0), 25.0, 3.0),  # the 24 px face
             bench_faces.Found((102.0, 103.0), 44.0, 10.0),  # the same face read 1.8x its size
             bench_faces.Found((300.0, 60.0), 50.0, -90.0)]  # clutter
    tally = bench_faces.Tally()
    bench_faces.score(tally, scene, found, 7)
    assert tally.false_positives == 2 and tally.images == 1
    assert tally.false_positive_list == [(7, (102, 103), 44, 10, (4, 24)), (7, (300, 60), 50, -90, (204, 24))]
    assert [miss[:3] for miss in tally.misses] == [(7, "demo/front", 48)]


def test_a_false_positive_on_a_face_free_image_has_no_nearest_face():
    tally = bench_faces.Tally()
    bench_faces.score(tally, bench_faces.Scene(np.zeros((64, 64, 3), np.uint8), []),
                      [bench_faces.Found((30.0, 30.0), 24.0, 0.0)], 0)
    assert tally.false_positive_list == [(0, (30, 30), 24, 0, None)]
