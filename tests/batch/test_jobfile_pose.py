"""Pose and expression keys of a job file's package settings: checked by the pose contract up front,
carried into the package unit, and absent keys leave existing unit hashes alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headless_renderer.batch.jobfile import JobFileError, load_job
from headless_renderer.batch.units import build_plan

JOB = '''\
version = 1
[defaults]
output = "out"
backends = ["http://127.0.0.1:9"]
[defaults.package]
views = ["front", "over_shoulder_left"]
resolution = 96
{extra}
[characters.mateo]
demo = "demo_man"
[[entries]]
characters = ["*"]
tasks = ["package"]
'''


def _job(tmp_path: Path, extra: str, name: str = "job.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(JOB.format(extra=extra)), encoding="utf-8")
    return load_job(path)


def test_pose_keys_reach_the_package_unit(tmp_path):
    plain = build_plan(_job(tmp_path, "", "a.toml")).units["mateo/package"]
    posed_job = _job(tmp_path, 'pose = { head = [20, 5], eyes = -10 }\nexpression = { smile = 0.6 }\nexpressions = ["blink"]\npose_views = false', "b.toml")
    settings = posed_job.characters["mateo"].package
    assert settings.pose == {"controls": {"head": [20.0, 5.0, 0.0], "eyes": [-10.0, 0.0]}, "expression": {"smile": 0.6}, "body_turn": 0.0}
    assert settings.expressions == ("blink",) and settings.pose_views is False
    posed = build_plan(posed_job).units["mateo/package"]
    assert posed.hash != plain.hash
    assert posed.spec["package"]["pose"]["expression"] == {"smile": 0.6}
    assert "pose" not in plain.spec["package"] and "expressions" not in plain.spec["package"]


def test_bad_pose_keys_are_reported_with_their_line(tmp_path):
    with pytest.raises(JobFileError) as caught:
        _job(tmp_path, 'pose = { head = [200, 0] }\nexpressions = "smile"\npose_views = "yes"')
    text = str(caught.value)
    assert "head[0]: 200.0 is above the maximum 80.0" in text
    assert "expected a list of expression names" in text
    assert "expected true or false" in text


RIG_JOB = '''\
version = 1
[defaults]
output = "out"
backends = ["http://127.0.0.1:9"]
[defaults.package]
resolution = 96
[characters.mateo]
demo = "demo_man"
{rig}
[[entries]]
characters = ["*"]
tasks = ["package"]
'''


def _rig_plan(tmp_path: Path, rig: str, name: str):
    path = tmp_path / name
    path.write_text(RIG_JOB.format(rig=rig), encoding="utf-8")
    return build_plan(load_job(path)).units["mateo/package"]


def test_a_demo_rig_choice_reaches_the_unit_and_the_default_keeps_the_hash(tmp_path):
    plain = _rig_plan(tmp_path, "", "a.toml")
    default = _rig_plan(tmp_path, 'rig = "default"', "b.toml")
    mixamo = _rig_plan(tmp_path, 'rig = "mixamo"', "c.toml")
    assert "rig" not in plain.spec["character"]
    assert default.hash == plain.hash  # same render, same unit: existing job files are not re-rendered
    assert mixamo.spec["character"]["rig"] == "mixamo" and mixamo.hash != plain.hash
    assert _rig_plan(tmp_path, 'rig = "rigify"', "d.toml").hash not in (plain.hash, mixamo.hash)


def test_an_unknown_rig_is_reported_with_a_did_you_mean(tmp_path):
    with pytest.raises(JobFileError) as caught:
        _rig_plan(tmp_path, 'rig = "mixamoo"', "a.toml")
    text = str(caught.value)
    assert "characters.mateo.rig" in text and "unknown rig 'mixamoo'; did you mean 'mixamo'?" in text
    assert "rigs: default, game_engine, mixamo, rigify" in text


def test_a_rig_on_a_blend_character_is_refused(tmp_path):
    (tmp_path / "scene.blend").write_bytes(b"")
    path = tmp_path / "job.toml"
    path.write_text(RIG_JOB.replace('demo = "demo_man"', 'blend = "scene.blend"\nobject = "Body"').format(
        rig='rig = "mixamo"'), encoding="utf-8")
    with pytest.raises(JobFileError) as caught:
        load_job(path)
    assert "characters.mateo.rig: rig chooses the demo character's armature" in str(caught.value)


def test_the_package_unit_renders_the_chosen_rig(tmp_path):
    """The render worker builds the demo with the job file's rig: the package records it (96 px, 1 sample)."""
    from bump_contracts.package_manifest import load_package
    from headless_renderer.batch.work import run_unit

    path = tmp_path / "job.toml"
    path.write_text(RIG_JOB.format(rig='rig = "game_engine"').replace(
        "resolution = 96", 'resolution = 96\nviews = ["front"]\npreset = "preview"\nsamples = 1'), encoding="utf-8")
    unit = build_plan(load_job(path)).units["mateo/package"]
    out = tmp_path / "out"
    result = run_unit(unit.to_dict(), str(out), {"fd_log": False})
    assert result["status"] == "done", result
    manifest = load_package(out / unit.spec["out"])
    assert manifest.source["rig"] == "game_engine" and [v.name for v in manifest.views] == ["front"]
