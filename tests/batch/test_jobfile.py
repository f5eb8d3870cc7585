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
    from bump_backend.testing import tiny_models as tiny
    from character_library import Library

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


RANGES = textwrap.dedent('''\
    version = 1
    [defaults]
    backends = ["http://127.0.0.1:9"]
    [defaults.bump]
    steps = 0
    denoise = 1.5
    sampler = "Magic"
    face = { cfg = 40, denoise = 0.3, sampler = "nah" }
    [characters.mateo]
    demo = "demo_man"
    bump = { seed = -2, pose_mode = "sideways" }
    [[entries]]
    characters = ["mateo"]
    tasks = ["package", "bump_package"]
    bump = { face_size = 100 }
    ''')


def test_bump_ranges_are_reported_up_front_with_line_and_field(tmp_path):
    """Out-of-range bump values stop ``batch --dry-run`` (exit 2) with FILE:LINE: field, every one at
    once, and say what BumpSettings (the backend) would say about the same value."""
    import subprocess
    import sys

    from batch_helpers import REPO, env

    from bump_backend.generate.settings import BumpSettings, PassOverrides

    path = write(tmp_path, RANGES)
    result = subprocess.run([sys.executable, "-m", "headless_renderer", "batch", str(path), "--dry-run"], cwd=REPO,
                            env=env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == cli.EXIT_BAD_INPUT, result.stderr
    cases = {  # field -> (line, what BumpSettings says about the same value)
        "defaults.bump.steps": (5, {"steps": 0}), "defaults.bump.denoise": (6, {"denoise": 1.5}),
        "defaults.bump.sampler": (7, {"sampler": "Magic"}),
        "defaults.bump.face.cfg": (8, {"face": PassOverrides(cfg=40)}),
        "defaults.bump.face.sampler": (8, {"face": PassOverrides(sampler="nah")}),
        "characters.mateo.bump.seed": (11, {"seed": -2}), "characters.mateo.bump.pose_mode": (11, {"pose_mode": "sideways"}),
        "entries[0].bump.face_size": (15, {"face_size": 100}),
    }
    for field, (line, kwargs) in cases.items():
        with pytest.raises(ValueError) as backend_says:
            BumpSettings(**kwargs)
        name = field.split(".bump.")[1]
        message = str(backend_says.value)[len(name):].lstrip(": ")
        assert f"{path}:{line}: {field}: {message}" in result.stderr, (field, result.stderr)
    assert "denoise = 0.3" not in result.stderr and "face.denoise" not in result.stderr  # the good one passes
    assert "9 problem(s)" not in result.stderr and "8 problem(s)" in result.stderr
    assert not (tmp_path / "batch_out").exists()


def test_backend_model_is_in_the_bump_units_hashes_only(tmp_path):
    blend = tmp_path / "street.blend"
    blend.write_bytes(b"planning only hashes the file")
    job = load_job(write(tmp_path, job_text("http://127.0.0.1:9", blend)))
    a = build_plan(job, {"hash": "aaaaaaaaaa", "family": "sd15"})
    b = build_plan(job, {"hash": "bbbbbbbbbb", "family": "sd15"})
    assert build_plan(job, {"hash": "aaaaaaaaaa", "family": "sd15"}).units["mateo/bump/front"].hash == \
        a.units["mateo/bump/front"].hash
    changed = {uid for uid in a.units if a.units[uid].hash != b.units[uid].hash}
    assert changed == {uid for uid, u in a.units.items() if u.kind in ("bump_view", "assemble", "bump_shot")}
    assert {a.units[u].kind for u in set(a.units) - changed} == {"package", "shot"}


def test_backend_model_identity_and_different_models_refused(tmp_path):
    from bump_contracts.health import Capabilities, Health, ModelInfo
    from headless_renderer.batch import backend_model

    def health(model_hash, base, device="cuda", state="ready", loras=()):
        model = ModelInfo(name=base.rsplit("/", 1)[-1], family="sd15", dtype="float16", hash=model_hash,
                          ip_adapter_kind="plus-face")
        return Health(status="ok", version="1", contract_version=1, auth_required=False, model_state=state,
                      model=model if state == "ready" else None, queue_length=0, queue_capacity=8,
                      capabilities=Capabilities(ip_adapter_kinds=("plus-face",), loras=loras, device=device))

    same_weights = backend_model.model_identity(health("abc", "/a/m.safetensors"))
    assert same_weights == backend_model.model_identity(health("abc", "/other/path.safetensors", "cpu"))
    assert same_weights["hash"] == "abc" and backend_model.model_identity(health("", "/a", state="loading")) is None
    assert same_weights != backend_model.model_identity(health("abc", "/a", loras=("detail:0.6",)))
    assert backend_model.model_identity(Health(status="ok", version="1", contract_version=1,
                                               auth_required=True)) is None  # public answer: no model

    class Fake:
        def __init__(self, answers):
            self.answers = answers

        def health(self):
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    clients = {"http://a": Fake([health("abc", "/a")]), "http://b": Fake([health("def", "/b")])}
    with pytest.raises(backend_model.BackendModelError, match="different models"):
        backend_model.query(list(clients), None, client_factory=clients.__getitem__)
    notes = []
    loading = {"http://a": Fake([health("", "/a", state="loading"), health("abc", "/a")])}
    assert backend_model.query(["http://a"], None, wait_s=30, note=notes.append,
                               client_factory=loading.__getitem__) == same_weights
    assert any("loading" in n for n in notes)

    # every backend down: a run plans with the model the last run saw (finished bumps stay finished)
    job = load_job(write(tmp_path, job_text("http://127.0.0.1:9", None, shots=False)))
    assert backend_model.resolve(job, wait_s=0, note=notes.append) == (None, False)
    backend_model.save(job.output, same_weights)
    assert backend_model.resolve(job, wait_s=0, note=notes.append) == (same_weights, False)
    assert "planning with the last run's" in notes[-1]


def test_library_targets_must_not_collide(tmp_path):
    from character_library import Library

    with Library.open(tmp_path / "lib") as lib:
        lib.create_character("Mateo", source={"kind": "external"})
    text = textwrap.dedent('''\
        [defaults]
        library = "lib"
        [characters.mateo]
        demo = "demo_man"
        [characters.twin]
        demo = "demo_woman"
        name = "aiko"
        [characters.aiko]
        demo = "demo_woman"
        [[entries]]
        characters = ["*"]
        tasks = ["package"]
        ''')
    with pytest.raises(JobFileError) as info:
        load_job(write(tmp_path, text))
    problems = {(p.line, p.field): p.message for p in info.value.problems}
    assert "from another source (external)" in problems[(3, "characters.mateo")]
    assert "same library character 'Aiko'" in problems[(8, "characters.aiko")]
    job = load_job(write(tmp_path, text.replace('library = "lib"', 'library = "lib"\nupdate_library = false'), "b.toml"))
    assert job.update_library is False and job.library == str((tmp_path / "lib").resolve())


def test_two_characters_from_one_preset_need_their_own_names(tmp_path):
    """Without a name both would be "Mateo" (the preset's), and their packages the same character id."""
    text = textwrap.dedent('''\
        version = 1
        [defaults]
        output = "out"
        [characters.mateo]
        demo = "demo_man"
        [characters.elder]
        demo = "demo_man"
        phenotype = { age = 68 }
        [[entries]]
        characters = ["*"]
        tasks = ["package"]
        ''')
    with pytest.raises(JobFileError) as info:
        load_job(write(tmp_path, text))
    problems = {(p.line, p.field): p.message for p in info.value.problems}
    assert "same name 'Mateo' as characters.mateo" in problems[(6, "characters.elder")]
    job = load_job(write(tmp_path, text.replace("age = 68 }", "age = 68 }\nname = \"Elder\""), "b.toml"))
    assert [c.name for c in job.characters.values()] == ["Mateo", "Elder"]


def test_a_misspelled_shared_field_is_reported_once(tmp_path: Path) -> None:
    """defaults.package is checked for every character that inherits it; the typo is one problem."""
    job = tmp_path / "job.toml"
    job.write_text(textwrap.dedent('''
        version = 1
        [defaults]
        output = "out"
        [defaults.package]
        resolutoin = 96
        [characters.mateo]
        demo = "demo_man"
        [characters.aiko]
        demo = "demo_woman"
        [characters.rin]
        demo = "demo_woman"
        name = "Rin"
        [[entries]]
        characters = ["*"]
        tasks = ["package"]
    '''))
    with pytest.raises(JobFileError) as info:
        load_job(job)
    assert [(p.line, p.field) for p in info.value.problems] == [(6, "defaults.package.resolutoin")]
    assert str(info.value).count("resolutoin") == 1


def test_batch_help_is_written_for_users(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert "Registered in" not in text and "add_batch_parser" not in text and "``" not in text
    assert "examples:" in text and "--dry-run" in text and "exit codes:" in text


def test_render_task_shape_fits_the_cluster() -> None:
    """A render task asking for more CPUs than any node has would wait forever."""
    from headless_renderer.batch.ray_executor import render_task_shape

    assert render_task_shape([1.0], 1, None) == (1.0, 1)      # --workers 1: a 1-CPU local cluster
    assert render_task_shape([2.0], 2, None) == (1.0, 1)      # two renders share two CPUs
    assert render_task_shape([8.0], 2, None) == (4.0, 4)
    assert render_task_shape([4.0, 4.0], None, None) == (2.0, 2)  # a cluster, no --workers: two each
    assert render_task_shape([1.0], None, None) == (1.0, 2)   # capped at the node; still two threads
    assert render_task_shape([2.0, 16.0], None, 8) == (8.0, 8)  # --render-threads wins
    assert render_task_shape([4.0], 1, 32) == (4.0, 32)
