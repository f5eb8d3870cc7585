"""Identity ranking on real face photos: the astronaut is nearer the astronaut than Grace Hopper is."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from bump_backend.generate import rank


def _crop(image: np.ndarray, centre: tuple[float, float], side: float, size: int = 256, angle: float = 0.0):
    """The face square plus 35 % padding, upright (optionally rotated), at ``size`` px."""
    full = side * 1.7
    scale = size / full
    m = cv2.getRotationMatrix2D(centre, angle, scale)
    m[:, 2] += (size / 2 - centre[0], size / 2 - centre[1])
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def faces():
    import matplotlib
    from skimage import data

    astronaut = data.astronaut()
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    hopper = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    return {
        "astronaut": _crop(astronaut, (224.8, 124.3), 100.0),
        "astronaut_tilted": _crop(astronaut, (224.8, 124.3), 100.0, size=200, angle=10.0),
        "hopper": _crop(hopper, (264.5, 232.9), 195.0),
    }


def test_ranking_orders_by_true_identity(faces):
    embedder = rank.DlibEmbedder()
    references = rank.embed_references(rank.DlibEmbedder(require_detection=True), [faces["astronaut"]])
    assert len(references) == 1
    candidates = [faces["hopper"], faces["astronaut_tilted"]]
    scores = rank.score_candidates(embedder, candidates, references)
    assert rank.best_index(scores) == 1
    same = 1 - scores[1]
    different = 1 - scores[0]
    assert same < 0.45 < 0.55 < different  # dlib's usual threshold is 0.6


def test_no_face_is_none_when_detection_is_required():
    blank = np.full((200, 200, 3), 255, np.uint8)
    assert rank.DlibEmbedder(require_detection=True).embed(blank) is None
    assert rank.DlibEmbedder().embed(blank).shape == (128,)
