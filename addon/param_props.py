"""Blender properties built from the contracts' rules, so the panel allows exactly what the backend
and the package renderer accept, with the same defaults (one source; a test compares them)."""

from __future__ import annotations

from typing import Any

from bpy.props import FloatProperty, IntProperty

from bump_contracts.bump_job import PARAMS, SAMPLER_NAMES
from bump_contracts.package_params import RangeRule
from bump_contracts.pose import AXES, CONTROL_LIMITS, DEFAULT_EXPRESSION_WEIGHT, MAX_EXPRESSION_WEIGHT

INT32_MAX = 2**31 - 1  # Blender's IntProperty limit
OPEN_END_MARGIN = 0.01
SAMPLER_ITEMS = [(name, name, "") for name in SAMPLER_NAMES]


def bump_default(name: str) -> Any:
    return PARAMS[name].default


def bump_int(name: str, label: str, **options: Any) -> Any:
    """An IntProperty with the job contract's range and default for bump parameter ``name``."""
    rule = PARAMS[name]
    options.setdefault("default", rule.default)
    if rule.multiple_of:
        options.setdefault("step", rule.multiple_of)
    return IntProperty(name=label, min=int(rule.low) if rule.low is not None else -INT32_MAX,
                       max=min(int(rule.high), INT32_MAX) if rule.high is not None else INT32_MAX, **options)


def bump_float(name: str, label: str, **options: Any) -> Any:
    """A FloatProperty with the job contract's range and default for bump parameter ``name``."""
    rule = PARAMS[name]
    low = rule.low + OPEN_END_MARGIN if rule.low_open else rule.low  # (0, 1]: the panel stops just above 0
    return FloatProperty(name=label, min=low, max=rule.high, default=rule.default, **options)


def package_int(rule: RangeRule, label: str, **options: Any) -> Any:
    """An IntProperty with a package parameter's range (and its default unless given)."""
    options.setdefault("default", int(rule.default) if rule.default is not None else 0)
    return IntProperty(name=label, min=int(rule.low), max=int(rule.high), **options)


def pose_angle(control: str, axis: int, **options: Any) -> Any:
    """A FloatProperty (degrees) for one axis of a pose control, within the pose contract's limit."""
    limit = CONTROL_LIMITS[control][axis]
    return FloatProperty(name=f"{control.capitalize()} {AXES[axis]}", min=-limit, max=limit, default=0.0,
                         description=f"Degrees, within ±{limit:g} (the pose contract's limit)", **options)


def expression_strength(label: str, **options: Any) -> Any:
    """A FloatProperty for an expression's weight: the pose contract's range and default."""
    return FloatProperty(name=label, min=0.0, max=MAX_EXPRESSION_WEIGHT, default=DEFAULT_EXPRESSION_WEIGHT,
                         subtype="FACTOR", **options)


def snap_to_rule(settings: Any, name: str) -> None:
    """Round an integer bump parameter to its rule's multiple (the panel steps by it; typing can miss)."""
    step = PARAMS[name].multiple_of
    value = getattr(settings, name)
    if step and value % step:
        setattr(settings, name, max(int(PARAMS[name].low or step), round(value / step) * step))
