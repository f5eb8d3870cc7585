"""The batched short-range detector against mediapipe's own graph, with the model shipped in the wheel."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import FaceFinderSettings, blazeface, detect, find_faces, runtime, transform
from bump_backend.faces.align import warp
from bump_backend.faces.groundtruth import make_scene

pytest.importorskip("mediapipe")
needs_litert = pytest.mark.skipif(not runtime.litert_available(), reason="ai-edge-litert is not installed")


@pytest.fixture(scope="module")
def tiles() -> list[np.ndarray]:
    """Every tile of a scene of real faces (24-64 px, all rolls, noise) at two turns, non-square ones included."""
    rng = np.random.default_rng(5)
    faces = [(40, 0), (30, 170), (48, -100), (36, 60), (28, -30), (44, 120), (64, 90)]
    scene = make_scene(rng, 960, 600, faces, mirror_chance=0.0, damage="noise")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(detect, "WINDOWS", False)  # the 128 px tiles of every level
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


def test_without_a_loadable_litert_the_graph_runs(tiles, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails as on a broken install
    runtime.litert_available.cache_clear()
    try:
        assert not runtime.litert_available() and not detect.use_windows()
        images = tiles[:12]
        assert_same(graph_detections(images), blazeface.detect_many(images, 0.5), images)
    finally:
        monkeypatch.undo()
        runtime.litert_available.cache_clear()


def test_scores_under_the_graphs_floor_are_dropped_on_both_paths(tiles, monkeypatch):
    low = [d.score for ds in blazeface.detect_many(tiles, 0.2) for d in ds]
    assert low and min(low) >= blazeface.GRAPH_MIN_SCORE
    monkeypatch.setattr(runtime, "litert_available", lambda: False)  # the fallback: one graph call per tile
    fallback = blazeface.detect_many(tiles, 0.2)
    assert_same(graph_detections(tiles), fallback, tiles)


@needs_litert
def test_find_faces_on_tiles_is_the_same_on_both_paths(rolled_scene, monkeypatch):
    settings = FaceFinderSettings(skip_smaller_than=0, workers=1)
    monkeypatch.setattr(detect, "WINDOWS", False)
    batched = find_faces(rolled_scene.image, settings=settings)
    monkeypatch.setattr(blazeface, "USE_BATCH", False)
    graph = find_faces(rolled_scene.image, settings=settings)
    assert len(batched.faces) == len(graph.faces) == len(rolled_scene.faces)
    assert batched.detector_calls == graph.detector_calls
    for a, b in zip(batched.faces, graph.faces, strict=True):
        assert np.allclose(a.centre, b.centre, atol=0.5) and abs(a.score - b.score) < 0.01
        assert a.roll == pytest.approx(b.roll, abs=0.5)


@needs_litert
def test_a_window_reads_like_the_tiles_it_covers(tiles):
    """The model run over a larger input: the same anchors per cell, mapped back to the window's pixels.

    A 128 px tile that holds a whole face, pasted into a grey 400x272 canvas at (144, 96) (multiples of the
    16 px stride, so the cells line up): its best detection lands where the tile alone puts it.
    """
    found = 0
    for tile, alone in zip(tiles, blazeface.detect_many(tiles, 0.5), strict=True):
        if tile.shape != (128, 128, 3) or not alone or alone[0].score < 0.8:
            continue
        x, y, w, h = alone[0].box
        if min(x, y) < 0.05 or max(x + w, y + h) > 0.95:
            continue  # cut by the tile's border: the tile alone does not see all of it
        canvas = np.full((272, 400, 3), 127, np.uint8)
        canvas[96:224, 144:272] = tile
        window = blazeface.detect_windows([canvas], 0.5)[0]
        best = alone[0]
        centre = np.array([best.box[0] + best.box[2] / 2, best.box[1] + best.box[3] / 2]) * 128 + (144, 96)
        near = [d for d in window
                if np.hypot(*(np.array([d.box[0] + d.box[2] / 2, d.box[1] + d.box[3] / 2]) * (400, 272) - centre)) < 4]
        assert near, "the window lost a face its tile sees at >= 0.8"
        assert abs(near[0].score - best.score) < 0.05
        assert abs(near[0].box[2] * 400 - best.box[2] * 128) < 0.1 * best.box[2] * 128
        assert np.abs(near[0].keypoints * (400, 272) - (best.keypoints * 128 + (144, 96))).max() < 0.1 * best.box[2] * 128
        found += 1
    assert found >= 3


@needs_litert
def test_windows_take_the_threshold_as_given(tiles):
    """Windows are not compared with the graph, so the proposal threshold (0.45) is not raised to 0.5."""
    canvas = np.concatenate([np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, 16, 4)
                             if all(t.shape == (128, 128, 3) for t in tiles[i:i + 4])], axis=0)
    scores = [d.score for d in blazeface.detect_windows([canvas], 0.3)[0]]
    assert min(scores) >= 0.3 and any(s < blazeface.GRAPH_MIN_SCORE for s in scores)
    assert all(d.score >= 0.5 for d in blazeface.detect_windows([canvas], 0.5)[0])


@needs_litert
def test_weak_window_detections_leave_the_strong_ones_as_they_were(tiles):
    """The weak detections (detect.rescued's input) come from the same model call, decoded apart: the strong ones
    are exactly those of the threshold alone, the weak ones all under it."""
    canvas = np.concatenate([np.concatenate(tiles[i:i + 4], axis=1) for i in range(0, 16, 4)
                             if all(t.shape == (128, 128, 3) for t in tiles[i:i + 4])], axis=0)
    alone = blazeface.detect_windows([canvas], 0.45)[0]
    strong, weak = blazeface.detect_windows([canvas], 0.45, 0.2)
    assert [(d.score, d.box) for d in strong[0]] == [(d.score, d.box) for d in alone]
    assert weak[0] and all(0.2 <= d.score < 0.45 for d in weak[0])
    # The faint band (detect.RESCUE_FAINT) is decoded apart again: the weak ones stay those of their floor alone.
    strong_, weak_ = blazeface.detect_windows([canvas], 0.45, 0.3)
    again, weaker, faint = blazeface.detect_windows([canvas], 0.45, 0.3, 0.15)
    assert [(d.score, d.box) for d in again[0]] == [(d.score, d.box) for d in alone]
    assert [(d.score, d.box) for d in weaker[0]] == [(d.score, d.box) for d in weak_[0]]
    assert faint[0] and all(0.15 <= d.score < 0.3 for d in faint[0])


@pytest.fixture(scope="module")
def full_range_crops() -> list[np.ndarray]:
    """192 px crops as the second opinion cuts them: real faces (24-120 px) at, near and off their roll, and clutter."""
    rng = np.random.default_rng(5)
    faces = [(40, 0), (30, 170), (48, -100), (36, 60), (28, -30), (44, 120), (64, 90), (96, 10), (120, -40)]
    scene = make_scene(rng, 960, 600, faces, mirror_chance=0.0, damage="noise")
    crops = []
    for face in scene.faces:
        for offset in (0.0, -8.0, 8.0, 90.0, 180.0):
            matrix = transform.upright(face.centre, face.roll + offset, min(0.4 * 192 / face.size, 1.0), (96.0, 96.0))
            crops.append(warp(scene.image, matrix, (192, 192)))
    for _ in range(12):
        centre = rng.uniform(100, 860), rng.uniform(100, 500)
        matrix = transform.upright(centre, rng.uniform(0, 360), rng.uniform(0.5, 1.0), (96.0, 96.0))
        crops.append(warp(scene.image, matrix, (192, 192)))
    return crops


def test_anchors_of_the_full_range_model():
    anchors = blazeface.FULL_RANGE_ANCHORS
    assert anchors.shape == (2304, 2)  # 48x48 cells of 4 px, one anchor each, row by row
    assert np.allclose(anchors[0], (0.5 / 48, 0.5 / 48)) and np.allclose(anchors[1], (1.5 / 48, 0.5 / 48))
    assert np.allclose(anchors[48], (0.5 / 48, 1.5 / 48)) and np.allclose(anchors[-1], (47.5 / 48, 47.5 / 48))


@needs_litert
def test_full_range_model_through_litert_matches_the_graph(full_range_crops, monkeypatch):
    graph = runtime.full_range_detector()
    expected = [blazeface.from_mediapipe(graph.process(c)) for c in full_range_crops]
    assert sum(len(d) for d in expected) >= 15  # real faces are seen: the check has teeth
    assert min(d.score for ds in expected for d in ds) >= blazeface.FULL_RANGE_MIN_SCORE  # the graph's floor
    assert blazeface.full_range_litert()
    assert_same(expected, [blazeface.detect_full_range(c) for c in full_range_crops], full_range_crops)
    monkeypatch.setattr(runtime, "litert_available", lambda: False)  # the fallback: the graph itself
    assert_same(expected, [blazeface.detect_full_range(c) for c in full_range_crops], full_range_crops)



def _plain_weighted_nms(scores, boxes, points, iou=0.3):
    """mediapipe's weighted suppression written plainly: the reference for blazeface._weighted_nms."""
    order, out = list(np.argsort(-scores, kind="stable")), []
    while order:
        best = boxes[order[0]]
        group = []
        for i in order:
            lo, hi = np.maximum(best[:2], boxes[i, :2]), np.minimum(best[2:], boxes[i, 2:])
            inter = float(np.prod(np.clip(hi - lo, 0, None)))
            union = float(np.prod(best[2:] - best[:2]) + np.prod(boxes[i, 2:] - boxes[i, :2]) - inter)
            if i == order[0] or (union > 0 and inter / union > iou):
                group.append(i)
        order = [i for i in order if i not in group]
        w = scores[group]
        out.append((scores[group[0]], (boxes[group] * w[:, None]).sum(0) / w.sum(),
                    (points[group] * w[:, None, None]).sum(0) / w.sum()))
    return out


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_weighted_suppression_groups_as_the_plain_rule(count, seed):
    rng = np.random.default_rng(seed)
    centres, sides = rng.uniform(0, 100, (count, 2)), rng.uniform(0, 30, (count, 1))  # zero-area boxes too
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
    scores, points = rng.uniform(0.2, 1.0, count).round(2), rng.uniform(0, 100, (count, 6, 2))  # ties in score
    plain = _plain_weighted_nms(scores, boxes, points)
    for ours in (blazeface._weighted_nms(scores, boxes, points), blazeface._weighted_nms_before(scores, boxes, points)):
        ours = list(ours)
        assert len(ours) == len(plain)
        for (score, box, kp), (score_, box_, kp_) in zip(ours, plain, strict=True):
            assert score == score_
            np.testing.assert_allclose(box, box_, atol=1e-9)
            np.testing.assert_allclose(kp, kp_, atol=1e-9)
