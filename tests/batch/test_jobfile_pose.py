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
