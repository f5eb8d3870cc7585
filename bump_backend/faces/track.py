"""Faces across the frames of one sequence: full detection now and then, a cheap window re-check in between.

A full ``find_faces`` on a 1280x720 frame costs a pyramid and its re-checks (~70-110 detector calls). Between
two frames a face moves little and turns little, so ``FaceTracker`` looks for each face it already
knows only in one upright crop around its previous box, made upright at its previous roll (one
detector call, any roll), then refines it exactly as a still image would (mesh, re-check, second
opinion, sharpness, the same skip rules). Full detection runs on the first frame, every
``detect_every`` frames (to pick up faces that entered) and on any frame where a known face was lost.

    tracker = FaceTracker(FaceFinderSettings(), detect_every=10)
    for frame in frames:                 # RGB uint8 arrays of one size
        result = tracker.update(frame)   # a FaceSearchResult, like find_faces
"""

from __future__ import annotations

import time

import numpy as np

from bump_backend.faces import detect
from bump_backend.faces.finder import BLAZE_TO_SQUARE, apply_rules, check_image, find_faces, refine, same_face
from bump_backend.faces.types import Face, FaceFinderSettings, FaceSearchResult

# A face accepted in the previous frame needs only this on its re-check, whatever ``recheck_floor`` asks of a new
# proposal: that floor (0.6) keeps clutter out of a full search, and a tracked face's crop at 0.5-0.6 is still it.
TRACKED_FLOOR = 0.5


class FaceTracker:
    """Stateful face finder for the frames of one sequence (not thread-safe; one per sequence).

    ``update(frame)`` returns the same ``FaceSearchResult`` as ``find_faces``; ``result.extra`` is not
    used, but ``last_mode`` says whether the frame was ``"detect"``-ed in full or ``"track"``-ed.
    A face may move up to about half its size and turn up to ~40 degrees between frames; faster
    motion loses the track and triggers a full detection on that frame. Faces that enter the frame
    are found at the next full detection (at most ``detect_every - 1`` frames late).
    """

    def __init__(self, settings: FaceFinderSettings | None = None, detect_every: int = 10):
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        self.settings = settings or FaceFinderSettings()
        self.detect_every = detect_every
        self.reset()

    def reset(self) -> None:
        """Forget every face (the next frame is detected in full), e.g. at a cut."""
        self.frame_index = 0
        self.faces: list[Face] = []  # every face of the last frame, kept and skipped
        self.last_mode = ""
        self._since_detect = 0
        self._shape: tuple[int, ...] | None = None

    def update(self, frame: np.ndarray) -> FaceSearchResult:
        """Faces in the next frame of the sequence."""
        check_image(frame)
        start = time.perf_counter()
        if self._shape != frame.shape:
            self.reset()
            self._shape = frame.shape
        due = self.frame_index == 0 or self._since_detect >= self.detect_every or not self.faces
        tracked: list[Face] = []
        calls = 0
        if not due:
            tracked, lost, calls = self._track(frame)
            due = lost
        if due:
            result = find_faces(frame, settings=self.settings)
            found = result.faces + [s.face for s in result.skipped]
            # A face tracked in this frame but missed by the full search (small, hard roll) is kept.
            extra = [f for f in tracked if not any(same_face(f, g) for g in found)]
            kept, skipped = apply_rules(found + extra, [], self.settings, frame.shape)
            result = FaceSearchResult(kept, skipped, 0.0, result.detector_calls + calls)
            self.last_mode = "detect"
            self._since_detect = 0
        else:
            kept, skipped = apply_rules(tracked, [], self.settings, frame.shape)
            result = FaceSearchResult(kept, skipped, 0.0, calls)
            self.last_mode = "track"
        self._since_detect += 1
        self.frame_index += 1
        self.faces = result.faces + [s.face for s in result.skipped]
        result.ms = (time.perf_counter() - start) * 1000
        return result

    def _track(self, frame: np.ndarray) -> tuple[list[Face], bool, int]:
        """Every known face looked for near its last box: the faces re-found, whether one was lost, calls."""
        settings = self.settings
        previous = self.faces

        def look(chunk: list[Face]) -> list[detect.Candidate | None]:
            return [detect.recheck(frame, f.centre, f.size / BLAZE_TO_SQUARE, f.roll, detect.RECHECK_THRESHOLD)
                    for f in chunk]

        found = [c for chunk in detect.run_parallel(look, previous, settings.workers) for c in chunk]
        floor = min(settings.recheck_floor, TRACKED_FLOOR)
        candidates = [c for c in found if c is not None and c.score >= floor]
        faces, calls = refine(frame, candidates, settings, confirmed=True)
        return faces, len(faces) < len(previous), calls + len(previous)
