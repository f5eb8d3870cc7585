"""The command line as users run it: real subprocesses, one-line errors, JSON output."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, cwd=None, entry=None):
    command = [sys.executable, "-m", "headless_renderer", *args] if entry is None else [sys.executable, str(entry), "--", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd or ROOT, env={**os.environ}, timeout=300)


@pytest.mark.parametrize(
    "args,message",
    [
        (["package", "--blend", "missing.blend", "--out", "{tmp}/a"], "blend file not found"),
        (["package", "--demo", "--views", "front,sideways", "--out", "{tmp}/b"], "unknown view 'sideways'"),
        (["package", "--demo", "--out", "/proc/forbidden/pkg"], "cannot write"),
        (["package", "--demo", "--age", "300", "--out", "{tmp}/c"], "age must be within"),
        (["package", "--demo", "--ethnicity", "martian", "--out", "{tmp}/d"], "unknown ethnicity"),
        (["package", "--demo", "--face", "nose-wobble=0.3", "--out", "{tmp}/e"], "unknown face part"),
        (["package", "--demo", "--studio", "disco", "--out", "{tmp}/f"], "unknown studio"),
        (["package", "--demo", "--out", "{tmp}/taken"], "not empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    result = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert (tmp_path / "taken" / "keep.txt").exists()


def _write_blend(path: Path, with_character: bool) -> None:
    script = f"""
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
if {with_character}:
    from profile_rig.blender.demo_character import build_demo_character
    from profile_rig.core.phenotype import PRESETS
    build_demo_character(PRESETS['demo_woman'], bpy.context.scene.collection, subdivision=0)
bpy.ops.wm.save_as_mainfile(filepath={str(path)!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, capture_output=True, timeout=120)


def test_blend_without_character_is_reported(tmp_path):
    blend = tmp_path / "empty.blend"
    _write_blend(blend, with_character=False)
    result = run("package", "--blend", str(blend), "--out", str(tmp_path / "pkg"))
    assert result.returncode == 2 and "no armature or mesh" in result.stderr
    assert not (tmp_path / "pkg").exists()


def test_demo_package_json_and_blender_entry_with_a_blend(tmp_path):
    result = run("package", "--demo", "--views", "minimal", "--resolution", "64", "--preset", "preview", "--out", str(tmp_path / "demo"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["package"]).joinpath("package.json").is_file()
    assert list(report["views"]) == ["front", "three_quarter_left", "profile_right"]
    assert "[3/3] profile_right" in result.stderr

    blend = tmp_path / "aiko.blend"
    _write_blend(blend, with_character=True)
    entry = ROOT / "headless_renderer" / "blender_entry.py"
    result = run("package", "--blend", str(blend), "--character", "Aiko", "--views", "front", "--resolution", "48", "--preset", "preview", "--out", str(tmp_path / "aiko"), "--json", entry=entry)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "aiko" / "package.json").read_text())
    assert manifest["character"]["name"] == "Aiko"
    assert manifest["character"]["source"]["kind"] == "blend"
    assert manifest["renderer"]["head"]["method"] == "bones"
