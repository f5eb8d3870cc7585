"""Job-file checks and planning, without rendering: every error at once with its line, and unit
hashes that change exactly where a setting reaches."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from batch_helpers import job_text

from headless_renderer.batch import cli
from headless_renderer.batch.jobfile import JobFileError, load_job, parse_frames
from headless_renderer.batch.toml_lines import field_lines, line_of
from headless_renderer.batch.units import build_plan

BAD = textwrap.dedent('''\
    version = 1
    colour = "blue"

    [defaults]
    backend = ["http://127.0.0.1:1"]

    [defaults.package]
    views = ["front", "sideways"]
    resolution = 5

    [defaults.bump]
    steps = "many"
    denoize = 0.3

    [characters.mateo]
    demo = "demo_giant"

    [characters.aiko]
    demo = "demo_woman"
    phenotype = { age = 120 }

    [characters.both]
    demo = "demo_man"
    blend = "x.blend"

    [[entries]]
    characters = ["mateo", "aiko", "nobody"]
    tasks = ["package", "bump_package", "render_everything"]

    [[entries]]
    characters = ["aiko"]
    tasks = ["shots"]

    [[entries.shots]]
    blend = "missing.blend"
    frames = ["20-10"]
    ''')


def write(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_job_file_reports_every_error_at_once_with_line_and_field(tmp_path, capsys):
    path = write(tmp_path, BAD)
    with pytest.raises(JobFileError) as info:
        load_job(path)
    found = {(p.line, p.field) for p in info.value.problems}
    expected = {
        (2, "colour"),
        (5, "defaults.backend"),
        (8, "defaults.package.views"),
        (9, "defaults.package.resolution"),
        (12, "defaults.bump.steps"),
        (13, "defaults.bump.denoize"),
        (16, "characters.mateo.demo"),
        (20, "characters.aiko.phenotype.age"),
        (22, "characters.both"),
        (27, "entries[0].characters[2]"),
        (28, "entries[0].tasks[2]"),
        (35, "entries[1].shots[0].blend"),
        (36, "entries[1].shots[0].frames"),
    }
    assert expected <= found, sorted(found)
    messages = {p.field: p.message for p in info.value.problems}
    assert "did you mean 'backends'" in messages["defaults.backend"]
    assert "did you mean 'denoise'" in messages["defaults.bump.denoize"]
    assert "sideways" in messages["defaults.package.views"]
    assert "age" in messages["characters.aiko.phenotype.age"]
    assert any("backends" in p.field and "URL" in p.message for p in info.value.problems)  # bumps without a backend

    # the CLI prints all of them, refuses to start (exit 2) and renders nothing
    assert cli.main([str(path)]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{path}:13: defaults.bump.denoize" in err
    assert f"{path}:36: entries[1].shots[0].frames" in err
    assert not (tmp_path / "batch_out").exists()


def test_toml_syntax_error_names_its_line(tmp_path):
    path = write(tmp_path, "version = 1\n[defaults\noutput = 'x'\n")
    with pytest.raises(JobFileError) as info:
        load_job(path)
    assert info.value.problems[0].line == 2


def test_field_lines_index_array_tables():
    text = "[[entries]]\ntasks = []\n[[entries]]\n\ncharacters = ['a']\n[[entries.shots]]\nblend = 'x'\n"
    lines = field_lines(text)
    assert lines["entries[1].characters"] == 5
    assert lines["entries[1].shots[0].blend"] == 7
    assert line_of(lines, "entries[1].characters[3]") == 5


def test_frames():
    assert parse_frames([1, "10-14/2", "20-21"]) == [1, 10, 12, 14, 20, 21]
    for bad in (["5-1"], [1, 1], ["x"], [True]):
        with pytest.raises(ValueError):
            parse_frames(bad)


def _plan(tmp_path: Path, name: str, **kwargs):
    blend = tmp_path / "street.blend"
    if not blend.exists():
        blend.write_bytes(b"not really a blend: planning only hashes the file")
    return build_plan(load_job(write(tmp_path, job_text("http://127.0.0.1:9", blend, **kwargs), name)))


def test_unit_hashes_change_only_where_a_setting_reaches(tmp_path):
    base = _plan(tmp_path, "a.toml")
    assert set(base.units) == {
        "mateo/package", "aiko/package", "mateo/bump/front", "mateo/bump/three_quarter_left", "mateo/package_bumped",
        "aiko/bump/front", "aiko/bump/three_quarter_left", "aiko/package_bumped",
        "mateo/shot/street/CamA/f0001", "mateo/bump_shot/street/CamA/f0001"}
    order = list(base.units)
    for unit in base.units.values():  # every unit comes after what it needs
        assert all(order.index(n) < order.index(unit.id) for n in unit.needs)

    def changed(other):
        return {uid for uid in base.units if base.units[uid].hash != other.units[uid].hash}

    assert changed(_plan(tmp_path, "b.toml")) == set()
    assert changed(_plan(tmp_path, "c.toml", aiko_denoise=0.6)) == {
        "aiko/bump/front", "aiko/bump/three_quarter_left", "aiko/package_bumped"}
    assert changed(_plan(tmp_path, "d.toml", mateo_samples=2)) == {
        "mateo/package", "mateo/bump/front", "mateo/bump/three_quarter_left", "mateo/package_bumped",
        "mateo/bump_shot/street/CamA/f0001"}
    (tmp_path / "street.blend").write_bytes(b"the scene changed")
    assert changed(_plan(tmp_path, "e.toml")) == {"mateo/shot/street/CamA/f0001", "mateo/bump_shot/street/CamA/f0001"}


def test_only_selects_characters_and_refuses_unknown_names(tmp_path):
    path = write(tmp_path, job_text("http://127.0.0.1:9", None, shots=False))
    plan = build_plan(load_job(path, only=["aiko"]))
    assert {u.character for u in plan.units.values()} == {"aiko"}
    with pytest.raises(JobFileError, match="--only zed"):
        load_job(path, only=["zed"])


def test_dry_run_lists_units_and_touches_nothing(tmp_path, capsys):
    path = write(tmp_path, job_text("http://127.0.0.1:9", None, shots=False))
    assert cli.main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "run  mateo/package" in out and "8 units, 8 to run" in out
    assert not (tmp_path / "out").exists()


def test_library_character_uses_its_active_package(tmp_path):
    from bump_backend.generate import tiny
    from profile_rig.library import Library

    lib = Library.open(tmp_path / "lib")
    lib.create_character("Nadia", age=31, gender="woman", ethnicity="Moroccan", features="freckles",
                         bump={"denoise": 0.3})
    lib.add_package("Nadia", tiny.build_tiny_package(tmp_path / "pkg"))
    lib.close()
    text = textwrap.dedent('''
        [defaults]
        library = "lib"
        backends = ["http://127.0.0.1:9"]
        [characters.nadia]
        library = "Nadia"
        [[entries]]
        characters = ["nadia"]
        tasks = ["bump_package"]
        ''')
    job = load_job(write(tmp_path, text))
    nadia = job.characters["nadia"]
    assert nadia.bump["prompt"] == "31-year-old Moroccan woman, freckles" and nadia.bump["denoise"] == 0.3
    plan = build_plan(job)
    assert sorted(plan.units) == ["nadia/bump/front", "nadia/bump/three_quarter_left",
                                  "nadia/bump/three_quarter_right", "nadia/package_bumped"]
    assert Path(plan.units["nadia/bump/front"].spec["package"]).is_absolute()
    with pytest.raises(JobFileError, match="no .blend source"):
        load_job(write(tmp_path, text.replace('"bump_package"', '"package"'), "p.toml"))


def test_main_cli_and_blender_entry_reach_the_batch_command(tmp_path):
    """``python -m headless_renderer batch`` and ``blender -b -P blender_entry.py -- batch`` (plain Python
    stands in for Blender here: the entry script passes the arguments after ``--`` to the same main)."""
    import subprocess
    import sys

    from batch_helpers import REPO, env

    from headless_renderer.cli import build_parser

    try:
        build_parser().parse_args(["batch", "job.toml"])
    except SystemExit:
        pytest.skip("'batch' is not registered in headless_renderer/cli.py yet (two lines, see headless_renderer/batch/cli.py)")
    job = write(tmp_path, job_text("http://127.0.0.1:9", None, shots=False))
    for cmd in ([sys.executable, "-m", "headless_renderer", "batch", str(job), "--dry-run"],
                [sys.executable, "headless_renderer/blender_entry.py", "--", "batch", str(job), "--dry-run"]):
        result = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "run  mateo/package" in result.stdout
