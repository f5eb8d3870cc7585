"""Named camera angles of a profile package, relative to the head's facing direction.

``yaw`` turns the camera around the head's up axis, positive toward the character's left side
(``*_left`` views show the left side of the face). ``pitch`` raises the camera above the eye line
(positive = camera above, looking down). ``roll`` turns the camera about its viewing axis.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewSpec:
    name: str
    yaw: float
    pitch: float = 0.0
    roll: float = 0.0


VIEWS: dict[str, ViewSpec] = {
    spec.name: spec
    for spec in (
        ViewSpec("front", 0.0),
        ViewSpec("three_quarter_left", 45.0),
        ViewSpec("three_quarter_right", -45.0),
        ViewSpec("profile_left", 90.0),
        ViewSpec("profile_right", -90.0),
        ViewSpec("over_shoulder_left", 135.0),
        ViewSpec("over_shoulder_right", -135.0),
        ViewSpec("up", 0.0, 20.0),
        ViewSpec("down", 0.0, -20.0),
        ViewSpec("quarter_left", 22.5),
        ViewSpec("quarter_right", -22.5),
        ViewSpec("three_quarter_left_up", 45.0, 15.0),
        ViewSpec("three_quarter_right_up", -45.0, 15.0),
        ViewSpec("three_quarter_left_down", 45.0, -15.0),
        ViewSpec("three_quarter_right_down", -45.0, -15.0),
        ViewSpec("back", 180.0),
    )
}

VIEW_SETS: dict[str, tuple[str, ...]] = {
    "default": (
        "front",
        "three_quarter_left",
        "three_quarter_right",
        "profile_left",
        "profile_right",
        "over_shoulder_left",
        "over_shoulder_right",
        "up",
        "down",
    ),
    "minimal": ("front", "three_quarter_left", "profile_right"),
    "faces": ("front", "quarter_left", "quarter_right", "three_quarter_left", "three_quarter_right", "up", "down"),
}

# Views closer than this in (yaw, pitch) are "the same angle" (WORKFLOW: no near-duplicates),
# except left/right full profiles which users keep both of.
MIN_ANGLE_SEPARATION_DEG = 10.0


class ViewError(ValueError):
    """A view name or custom angle is not valid."""


def parse_view(text: str) -> ViewSpec:
    """A preset name, or a custom ``name:yaw[:pitch[:roll]]`` view."""
    text = text.strip()
    if ":" not in text:
        if text not in VIEWS:
            raise ViewError(f"unknown view {text!r}; known views: {', '.join(VIEWS)} (or name:yaw[:pitch[:roll]])")
        return VIEWS[text]
    name, *numbers = text.split(":")
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha() or name.lower() != name:
        raise ViewError(f"view name {name!r}: use lowercase letters, digits and _")
    if not 1 <= len(numbers) <= 3:
        raise ViewError(f"view {text!r}: expected name:yaw[:pitch[:roll]]")
    try:
        values = [float(v) for v in numbers] + [0.0] * (3 - len(numbers))
    except ValueError:
        raise ViewError(f"view {text!r}: yaw/pitch/roll must be numbers") from None
    yaw, pitch, roll = values
    if not -180 <= yaw <= 180 or not -80 <= pitch <= 80 or not -180 <= roll <= 180:
        raise ViewError(f"view {text!r}: yaw in -180..180, pitch in -80..80, roll in -180..180")
    return ViewSpec(name, yaw, pitch, roll)


def resolve_views(items: list[str] | tuple[str, ...] | str) -> list[ViewSpec]:
    """Expand a view-set name or a list of view names/custom views; refuse duplicates."""
    if isinstance(items, str):
        items = [items]
    specs: list[ViewSpec] = []
    for item in items:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            if part in VIEW_SETS:
                specs.extend(VIEWS[name] for name in VIEW_SETS[part])
            else:
                specs.append(parse_view(part))
    if not specs:
        raise ViewError("no views given")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ViewError(f"view(s) listed twice: {', '.join(duplicates)}")
    return specs


def angular_separation(a: ViewSpec, b: ViewSpec) -> float:
    """Great-circle angle in degrees between two camera directions around the head."""
    import math

    def direction(spec: ViewSpec) -> tuple[float, float, float]:
        yaw, pitch = math.radians(spec.yaw), math.radians(spec.pitch)
        return (math.cos(pitch) * math.sin(yaw), math.cos(pitch) * math.cos(yaw), math.sin(pitch))

    da, db = direction(a), direction(b)
    dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(da, db, strict=True))))
    return math.degrees(math.acos(dot))


def near_duplicates(specs: list[ViewSpec], threshold: float = MIN_ANGLE_SEPARATION_DEG) -> list[tuple[str, str]]:
    """Pairs of views closer than ``threshold`` degrees (same-angle shots add nothing to a package)."""
    pairs = []
    for i, a in enumerate(specs):
        for b in specs[i + 1 :]:
            if angular_separation(a, b) < threshold:
                pairs.append((a.name, b.name))
    return pairs
