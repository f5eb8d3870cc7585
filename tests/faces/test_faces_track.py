"""FaceTracker: full detection now and then, a window re-check in between, the same results as stills."""

from __future__ import annotations

import numpy as np
import pytest

from bump_backend.faces import FaceFinderSettings, find_faces
from bump_backend.faces.groundtruth import background, degrade, place_face
from bump_backend.faces.track import FaceTracker
from tests.faces.faces_helpers import match, roll_error

pytest.importorskip("mediapipe")

SETTINGS = FaceFinderSettings(skip_smaller_than=0, min_sharpness=0)


def clip(frames: int, seed: int = 5, width: int = 480, height: int = 320, moves: bool = True):
    """Two real faces (64 and 48 px) drifting and turning over a still cluttered background."""
    rng = np.random.default_rng(seed)
    base = background(rng, width, height)
    plan = [("astronaut", 64.0, (130.0, 150.0), (3.0, 1.5), 120.0, 4.0),
            ("grace_hopper", 48.0, (340.0, 170.0), (-2.5, 2.0), -40.0, -3.0)]
    images, truths = [], []
    for t in range(frames):
        canvas = base.copy()
        step = t if moves else 0
        truth = [place_face(canvas, src, (x + step * dx, y + step * dy), size, roll + step * spin)
                 for src, size, (x, y), (dx, dy), roll, spin in plan]
        images.append(degrade(canvas, "noise", rng))
        truths.append(truth)
    return images, truths


@pytest.fixture(scope="module")
def tracked():
    images, truths = clip(6)
    tracker = FaceTracker(SETTINGS, detect_every=4)
    results, modes = [], []
    for image in images:
        results.append(tracker.update(image))
        modes.append(tracker.last_mode)
    return images, truths, results, modes


def test_detects_every_n_frames_and_tracks_in_between(tracked):
    _, _, _, modes = tracked
    assert modes == ["detect", "track", "track", "track", "detect", "track"]


def test_tracked_frames_find_every_face_with_its_roll(tracked):
    _, truths, results, _ = tracked
    for truth, result in zip(truths, results, strict=True):
        assert len(result.faces) == len(truth), [f.to_dict() for f in result.faces]
        for t in truth:
            face = match(t, result.faces)
            assert face is not None, (t.source, t.centre, t.roll)
            assert roll_error(face.roll, t.roll) < 6.0
            assert face.landmarks is not None  # refined like a still: mesh, eyes, yaw


def test_tracking_costs_a_fraction_of_full_detection(tracked):
    _, _, results, modes = tracked
    full = [r.detector_calls for r, m in zip(results, modes, strict=True) if m == "detect"]
    track = [r.detector_calls for r, m in zip(results, modes, strict=True) if m == "track"]
    assert max(track) * 3 < min(full), (track, full)


def test_a_lost_face_triggers_full_detection_on_that_frame():
    images, truths = clip(2)
    tracker = FaceTracker(SETTINGS, detect_every=10)
    tracker.update(images[0])
    # The next frame is another picture: the known faces are not where they were.
    other, other_truth = clip(1, seed=9)
    moved = np.ascontiguousarray(np.roll(other[0], (100, 150), axis=(0, 1)))
    result = tracker.update(moved)
    assert tracker.last_mode == "detect"
    assert len(result.faces) == len(find_faces(moved, settings=SETTINGS).faces)


def test_reset_and_frame_size_change_start_over():
    images, _ = clip(2)
    tracker = FaceTracker(SETTINGS, detect_every=10)
    tracker.update(images[0])
    tracker.update(images[1])
    assert tracker.last_mode == "track"
    tracker.update(np.ascontiguousarray(images[1][:240, :400]))
    assert tracker.last_mode == "detect" and tracker.frame_index == 1
    tracker.reset()
    tracker.update(images[0])
    assert tracker.last_mode == "detect"


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(SETTINGS, detect_every=0)
    with pytest.raises(ValueError, match="uint8"):
        FaceTracker(SETTINGS).update(np.zeros((32, 32, 3), np.float32))
