"""finder._yunet_sized (issue 17's thirty-ninth pass): a face the mesh did not fit, reported well over its size (a
blurred head, hair and all), takes the square YuNet's box gives on a crop made for a smaller face; a face reported at
its size, and a mesh-fitted one, keep their own."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from faces_helpers import truth_face

from bump_backend.faces import FaceFinderSettings, detect, finder, groundtruth, yunet
from bump_backend.faces.groundtruth import clutter
from bump_backend.faces.types import rotated_square_bounds

pytestmark = pytest.mark.skipif(not yunet.available(), reason="YuNet (yuface) is not installed")


def _astronaut(roll: float, size: float, blur: float) -> tuple[np.ndarray, groundtruth.TruthFace]:
    image = clutter(np.random.default_rng(3), 220, 220)
    truth = groundtruth.place_face(image, "astronaut", (110.0, 110.0), size, roll)
    return (cv2.GaussianBlur(image, (0, 0), blur) if blur else image), truth


def _group_head(roll: float, size: float, blur: float) -> tuple[np.ndarray, groundtruth.TruthFace]:
    """A whole head of the group photo (a tune face: its hair reads as face to the BlazeFace models when blurred)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    bench_faces = pytest.importorskip("bench_faces")
    face_sources = pytest.importorskip("face_sources")
    image = clutter(np.random.default_rng(4), 220, 220)
    truth = bench_faces.place_group(image, face_sources.group_faces()[4], (110.0, 110.0), size, roll, False)
    return cv2.GaussianBlur(image, (0, 0), blur), truth


def _too_large(truth: groundtruth.TruthFace, times: float):
    return dataclasses.replace(truth_face(truth), box=rotated_square_bounds(truth.centre, times * truth.size, truth.roll),
                               sharpness=50.0)


@pytest.mark.parametrize("make", [_astronaut, _group_head])
@pytest.mark.parametrize("roll", [0.0, 70.0, -150.0])
@pytest.mark.parametrize("times", [1.6, 2.0])
def test_a_face_reported_far_over_its_size_takes_yunet_s_square(make, roll, times):
    image, truth = make(roll, 24.0, 1.0)
    sized = finder._yunet_sized(image, _too_large(truth, times))
    assert 0.8 < sized.size / truth.size < 1.25 and sized.extra["yunet_sized"] >= finder.YUNET_SIZE_BAR
    assert np.hypot(*np.subtract(sized.centre, truth.centre)) < 0.2 * truth.size and sized.roll == truth.roll
    assert sized.sharpness == detect.sharpness(image, sized.centre, sized.size, sized.roll)  # its own square's
    # YuNet's eye points, image-left first, near the truth's
    eyes = sorted([truth.right_eye, truth.left_eye])
    assert all(np.hypot(*np.subtract(a, b)) < 0.2 * truth.size for a, b in zip(sized.eyes, eyes, strict=True))


def test_the_blurred_head_s_own_square_is_skipped_as_too_blurry():
    """Read at 2x its size the blurred head passes the blur rule (hair and background in its square); at its own
    square it is under it, as the benchmark's sharpness for it says."""
    image, truth = _group_head(0.0, 24.0, 1.5)
    too_large = _too_large(truth, 2.0)
    too_large = dataclasses.replace(too_large, sharpness=detect.sharpness(image, too_large.centre, too_large.size, 0.0))
    sized = finder._yunet_sized(image, too_large)
    bar = FaceFinderSettings.min_sharpness
    assert too_large.sharpness >= bar > sized.sharpness
    assert sized.sharpness == pytest.approx(detect.sharpness(image, truth.centre, truth.size, truth.roll), rel=0.25)
    kept, skipped = finder.apply_rules([sized], [], FaceFinderSettings(skip_smaller_than=0), image.shape)
    assert not kept and len(skipped) == 1 and "blurry" in skipped[0].reason


@pytest.mark.parametrize("make", [_astronaut, _group_head])
def test_a_face_reported_at_its_size_keeps_its_own_square(make):
    image, truth = make(30.0, 32.0, 1.0)
    for times in (0.9, 1.0):
        face = _too_large(truth, times)
        assert finder._yunet_sized(image, face) is face
    sized = finder._yunet_sized(image, _too_large(truth, 1.2))  # kept, or brought nearer its size
    assert 0.85 < sized.size / truth.size <= 1.2


def test_only_faces_without_a_mesh_fit_and_only_on_yunet_s_word(monkeypatch):
    image, truth = _astronaut(0.0, 24.0, 1.0)
    too_large = _too_large(truth, 2.0)
    fitted = dataclasses.replace(too_large, landmarks=np.zeros((478, 3)))
    assert finder._yunet_sized(image, fitted) is fitted  # the mesh sets a fitted face's size
    monkeypatch.setattr(finder, "YUNET_SIZE_BAR", 1.01)  # YuNet's score is at most 1: no word is enough
    assert finder._yunet_sized(image, too_large) is too_large
    monkeypatch.setattr(finder, "YUNET_SIZE_BAR", 0.7)
    monkeypatch.setattr(finder, "YUNET_SIZE", False)
    assert finder._yunet_sized(image, too_large) is too_large


def test_clutter_has_no_square_of_its_own():
    image = clutter(np.random.default_rng(9), 220, 220)
    read = detect.yunet_square(image, (110.0, 110.0), 48.0, 0.0)
    assert read is None or read[0] < finder.YUNET_SIZE_BAR


def _lower_half(truth: groundtruth.TruthFace) -> object:
    """The box the re-check reads on a face's lower half (nose and mouth for eyes and mouth): half its size, a quarter
    of it towards the chin."""
    down = np.radians(truth.roll)
    centre = (truth.centre[0] - 0.25 * truth.size * np.sin(down), truth.centre[1] + 0.25 * truth.size * np.cos(down))
    return dataclasses.replace(truth_face(truth), box=rotated_square_bounds(centre, 0.5 * truth.size, truth.roll),
                               sharpness=50.0)


@pytest.mark.parametrize("make", [_astronaut, _group_head])
@pytest.mark.parametrize("roll", [0.0, 85.0, -150.0])
def test_a_box_on_a_face_s_lower_half_takes_the_whole_face_s_square(make, roll):
    """Issue 17's forty-second pass: YuNet sees the whole face around the box (finder.YUNET_GROW)."""
    image, truth = make(roll, 56.0, 0.7)
    grown = finder._yunet_sized(image, _lower_half(truth))
    assert 0.8 < grown.size / truth.size < 1.25 and grown.extra["yunet_grown"] >= finder.YUNET_GROW_BAR
    assert np.hypot(*np.subtract(grown.centre, truth.centre)) < 0.2 * truth.size and grown.roll == truth.roll
    assert grown.sharpness == detect.sharpness(image, grown.centre, grown.size, grown.roll)


def test_a_face_at_its_size_is_not_grown_and_the_growth_has_a_switch(monkeypatch):
    image, truth = _group_head(-40.0, 32.0, 0.7)
    for times in (0.9, 1.0, 1.1):
        face = _too_large(truth, times)
        assert "yunet_grown" not in finder._yunet_sized(image, face).extra
    image, truth = _astronaut(0.0, 56.0, 0.7)
    monkeypatch.setattr(finder, "YUNET_GROW", None)
    half = _lower_half(truth)
    assert finder._yunet_sized(image, half) is half
