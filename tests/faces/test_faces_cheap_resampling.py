"""The twenty-first pass's cheaper resampling and decoding keep what they replace: detector crops area-averaged by
halving, and scores computed only for anchors that can pass."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import align, blazeface, transform
from bump_backend.faces.align import detector_crop, warp


def _stripes(height: int, width: int) -> np.ndarray:
    """One-pixel black and white columns: what a shrink without area-averaging turns into moiré."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, ::2] = 255
    return image


@pytest.mark.parametrize("shrink", [3.0, 6.5, 11.0])
def test_a_halved_detector_crop_does_not_alias(shrink):
    image = _stripes(1200, 1200)
    matrix = transform.upright((600.0, 600.0), 17.0, 1 / shrink, (64.0, 64.0))
    crop = detector_crop(image, matrix, (128, 128)).astype(np.float64)
    plain = cv2.warpAffine(image, transform.to_index(matrix), (128, 128), flags=cv2.INTER_CUBIC).astype(np.float64)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 12  # the stripes' mean grey, nearly flat
    assert plain.std() > 40  # the same warp unfiltered aliases


def test_a_halved_detector_crop_keeps_places_and_matches_the_exact_area_warp():
    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.integers(0, 256, (900, 1100, 3), np.uint8), (0, 0), 6)
    image[400:440, 500:540] = 255  # a white square centred on (520, 420)
    for scale, roll in [(0.3, 0.0), (0.13, 33.0), (0.07, -120.0)]:
        matrix = transform.upright((520.0, 420.0), roll, scale, (64.0, 64.0))
        crop = detector_crop(image, matrix, (128, 128))
        exact = warp(image, matrix, (128, 128))
        assert np.abs(crop.astype(np.int16) - exact).mean() < 4.0
        grey = crop.astype(np.float64).mean(axis=2)
        bright = grey > grey.max() - 0.25 * (grey.max() - np.median(grey))
        ys, xs = np.nonzero(bright)
        assert math.hypot(xs.mean() + 0.5 - 64.0, ys.mean() + 0.5 - 64.0) < 1.0, (scale, roll)


def test_with_the_switch_off_a_detector_crop_is_the_exact_area_warp(monkeypatch):
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (700, 700, 3), np.uint8)
    matrix = transform.upright((350.0, 340.0), 71.0, 0.11, (96.0, 96.0))
    monkeypatch.setattr(align, "AA_HALVING", False)
    assert np.array_equal(detector_crop(image, matrix, (192, 192)), warp(image, matrix, (192, 192)))


def _decode_every_anchor(raw_boxes, raw_scores, threshold, below=None):
    """The decode's anchor pick before this pass: every anchor scored, then tested (the oracle)."""
    scores = 1 / (1 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -blazeface.SCORE_CLIP,
                                      blazeface.SCORE_CLIP)))
    return np.flatnonzero((scores >= threshold) & (scores < (np.inf if below is None else below))), scores


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**16), threshold=st.sampled_from([0.0, 0.2, 0.3, 0.45, 0.5, 0.6, 0.999, 1.0]),
       band=st.booleans())
def test_decode_scores_only_anchors_that_can_pass_and_keeps_the_same_ones(seed, threshold, band):
    rng = np.random.default_rng(seed)
    raw_scores = rng.normal(-4, 6, (1, 896)).astype(np.float32)
    # Logits exactly at the threshold's, a rounding either side of it, and past the clip.
    if 0 < threshold < 1:
        at = np.float32(math.log(threshold / (1 - threshold)))
        raw_scores[0, :3] = [at, np.nextafter(at, np.float32(-np.inf)), np.nextafter(at, np.float32(np.inf))]
    raw_scores[0, 3:5] = [150.0, -150.0]
    raw_boxes = rng.normal(0, 3, (896, 16)).astype(np.float32)
    raw_boxes[:, 2:4] = np.abs(raw_boxes[:, 2:4]) + 10
    below = min(1.0, threshold + 0.3) if band else None
    keep, scores = _decode_every_anchor(raw_boxes, raw_scores, threshold, below)
    expected = list(blazeface._weighted_nms(scores[keep], *_boxes_and_points(raw_boxes[keep], keep))) if keep.size else []
    got = blazeface.decode(raw_boxes, raw_scores, threshold, below=below)
    assert len(got) == len(expected)
    for detection, (score, box, _) in zip(got, expected, strict=True):
        assert detection.score == float(score)
        assert np.allclose(detection.box, (box[0], box[1], box[2] - box[0], box[3] - box[1]), atol=1e-12)


def _boxes_and_points(raw: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw = raw.astype(np.float64) / blazeface.INPUT
    anchors = blazeface.ANCHORS[keep].astype(np.float64)
    centre, half = raw[:, 0:2] + anchors, raw[:, 2:4] / 2
    points = raw[:, 4:4 + 2 * blazeface.KEYPOINTS].reshape(-1, blazeface.KEYPOINTS, 2) + anchors[:, None, :]
    return np.concatenate([centre - half, centre + half], axis=1), points
