"""The decode's cheaper anchor pick (issue 17's twenty-first pass) keeps what it replaces: only anchors whose logit can
reach the threshold are scored, and the detections are those of scoring every anchor."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bump_backend.faces import blazeface


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
