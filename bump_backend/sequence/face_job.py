"""What the sequence job hands its bumper: one face of one frame, and the bumper's shape.

Its own module so the job (tracks, motion, files) imports no torch: ``bumper.EngineBumper`` is the
torch side that runs these through the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FaceJob:
    """One face of one frame: the img2img start (aligned crop, possibly blended with the carried result)."""

    start: np.ndarray
    yaw: float
    package: Path | None
    seed: int
    track: str


# one frame's faces in, their bumped crops out; a bumper may carry ``model`` (a ``ModelRecord`` dict),
# which the sequence record keeps
Bumper = Callable[[list[FaceJob]], list[np.ndarray]]
