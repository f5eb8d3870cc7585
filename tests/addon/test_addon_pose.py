"""The panel's pose: Apply Pose turns the character's head and sets its expression through the pose
contract and profile_rig's posing, never compounding; Reset Pose puts back exactly what was there.
The package's expression views and pose-aware switch reach the background package command."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_helpers import addon_module, tiny_settings, user_scene

from bump_contracts.package_manifest import load_package
from bump_contracts.pose import CONTROL_LIMITS
from profile_rig.blender import package_cli
from profile_rig.blender.demo_character import DEMO_TAG


def _matrices(rig) -> dict[str, np.ndarray]:
    return {b.name: np.array(rig.matrix_world @ b.matrix) for b in rig.pose.bones}


def _forward(matrix: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Where the face looks: the demo stands facing -Y in ``rest``; the bone's turn since carries that direction."""
    return matrix[:3, :3] @ np.linalg.inv(rest[:3, :3]) @ np.array([0.0, -1.0, 0.0])


@pytest.fixture
def posed_scene(installed):
    rig = user_scene()
    settings = bpy.context.scene.bump_studio
    settings.character = rig
    return rig, settings


def test_apply_pose_turns_the_head_and_smiles_and_reset_puts_everything_back(posed_scene):
    rig, s = posed_scene
    body = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.get(DEMO_TAG))
    had_keys = body.data.shape_keys is not None
    before = _matrices(rig)
    s.pose_head_turn, s.pose_expression, s.pose_expression_weight = 30.0, "smile", 0.6
    assert bpy.ops.bump_studio.apply_pose() == {"FINISHED"}
    first = _matrices(rig)
    turned = _forward(first["head"], before["head"])
    # the face turned 30 degrees about the vertical toward the character's left (+X for a figure facing -Y)
    angle = math.degrees(math.atan2(turned[0], -turned[1]))
    assert angle == pytest.approx(30.0, abs=1.0)
    assert body.data.shape_keys.key_blocks["smile"].value == pytest.approx(0.6)
    # applying again starts from the pose before the first Apply: the same pose, not 60 degrees
    assert bpy.ops.bump_studio.apply_pose() == {"FINISHED"}
    assert all(np.allclose(first[name], m, atol=1e-5) for name, m in _matrices(rig).items())
    s.pose_head_turn, s.pose_expression = 0.0, "neutral"
    s.pose_neck_tilt = 20.0
    assert bpy.ops.bump_studio.apply_pose() == {"FINISHED"}
    tilted = _forward(_matrices(rig)["head"], before["head"])
    assert math.degrees(math.asin(tilted[2])) == pytest.approx(20.0, abs=1.5)  # chin up
    assert body.data.shape_keys.key_blocks["smile"].value == 0.0  # neutral now: the key stays, at 0
    assert bpy.ops.bump_studio.reset_pose() == {"FINISHED"}
    assert all(np.allclose(before[name], m, atol=1e-6) for name, m in _matrices(rig).items())
    assert (body.data.shape_keys is not None) == had_keys
    assert addon_module("operators_package").POSE_BASE not in rig
    # the panel cannot go past the contract's limits
    s.pose_head_turn = 500.0
    assert s.pose_head_turn == CONTROL_LIMITS["head"][0]
    s.pose_head_turn = 0.0


def test_a_pose_the_character_cannot_take_is_refused_and_nothing_changes(posed_scene):
    rig, s = posed_scene
    before = _matrices(rig)
    body = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.get(DEMO_TAG))
    mesh_only = bpy.data.objects.new("Statue", body.data.copy())
    bpy.context.scene.collection.objects.link(mesh_only)
    mesh_only.location = (3.0, 0.0, 0.0)
    s.character = mesh_only
    s.pose_head_turn = 20.0
    with pytest.raises(RuntimeError, match="needs one|no armature"):
        bpy.ops.bump_studio.apply_pose()
    assert "bump_studio_pose_base" not in mesh_only
    assert all(np.allclose(before[name], m) for name, m in _matrices(rig).items())
    s.pose_head_turn = 0.0


def test_expression_views_and_pose_views_reach_the_background_package(posed_scene, tmp_path):
    rig, s = posed_scene
    ops = addon_module("operators_package")
    tiny_settings(bpy.context.scene)
    s.custom_views, s.expression_views, s.pose_views = "front", " neutral, smile ", False
    plan = ops.plan_package(bpy.context, out_dir=str(tmp_path / "pkg"))
    assert plan.options.expressions == ("neutral", "smile") and plan.options.pose_views is False
    assert ops.view_count(plan.options) == 4  # front, three_quarter_left, front_smile, three_quarter_left_smile
    command, _env = ops.package_command(Path("scene.blend"), plan, s)
    assert command[command.index("--expressions") + 1] == "neutral,smile" and "--no-pose-views" in command
    args = package_cli.build_parser().parse_args(command[command.index("package"):])  # a command the CLI takes
    assert args.expressions == "neutral,smile" and args.no_pose_views
    for bad, message in (("smile,grin", "unknown expression 'grin'"), ("Smile!", "is not an expression name"),
                         ("smile,smile", "names an expression twice")):
        s.expression_views = bad
        with pytest.raises(ops.PackageError, match=message):
            ops.plan_package(bpy.context, out_dir=str(tmp_path / "never"))
    # rendered for real in the background process: the smile views are in the package with their pose
    s.expression_views, s.pose_views = "smile", True
    job = ops.BackgroundPackage(bpy.context, ops.plan_package(bpy.context, out_dir=str(tmp_path / "smile")))
    deadline = time.monotonic() + 300
    while not job.poll():
        assert time.monotonic() < deadline, job.errors
        time.sleep(0.1)
    path, what = job.finish(bpy.context)
    assert "3 views" in what
    manifest = load_package(path, check_hashes=True)
    views = {v.name: v for v in manifest.views}
    assert set(views) == {"front", "front_smile", "three_quarter_left_smile"}
    assert views["front_smile"].pose["expression"] == {"smile": 1.0}
    assert json.loads((path / "package.json").read_text())["views"]
    s.expression_views = ""


class _Layout:
    """Records what a panel draws (there is no UI to draw into here); every call returns itself."""

    def __init__(self, seen: list) -> None:
        self.seen = seen
        self.enabled = self.alert = True

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.seen.append((name, args, kwargs))
            return self
        return call


def test_the_pose_panel_draws_only_settings_and_operators_that_exist(posed_scene):
    _rig, s = posed_scene
    panels = addon_module("panels")
    for panel in (panels.BUMP_STUDIO_PT_pose, panels.BUMP_STUDIO_PT_package):
        seen: list = []
        holder = type("Panel", (), {"layout": _Layout(seen)})()
        panel.draw(holder, bpy.context)
        props = [args[1] for name, args, _ in seen if name == "prop"]
        operators = [args[0] for name, args, _ in seen if name == "operator"]
        assert props and all(hasattr(s, p) for p in props), props
        for op in operators:
            group, _, name = op.partition(".")
            assert hasattr(getattr(bpy.ops, group), name), op
    drawn = {args[1] for name, args, _ in seen if name == "prop"}
    assert {"pose_views", "expression_views"} <= drawn
