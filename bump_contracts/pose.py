"""A character pose for a render: head/neck/eye controls, expression weights and the body's turn.

One definition shared by the CLI (``--pose head=20,0,0``, ``--expression smile=0.6``), job files,
the package renderer and the manifest (each view records the pose it was rendered with). Stdlib only.

Angles are degrees in the character's own frame: ``turn`` toward the character's left, ``tilt``
chin up, ``roll`` the top of the head toward the character's left shoulder. ``body_turn`` is where
the camera stood around the body (same sign as a view's yaw) when the head was turned back toward
it, e.g. an over-the-shoulder shot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bump_contracts.errors import ContractError
from bump_contracts.face_geometry import number as _number
from bump_contracts.face_geometry import reject_unknown as _reject_unknown

# control -> per-axis (turn, tilt, roll) limits in degrees; eyes have no roll
CONTROL_LIMITS: dict[str, tuple[float, ...]] = {
    "head": (80.0, 50.0, 40.0),
    "neck": (70.0, 45.0, 35.0),
    "eyes": (35.0, 25.0),
}
AXES = ("turn", "tilt", "roll")
EXPRESSION_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
MAX_EXPRESSION_WEIGHT = 1.0
DEFAULT_EXPRESSION_WEIGHT = 1.0  # ``--expression smile`` without a weight; the panel's starting weight
POSE_VIEWS_DEFAULT = True  # over-shoulder and up/down views pose a rigged character's head/neck


class PoseError(ContractError):
    """A pose or expression does not follow the contract."""


def number(value: Any, where: str, **bounds: float) -> float:
    try:
        return _number(value, where, **bounds)
    except PoseError:
        raise
    except ContractError as exc:
        raise PoseError(str(exc)) from None


def reject_unknown(mapping: dict, allowed: set[str] | frozenset[str], where: str) -> None:
    try:
        _reject_unknown(mapping, set(allowed), where)
    except ContractError as exc:
        raise PoseError(str(exc)) from None


@dataclass(frozen=True)
class Pose:
    controls: dict[str, tuple[float, ...]] = field(default_factory=dict)
    expression: dict[str, float] = field(default_factory=dict)
    body_turn: float = 0.0

    FIELDS = frozenset({"controls", "expression", "body_turn"})

    def is_neutral(self) -> bool:
        return (
            all(abs(v) < 1e-9 for values in self.controls.values() for v in values)
            and all(abs(w) < 1e-9 for w in self.expression.values())
            and abs(self.body_turn) < 1e-9
        )

    def merged(self, other: Pose) -> Pose:
        """``other`` on top of this pose: its controls and expression weights replace ours per name."""
        return Pose(
            controls={**self.controls, **other.controls},
            expression={**self.expression, **other.expression},
            body_turn=other.body_turn or self.body_turn,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "controls": {k: [round(float(v), 4) for v in values] for k, values in self.controls.items()},
            "expression": {k: round(float(v), 4) for k, v in self.expression.items()},
            "body_turn": round(float(self.body_turn), 4),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "pose") -> Pose:
        if not isinstance(data, dict):
            raise PoseError(f"{where}: expected an object")
        reject_unknown(data, cls.FIELDS, where)
        controls_in = data.get("controls", {})
        if not isinstance(controls_in, dict):
            raise PoseError(f"{where}.controls: expected an object")
        controls = {name: control_values(name, values, f"{where}.controls.{name}") for name, values in controls_in.items()}
        expression_in = data.get("expression", {})
        if not isinstance(expression_in, dict):
            raise PoseError(f"{where}.expression: expected an object")
        expression = {name: expression_weight(name, w, f"{where}.expression.{name}") for name, w in expression_in.items()}
        body_turn = number(data.get("body_turn", 0.0), f"{where}.body_turn", minimum=-180, maximum=180)
        return cls(controls, expression, body_turn)


def control_values(name: str, values: Any, where: str) -> tuple[float, ...]:
    """A control's angles, padded with zeros and checked against its limits."""
    if name not in CONTROL_LIMITS:
        raise PoseError(f"{where}: unknown control {name!r}; controls: {', '.join(CONTROL_LIMITS)}")
    limits = CONTROL_LIMITS[name]
    if not isinstance(values, (list, tuple)) or not 1 <= len(values) <= len(limits):
        axes = AXES[: len(limits)]
        raise PoseError(f"{where}: expected 1..{len(limits)} numbers ({','.join(axes)}), got {values!r}")
    out = []
    for axis, (value, limit) in enumerate(zip(list(values) + [0.0] * (len(limits) - len(values)), limits, strict=True)):
        out.append(number(value, f"{where}[{axis}]", minimum=-limit, maximum=limit))
    return tuple(out)


def expression_weight(name: Any, weight: Any, where: str) -> float:
    if not isinstance(name, str) or not EXPRESSION_NAME_RE.match(name):
        raise PoseError(f"{where}: {name!r} is not an expression name (lowercase letters, digits, - and _)")
    return number(weight, where, minimum=0.0, maximum=MAX_EXPRESSION_WEIGHT)


def parse_control(text: str) -> tuple[str, tuple[float, ...]]:
    """``head=20,0,0`` / ``eyes=-15,5`` -> (control, angles); raises PoseError with the allowed form."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep:
        raise PoseError(f"pose {text!r}: expected CONTROL=TURN[,TILT[,ROLL]] (controls: {', '.join(CONTROL_LIMITS)})")
    try:
        numbers = [float(v) for v in values.split(",")]
    except ValueError:
        raise PoseError(f"pose {text!r}: angles must be numbers in degrees") from None
    return name, control_values(name, numbers, f"pose {name}")


def parse_expression(text: str) -> tuple[str, float]:
    """``smile=0.6`` (or ``smile`` for full strength) -> (name, weight)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    try:
        weight = float(value) if sep else DEFAULT_EXPRESSION_WEIGHT
    except ValueError:
        raise PoseError(f"expression {text!r}: weight must be a number in 0..1") from None
    return name, expression_weight(name, weight, f"expression {name}")


def parse_expression_list(text: str, where: str = "expressions") -> tuple[str, ...]:
    """``neutral,smile`` -> ("neutral", "smile"): the extra expression views' names, each checked."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        expression_weight(name, DEFAULT_EXPRESSION_WEIGHT, f"{where}: {name}")
    if len(set(names)) != len(names):
        raise PoseError(f"{where}: {text!r} names an expression twice")
    return names


def pose_from_args(controls: list[str], expressions: list[str]) -> Pose:
    parsed_controls = dict(parse_control(c) for c in controls)
    parsed_expressions = dict(parse_expression(e) for e in expressions)
    return Pose(parsed_controls, parsed_expressions)
