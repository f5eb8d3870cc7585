"""The benchmark's crowd parts (bench_faces.py --part crowd / crowd_tune): faces packed in clusters, each beside one
placed before it, as the faces of a crowd are (heads pasted later cover the edges of those before)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
bench_faces = pytest.importorskip("bench_faces")
face_sources = pytest.importorskip("face_sources")


def _crowd(seed: int, count: int):
    group = tuple(f for f in face_sources.group_faces() if f.held_out)
    return bench_faces.build(seed, count, [], ("astronaut", "grace_hopper"), **(bench_faces.CROWD | {"group": group}))


def test_each_face_after_the_first_lies_beside_one_placed_before_it():
    spacing, reach = bench_faces.CROWD["spacing"], bench_faces.PACKED_REACH
    for scene in _crowd(5, 2):
        faces = scene.faces
        low, high = bench_faces.CROWD["faces"]
        assert low - 2 <= len(faces) < high  # a face that finds no place in 200 draws is left out
        for i, face in enumerate(faces):
            gaps = [math.dist(face.centre, o.centre) / (face.size + o.size) for o in faces[:i]]
            assert all(g > spacing - 1e-6 for g in gaps)
            if i:
                # beside one placed before it (its truth centre may move ~1 px off the drawn one)
                assert min(gaps) < spacing + reach + 0.05

