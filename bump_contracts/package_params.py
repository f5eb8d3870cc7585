"""Package render parameters: each rule once, for the package CLI, batch job files and the add-on.

A rule is a closed numeric range with a default; ``check`` says what is wrong in the words every
front end prints ("resolution must be within 16..8192 pixels per side").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bump_contracts.errors import ContractError


@dataclass(frozen=True)
class RangeRule:
    """One numeric package parameter: the allowed closed range, its default and its unit."""

    name: str
    low: float
    high: float
    default: float | None
    integer: bool = False
    unit: str = ""

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"within {self.low:g}..{self.high:g}{unit}"

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` ("must be within 10..600 mm, got 5"), or None when it follows the rule."""
        kind = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return f"must be {'an integer' if self.integer else 'a number'} {self.describe()}, got {value!r}"
        if not self.low <= value <= self.high:
            return f"must be {self.describe()}, got {value!r}"
        return None

    def check(self, value: object, label: str | None = None) -> float | int:
        """The value when it follows the rule; ContractError naming ``label`` otherwise."""
        problem = self.problem(value)
        if problem:
            raise ContractError(f"{label or self.name} {problem}", label or self.name)
        return value  # type: ignore[return-value]


RESOLUTION = RangeRule("resolution", 16, 8192, 720, integer=True, unit="pixels per side")
SAMPLES = RangeRule("samples", 1, 65536, None, integer=True)  # None: the render preset's samples
LENS = RangeRule("lens", 10.0, 600.0, 85.0, unit="mm")
FACE_FILL = RangeRule("face_fill", 0.05, 0.95, 0.40)
SENSOR_WIDTH_MM = 36.0
DEFAULT_PRESET = "fast"
DEFAULT_STUDIO = "almost_white"
DEFAULT_VIEW_SET = "default"


def check_resolution(width: object, height: object, label: str = "resolution") -> tuple[int, int]:
    """Both sides within :data:`RESOLUTION`'s range; one message for either side."""
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, int) or not RESOLUTION.low <= side <= RESOLUTION.high:
            raise ContractError(f"{label} must be {RESOLUTION.describe()}, got {width}x{height}", label)
    return int(width), int(height)
