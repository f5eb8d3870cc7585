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
        (["package", "--demo", "--pose", "head=200", "--out", "{tmp}/g"], "above the maximum 80"),
        (["package", "--demo", "--pose", "tail=10", "--out", "{tmp}/h"], "unknown control 'tail'"),
        (["package", "--demo", "--expression", "grin", "--out", "{tmp}/i"], "unknown expression 'grin'"),
        (["package", "--demo", "--expressions", "neutral,Smile!", "--out", "{tmp}/j"], "not an expression name"),
        (["package", "--demo", "--rig", "daz", "--out", "{tmp}/k"], "unknown rig 'daz'"),
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


@pytest.mark.parametrize("content", [b"junk\n", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 4 +X 8\n" + bytes(16)])
def test_unreadable_hdri_is_refused_before_rendering(tmp_path, content):
    """Cycles renders an image it cannot load as magenta and exits 0; the CLI refuses it first."""
    hdri = tmp_path / "junk.hdr"
    hdri.write_bytes(content)
    result = run("package", "--demo", "--hdri", str(hdri), "--out", str(tmp_path / "pkg"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "junk.hdr" in errors[0], result.stderr
    assert not (tmp_path / "pkg").exists() and "rendering" not in result.stderr


def test_environment_image_check_accepts_real_formats(tmp_path):
    import numpy as np

    from profile_rig.core.studio_hdri import StudioError, check_environment_image, write_hdr

    flat = write_hdr(tmp_path / "flat.hdr", np.full((4, 8, 3), 0.9))
    assert check_environment_image(flat) == "Radiance HDR"
    rle = tmp_path / "rle.hdr"  # run-length scanlines start with 2, 2 (most downloaded HDRIs)
    rle.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 16 +X 64\n" + b"\x02\x02\x00\x40" * 40)
    assert check_environment_image(rle) == "Radiance HDR"
    (tmp_path / "a.exr").write_bytes(b"\x76\x2f\x31\x01" + bytes(64))
    assert check_environment_image(tmp_path / "a.exr") == "OpenEXR"
    with pytest.raises(StudioError, match="truncated"):
        check_environment_image(_truncated(flat))
    with pytest.raises(StudioError, match="cannot read"):
        check_environment_image(tmp_path / "missing.hdr")


def _truncated(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:-10])
    return path


def test_usage_mistake_is_one_error_line_and_a_help_hint(tmp_path):
    result = run("package", "--demo", "--out", str(tmp_path / "p"), "--resolution", "huge")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: python -m headless_renderer package: argument --resolution: resolution must be N or WxH, got 'huge'",
        "see 'python -m headless_renderer package --help'"]


def test_gender_picks_the_fitting_demo_preset():
    """--gender female alone starts from demo_woman: her name, her face targets, none of his."""
    from headless_renderer.cli import build_parser
    from profile_rig.blender.package_cli import _phenotype
    from profile_rig.core.phenotype import PRESETS, preset_for_gender

    assert [preset_for_gender(g) for g in (None, 1.0, 0.0, 0.3, 0.5)] == [
        "demo_man", "demo_man", "demo_woman", "demo_woman", "demo_man"]

    def phenotype(*argv):
        return _phenotype(build_parser().parse_args(["package", "--demo", "--out", "x", *argv]))

    woman = phenotype("--gender", "female", "--face", "head-oval=0.5")
    assert woman.name == "Aiko" and woman.gender == 0.0
    assert set(woman.face) == set(PRESETS["demo_woman"].face) | {"head-oval"}
    assert not set(woman.face) - set(PRESETS["demo_woman"].face) - {"head-oval"}
    assert "chin-prominent" not in woman.face  # demo_man's
    named = phenotype("--gender", "female", "--name", "Yuki")
    assert named.name == "Yuki"
    explicit = phenotype("--phenotype", "demo_man", "--gender", "female")
    assert explicit.name == "Mateo" and explicit.face == PRESETS["demo_man"].face
    assert phenotype().name == "Mateo"


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


def test_demo_rig_pose_and_expression_from_the_command_line(tmp_path):
    out = tmp_path / "posed"
    result = run(
        "package", "--demo", "--rig", "mixamo", "--views", "front", "--resolution", "96", "--samples", "1",
        "--pose", "head=20,0,0", "--pose", "eyes=-10,0", "--expression", "smile=0.6", "--expressions", "open_mouth",
        "--out", str(out), "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["head_method"] == "bones"
    assert report["poses"]["front"] == {
        "controls": {"head": [20.0, 0.0, 0.0], "eyes": [-10.0, 0.0]}, "expression": {"smile": 0.6}, "body_turn": 0.0}
    assert report["poses"]["front_open_mouth"]["expression"] == {"smile": 0.6, "open_mouth": 1.0}
    manifest = json.loads((out / "package.json").read_text())
    assert [v["name"] for v in manifest["views"]] == ["front", "front_open_mouth", "three_quarter_left_open_mouth"]
    # views are placed around the posed face: the front view still faces it, the body is turned
    assert manifest["views"][0]["face"]["yaw"] == pytest.approx(0, abs=1)
