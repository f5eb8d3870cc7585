"""The panel allows exactly what the backend and the package renderer accept: every range, default,
sampler and the negative prompt come from the contracts (one source), for scenes and preferences alike."""

from __future__ import annotations

import sys

import pytest

from addon import param_props, preferences, properties
from bump_contracts import package_params
from bump_contracts.bump_job import DEFAULT_NEGATIVE_PROMPT, PARAMS, SAMPLER_NAMES, check_param

BUMP_NUMBERS = ("steps", "cfg", "denoise", "seed", "ip_adapter_scale", "face_size", "clip_skip")
OWNERS = [properties.BumpStudioSettings, preferences.BUMP_STUDIO_AP_preferences]


def _keywords(owner, name: str) -> dict:
    """The keywords a property was declared with (annotations are strings under postponed evaluation)."""
    declared = owner.__annotations__[name]
    if isinstance(declared, str):
        declared = eval(declared, vars(sys.modules[owner.__module__]))
    return declared.keywords


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: o.__name__)
@pytest.mark.parametrize("name", BUMP_NUMBERS)
def test_bump_numbers_follow_the_job_contract(owner, name):
    rule, kw = PARAMS[name], _keywords(owner, name)
    assert kw["default"] == rule.default
    assert kw["min"] == (rule.low + param_props.OPEN_END_MARGIN if rule.low_open else rule.low)
    if rule.high is not None:
        assert kw["max"] == min(rule.high, param_props.INT32_MAX)
    # the default, and both ends the panel allows, are values the backend accepts
    for value in (kw["default"], kw["min"], kw["max"]):
        if rule.multiple_of:
            value -= value % rule.multiple_of
        check_param(name, value)


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: o.__name__)
def test_texts_and_choices_follow_the_job_contract(owner):
    assert _keywords(owner, "negative_prompt")["default"] == DEFAULT_NEGATIVE_PROMPT == PARAMS["negative_prompt"].default
    sampler = _keywords(owner, "sampler")
    assert [item[0] for item in sampler["items"]] == list(SAMPLER_NAMES)
    assert sampler["default"] == PARAMS["sampler"].default
    assert _keywords(owner, "face_pass")["default"] is PARAMS["face_pass"].default


@pytest.mark.parametrize("owner", OWNERS, ids=lambda o: o.__name__)
def test_package_limits_follow_the_package_contract(owner):
    resolution = _keywords(owner, "resolution")
    assert (resolution["min"], resolution["max"], resolution["default"]) == (
        package_params.RESOLUTION.low, package_params.RESOLUTION.high, package_params.RESOLUTION.default)
    assert _keywords(owner, "samples")["max"] == package_params.SAMPLES.high


def test_face_size_typed_off_the_grid_snaps_to_a_size_the_backend_accepts():
    class Settings:
        face_size = 100

    settings = Settings()
    param_props.snap_to_rule(settings, "face_size")
    assert settings.face_size == 96
    check_param("face_size", settings.face_size)
    settings.face_size = 3
    param_props.snap_to_rule(settings, "face_size")
    assert settings.face_size == PARAMS["face_size"].low


def test_pose_controls_follow_the_pose_contract():
    """Every axis of every pose control is on the panel, within exactly the contract's limits, starting at 0."""
    from bump_contracts.pose import AXES, CONTROL_LIMITS, DEFAULT_EXPRESSION_WEIGHT, MAX_EXPRESSION_WEIGHT
    from profile_rig.core.expressions import EXPRESSIONS

    owner = properties.BumpStudioSettings
    declared = {name for name in owner.__annotations__ if name.startswith("pose_") and name != "pose_views"}
    expected = {f"pose_{control}_{AXES[axis]}" for control, limits in CONTROL_LIMITS.items()
                for axis in range(len(limits))}
    assert expected <= declared
    for control, limits in CONTROL_LIMITS.items():
        for axis, limit in enumerate(limits):
            kw = _keywords(owner, f"pose_{control}_{AXES[axis]}")
            assert (kw["min"], kw["max"], kw["default"]) == (-limit, limit, 0.0)
    weight = _keywords(owner, "pose_expression_weight")
    assert (weight["min"], weight["max"], weight["default"]) == (0.0, MAX_EXPRESSION_WEIGHT, DEFAULT_EXPRESSION_WEIGHT)
    expression = _keywords(owner, "pose_expression")
    assert [item[0] for item in expression["items"]] == list(EXPRESSIONS) and expression["default"] == "neutral"


def test_package_pose_options_follow_the_pose_contract():
    from bump_contracts.pose import POSE_VIEWS_DEFAULT

    owner = properties.BumpStudioSettings
    assert _keywords(owner, "pose_views")["default"] is POSE_VIEWS_DEFAULT
    assert _keywords(owner, "expression_views")["default"] == ""
