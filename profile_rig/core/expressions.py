"""Facial expressions for the demo character from MPFB2's 34 expression-unit targets. Plain numpy.

Each unit (``mouth-open``, ``eyebrows-left-up``, ...) exists once per ethnic base; the character's
ethnicity mix blends them. Named expressions (``smile``, ``blink``, ...) are weighted sums of units;
a unit name can be used directly as well.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from profile_rig.core.mpfb_data import DemoDataError, data_root, load_target

UNITS_FOLDER = "expression/units"
ETHNIC_BASES = ("african", "asian", "caucasian")

EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "smile": {"mouth-corner-puller": 1.0, "mouth-upward-retraction": 0.25, "eye-left-slit": 0.3, "eye-right-slit": 0.3},
    "open_mouth": {"mouth-open": 1.0},
    "brows_up": {"eyebrows-left-up": 1.0, "eyebrows-right-up": 1.0},
    "frown": {"eyebrows-left-down": 1.0, "eyebrows-right-down": 1.0, "mouth-depression": 0.6},
    "blink": {"eye-left-closure": 1.0, "eye-right-closure": 1.0},
    "surprise": {
        "eyebrows-left-up": 1.0,
        "eyebrows-right-up": 1.0,
        "eye-left-opened-up": 0.8,
        "eye-right-opened-up": 0.8,
        "mouth-open": 0.6,
    },
}


@lru_cache(maxsize=2)
def available_units(root: str | None = None) -> tuple[str, ...]:
    folder = (Path(root) if root else data_root()) / "targets" / UNITS_FOLDER / "caucasian"
    names = tuple(sorted(p.name[: -len(".target.gz")] for p in folder.glob("*.target.gz")))
    if not names:
        raise DemoDataError(f"{folder}: no expression unit targets")
    return names


def known_expressions(root: str | None = None) -> list[str]:
    return list(EXPRESSIONS) + list(available_units(root))


def expression_units(name: str, root: str | None = None) -> dict[str, float]:
    """Unit weights of a named expression or a single unit; unknown names say what exists."""
    if name in EXPRESSIONS:
        return dict(EXPRESSIONS[name])
    if name in available_units(root):
        return {name: 1.0}
    raise DemoDataError(
        f"unknown expression {name!r}; expressions: {', '.join(EXPRESSIONS)}; units: {', '.join(available_units(root))}"
    )


def unit_offsets(unit: str, ethnicity: dict[str, float], vertex_count: int, root: str | None = None) -> np.ndarray:
    """(V, 3) Blender-space offsets of one unit for the base mesh, blended by ethnicity weights."""
    offsets = np.zeros((vertex_count, 3))
    total = sum(ethnicity.get(base, 0.0) for base in ETHNIC_BASES)
    if total <= 0:
        raise DemoDataError("ethnicity weights sum to zero")
    for base in ETHNIC_BASES:
        weight = ethnicity.get(base, 0.0) / total
        if weight <= 0:
            continue
        index, delta = load_target(f"{UNITS_FOLDER}/{base}/{unit}", root)
        np.add.at(offsets, index, delta * weight)
    return offsets


def expression_offsets(
    name: str, ethnicity: dict[str, float], source_index: np.ndarray, vertex_count: int, root: str | None = None
) -> np.ndarray:
    """Offsets of a whole expression for a derived mesh whose vertex i follows base vertex ``source_index[i]``."""
    total = np.zeros((vertex_count, 3))
    for unit, weight in expression_units(name, root).items():
        total += weight * unit_offsets(unit, ethnicity, vertex_count, root)
    return total[source_index]
