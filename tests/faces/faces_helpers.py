"""Helpers for the face tests (imported by name: tests/faces has no __init__.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bump_backend.faces import Face, FaceFinderSettings, detect, find_faces, groundtruth
from bump_backend.faces.groundtruth import Scene, TruthFace, background, clutter, degrade, make_scene
from bump_backend.faces.transform import wrap
from bump_backend.faces.types import rotated_square_bounds


def upright_face(centre: tuple[float, float], size: float, score: float, extra: dict | None = None) -> Face:
    """A detector face of ``size`` px at ``centre``, upright, with ``extra`` (the marks the dedupe rules read)."""
    return Face(box=rotated_square_bounds(centre, size, 0.0), score=score, eyes=((0.0, 0.0), (1.0, 0.0)), roll=0.0,
                yaw=0.0, pitch=0.0, source="detector", extra=dict(extra or {}))


def without_second_tries(monkeypatch) -> None:
    """R-Net's turns between the quarter turns and O-Net's second tries off (detect.R_NET_OFFSETS, detect.ONET_RETRY):
    the second look before issue 17's twenty-fifth pass, for tests of a rule those tries would also make up for."""
    monkeypatch.setattr(detect, "R_NET_OFFSETS", (0.0,))
    monkeypatch.setattr(detect, "ONET_RETRY", False)


def darkened_face(source: str, roll: float, size: float = 24.0, dark: float = 0.35) -> tuple[np.ndarray, TruthFace]:
    """A 200 px clutter scene with one face pasted at a third of its brightness: R-Net and P-Net read such faces less
    surely, as they do dark skin."""
    image = clutter(np.random.default_rng(8), 200, 200)
    face = np.zeros_like(image)
    truth = groundtruth.place_face(face, source, (100.0, 100.0), size, roll)
    return np.where(face.max(axis=2, keepdims=True) > 0, (face * dark).astype(np.uint8), image), truth


def p_net_turn_reads(image: np.ndarray, truth) -> list[float]:
    """P-Net's best peak (from 0.3) within half a face of ``truth``'s centre at each quarter turn, 0 to 3: which turns
    the small-face proposals can see the face at (``truth``: anything with ``centre`` and ``size``)."""
    level = detect.small_face_level(image)
    reads = []
    for turn in range(4):
        peaks = detect.small_face_peaks(image, turn, threshold=0.3, level=level)
        reads.append(max([s for x, y, s in peaks if math.dist((x, y), truth.centre) < 0.5 * truth.size], default=0.0))
    return reads


LFW_DAMAGE = ("blur", "jpeg", "none")


def lfw_face_alone(index: int, roll: int, damage: str) -> tuple[np.ndarray, TruthFace]:
    """A 320x240 grey clutter scene with one LFW crop of 24 px at its centre, drawn from (index, roll, damage): the
    small-face tests' cases were searched for among such scenes. Needs benchmarks/ importable (the callers'
    ``pytest.importorskip("bench_faces")``)."""
    import bench_faces
    import face_sources

    rng = np.random.default_rng(index * 1000 + roll % 360 + LFW_DAMAGE.index(damage))
    canvas = bench_faces._grey(bench_faces.clutter(rng, 320, 240))
    truth = bench_faces.place_real(canvas, face_sources.real_faces()[index], (160.0, 120.0), 24.0, float(roll), False)
    return bench_faces._grey(degrade(canvas, damage, rng)), truth


def small_faces_near(image: np.ndarray, truth: TruthFace) -> list[detect.Candidate]:
    """P-Net's small faces (``detect.small_faces``) within half a face of ``truth``'s centre."""
    return [c for c in detect.small_faces(image) if math.dist(c.centre, truth.centre) < 0.5 * truth.size]


def won_by_rule(image: np.ndarray, truth: TruthFace, settings: FaceFinderSettings, o_bar: float,
                rule_off: Callable[[], None]) -> None:
    """Assert ``truth`` is proposed as one small face O-Net reads ``o_bar`` or more, within 15° of its roll, and found
    there; then, after ``rule_off()`` takes a rule away, neither. Needs benchmarks/ importable, as
    ``lfw_face_alone``."""
    proposed = small_faces_near(image, truth)
    assert len(proposed) == 1 and proposed[0].o_net >= o_bar
    assert abs(wrap(proposed[0].roll - truth.roll)) <= 15.0
    found = found_matching(image, truth, settings)
    assert len(found) == 1 and abs(wrap(found[0].roll - truth.roll)) <= 15.0
    rule_off()
    assert not small_faces_near(image, truth)
    assert not found_matching(image, truth, settings)


def found_matching(image: np.ndarray, truth: TruthFace, settings: FaceFinderSettings) -> list[Face]:
    """The faces (kept or skipped) the search finds on ``image`` that the benchmark counts as ``truth`` found. Needs
    benchmarks/ importable, as ``lfw_face_alone``."""
    import bench_faces

    result = find_faces(image, settings=settings)
    return [f for f in result.faces + [s.face for s in result.skipped]
            if bench_faces.matches(truth, bench_faces.found_face(f))]


def truth_face(t: TruthFace, yaw: float = 0.0) -> Face:
    """The Face a perfect finder would return for a pasted face."""
    eyes = sorted([t.right_eye, t.left_eye])
    return Face(box=rotated_square_bounds(t.centre, t.size, t.roll), score=1.0, eyes=(eyes[0], eyes[1]),
                roll=t.roll, yaw=yaw, pitch=0.0, source="geometry")


def match(truth: TruthFace, faces: list[Face]) -> Face | None:
    for f in faces:
        near = math.dist(f.centre, truth.centre) < 0.35 * truth.size
        if near and 0.75 < f.size / truth.size < 1.33:
            return f
    return None


def roll_error(a: float, b: float) -> float:
    return abs(wrap(a - b))


def one_pasted_face(seed: int) -> Scene:
    """A 320 px clutter scene with one pasted face of 32-96 px at any roll, damaged none/noise/JPEG, drawn from
    ``seed`` (the seeds the refinement and re-check tests name pick their faces this way)."""
    rng = np.random.default_rng(seed)
    size, roll = float(rng.choice([32, 40, 48, 64, 96])), float(rng.uniform(-180, 180))
    damage = str(rng.choice(["none", "noise", "jpeg"]))
    return make_scene(rng, 320, 320, [(size, roll)], damage=damage)


def clutter_squares(seed: int, count: int) -> tuple[np.ndarray, list[tuple[tuple[float, float], float, float]]]:
    """A 640x480 clutter image and ``count`` random (centre, side, roll) squares on it, 24-96 px at any roll: where a
    face model asked for an opinion should see no face."""
    rng = np.random.default_rng(seed)
    image = background(rng, 640, 480)
    return image, [((float(rng.uniform(60, 580)), float(rng.uniform(60, 420))), float(rng.uniform(24, 96)),
                    float(rng.uniform(-180, 180))) for _ in range(count)]
