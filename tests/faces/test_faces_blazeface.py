"""The batched short-range detector against mediapipe's own graph, with the model shipped in the wheel."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, blazeface, detect, find_faces, runtime
from bump_backend.faces.groundtruth import make_scene

pytest.importorskip("mediapipe")
needs_litert = pytest.mark.skipif(not runtime.litert_available(), reason="ai-edge-litert is not installed")


@pytest.fixture(scope="module")
def tiles() -> list[np.ndarray]:
    """Every tile of a scene of real faces (24-64 px, all rolls, noise) at two turns, non-square ones included."""
    rng = np.random.default_rng(5)
    faces = [(40, 0), (30, 170), (48, -100), (36, 60), (28, -30), (44, 120), (64, 90)]
    scene = make_scene(rng, 960, 600, faces, mirror_chance=0.0, damage="noise")
    jobs = detect.tile_jobs(scene.image, 24, (0, 180), True, (0, 90, 180, 270))
    return [np.ascontiguousarray(np.rot90(j.level[j.rect[1]:j.rect[3], j.rect[0]:j.rect[2]], j.rotation // 90))
            for j in jobs]


def graph_detections(images: list[np.ndarray]) -> list[list[blazeface.Detection]]:
    detector = runtime.face_detector(blazeface.GRAPH_MIN_SCORE)
    return [blazeface.from_mediapipe(detector.process(image)) for image in images]


def assert_same(expected: list[list[blazeface.Detection]], got: list[list[blazeface.Detection]],
                images: list[np.ndarray]) -> None:
    assert len(expected) == len(got)
    for image, a, b in zip(images, expected, got, strict=True):
        h, w = image.shape[:2]
        assert len(a) == len(b), ([d.score for d in a], [d.score for d in b])
        for x, y in zip(sorted(a, key=lambda d: -d.score), sorted(b, key=lambda d: -d.score), strict=True):
            assert abs(x.score - y.score) < 0.01
            assert np.abs((np.array(x.box) - np.array(y.box)) * [w, h, w, h]).max() < 1.0
            assert np.abs((x.keypoints - y.keypoints) * [w, h]).max() < 1.0


def test_anchors_follow_the_graphs_layout():
    anchors = blazeface.ssd_anchors()
    assert anchors.shape == (896, 2)
    # stride 8: 16x16 cells, 2 anchors each, row by row; then stride 16: 8x8 cells, 6 each
    assert np.allclose(anchors[0], anchors[1]) and np.allclose(anchors[0], (0.5 / 16, 0.5 / 16))
    assert np.allclose(anchors[2], (1.5 / 16, 0.5 / 16)) and np.allclose(anchors[511], (15.5 / 16, 15.5 / 16))
    assert np.allclose(anchors[512:518], (0.5 / 8, 0.5 / 8)) and np.allclose(anchors[-1], (7.5 / 8, 7.5 / 8))


@needs_litert
def test_batched_model_matches_the_graph_on_real_tiles(tiles):
    assert {t.shape for t in tiles} > {(128, 128, 3)}  # edge-of-level tiles are not square
    expected = graph_detections(tiles)
    assert sum(len(d) for d in expected) >= 20  # faces (and some clutter) are seen: the check has teeth
    assert_same(expected, blazeface.detect_many(tiles, 0.5), tiles)


@needs_litert
def test_letterbox_of_odd_and_small_inputs_matches_the_graph(tiles):
    """Inputs the pyramid can make for small images: odd sizes, upscaled, portrait."""
    faces = [t for t, d in zip(tiles, graph_detections(tiles), strict=True) if d][:3]
    odd = [np.ascontiguousarray(t[: 128 - 11 * (i + 1)]) for i, t in enumerate(faces)]
    small = [np.ascontiguousarray(t[::2, ::2][:50]) for t in faces]
    images = odd + small + [np.ascontiguousarray(np.rot90(o)) for o in odd]
    assert_same(graph_detections(images), blazeface.detect_many(images, 0.5), images)


def test_scores_under_the_graphs_floor_are_dropped_on_both_paths(tiles, monkeypatch):
    low = [d.score for ds in blazeface.detect_many(tiles, 0.2) for d in ds]
    assert low and min(low) >= blazeface.GRAPH_MIN_SCORE
    monkeypatch.setattr(runtime, "litert_available", lambda: False)  # the fallback: one graph call per tile
    fallback = blazeface.detect_many(tiles, 0.2)
    assert_same(graph_detections(tiles), fallback, tiles)


@needs_litert
def test_find_faces_is_the_same_on_both_paths(rolled_scene, monkeypatch):
    settings = FaceFinderSettings(skip_smaller_than=0, workers=1)
    batched = find_faces(rolled_scene.image, settings=settings)
    monkeypatch.setattr(blazeface, "USE_BATCH", False)
    graph = find_faces(rolled_scene.image, settings=settings)
    assert len(batched.faces) == len(graph.faces) == len(rolled_scene.faces)
    assert batched.detector_calls == graph.detector_calls
    for a, b in zip(batched.faces, graph.faces, strict=True):
        assert np.allclose(a.centre, b.centre, atol=0.5) and abs(a.score - b.score) < 0.01
        assert a.roll == pytest.approx(b.roll, abs=0.5)
