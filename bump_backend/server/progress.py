"""Progress, stage and ETA of a running job from the engine's per-step callbacks.

The engine reports ``(stage, step, total)`` with stage ``face`` (all face batches, one count)
or ``whole``. The face pass's length is only known once faces are found, so overall progress
is steps done over steps known; it never goes backwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ProgressTracker:
    whole_steps: int  # sampler steps of the whole-image pass (0 when it is off)
    face_per_call: int  # sampler steps of one face batch
    face_pass: bool
    started: float = field(default_factory=time.perf_counter)
    face_total: int = 0
    face_done: int = 0
    whole_done: int = 0
    best: float = 0.0

    def initial_stage(self, faces: int | None = None) -> tuple[str, str]:
        """The stage a job starts on the GPU with; ``faces``: how many were found beforehand (None: unknown)."""
        if not self.face_pass or faces == 0:
            return "whole-image pass", "whole-image pass"
        return ("faces", "faces") if faces is None else ("face pass", "face pass")

    def update(self, stage: str, step: int, total: int) -> tuple[float, int, int, str, str, float | None]:
        """(progress, step, steps, stage, stage_label, eta_s) after one engine callback."""
        if stage == "face":
            self.face_total, self.face_done = total, step
            per = max(1, self.face_per_call)
            batches = max(1, -(-total // per))
            k = min(batches, (max(step, 1) - 1) // per + 1)
            name, label = "face pass", f"face pass {k}/{batches}"
        else:
            self.face_done = self.face_total  # the face pass is over once the whole pass reports
            self.whole_steps = max(self.whole_steps, total)
            self.whole_done = step
            name = label = "whole-image pass"
        steps = self.face_total + self.whole_steps
        done = self.face_done + self.whole_done
        fraction = min(1.0, done / steps) if steps else 0.0
        self.best = max(self.best, fraction)
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (steps - done) if done else None
        return self.best, done, steps, name, label, eta
