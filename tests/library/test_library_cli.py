from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import headless_renderer.library_cli as library_cli


def cli(library: Path, *argv: str) -> tuple[int, dict]:
    parser = argparse.ArgumentParser(prog="test")
    library_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["library", "--library", str(library), *argv])
    return library_cli.run(args), args


def run_json(library: Path, capsys, *argv: str) -> tuple[int, dict]:
    code, _ = cli(library, *argv, "--json")
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_cli_commands_end_to_end(tmp_path: Path, capsys, make_package) -> None:
    lib = tmp_path / "lib"
    code, out = run_json(lib, capsys, "create", "Ana Díaz", "--age", "20", "--gender", "woman", "--ethnicity", "Spanish",
                         "--tags", "hero,test", "--bump", "steps=35", "--bump", "sampler=Restart", "--bone", "head=DEF-head")
    assert code == 0 and out["character"]["bump"] == {"steps": 35, "sampler": "Restart"}
    code, out = run_json(lib, capsys, "add-package", "ana díaz", str(make_package()))
    assert code == 0 and out["package"]["version"] == 1
    code, out = run_json(lib, capsys, "add-package", "Ana Díaz", str(make_package(seed=3)), "--no-activate")
    code, out = run_json(lib, capsys, "set-active", "Ana Díaz", "2")
    assert code == 0 and out["package"]["active"]
    code, out = run_json(lib, capsys, "edit", "Ana Díaz", "--name", "Ana D", "--features", "freckles")
    assert out["character"]["name"] == "Ana D"
    code, out = run_json(lib, capsys, "list", "freck")
    assert [c["name"] for c in out["characters"]] == ["Ana D"] and out["total"] == 1
    code, out = run_json(lib, capsys, "show", "Ana D")
    assert out["suggested_prompt"] == "20-year-old Spanish woman, freckles" and len(out["packages"]) == 2
    code, out = run_json(lib, capsys, "export", "Ana D", str(tmp_path / "ana.zip"))
    assert code == 0 and Path(out["zip"]).is_file()
    code, out = run_json(lib, capsys, "delete", "Ana D")
    assert code == 0 and "trash" in out["trash"]
    code, out = run_json(lib, capsys, "import", str(tmp_path / "ana.zip"))
    assert code == 0 and out["character"]["active_version"] == 2
    code, out = run_json(lib, capsys, "repair")
    assert code == 0 and out["characters"] == 1 and out["packages"] == 2
    code, _ = cli(lib, "list")
    assert code == 0 and "Ana D" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["show", "Nobody"], "no character named 'Nobody'"),
        (["create", "Ana"], "already exists"),
        (["edit", "Ana", "--bump", "cfg=99"], "bump.cfg"),
        (["edit", "Ana"], "nothing to change"),
        (["import", "/etc/passwd"], "not a readable zip"),
        (["set-active", "Ana", "3"], "no package version 3"),
        (["add-package", "Ana", "/nonexistent"], "not a folder"),
        (["import-images", "Ana", "/nonexistent.jpg"], "no such file"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, capsys, argv, message) -> None:
    cli(tmp_path / "lib", "create", "Ana")
    capsys.readouterr()
    code, _ = cli(tmp_path / "lib", *argv, "--json")
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and message in captured.err
    assert json.loads(captured.out) == {"ok": False, "error": captured.err[len("error: ") :].strip()}


def test_no_traceback_from_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "headless_renderer.library_cli", "--library", str(tmp_path / "nolib"), "show", "x"],
        capture_output=True, text=True, cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {(tmp_path / 'nolib').resolve()} is not a character library (no library.json); create one with 'library create'"


def _run_module(home: Path, *argv: str) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != "BUMP_STUDIO_LIBRARY"}
    return subprocess.run([sys.executable, "-m", "headless_renderer", "library", *argv], capture_output=True,
                          text=True, env={**env, "HOME": str(home)}, timeout=60)


def test_default_library_is_made_on_first_use(tmp_path: Path) -> None:
    """A fresh install's first `library list` works; a typo'd --library folder is still refused."""
    done = _run_module(tmp_path, "list")
    assert done.returncode == 0 and done.stdout.strip() == "(no characters)", done.stderr
    assert (tmp_path / "BumpStudio" / "library" / "library.json").is_file()
    done = _run_module(tmp_path, "--library", str(tmp_path / "typo"), "list")
    assert done.returncode == 2 and not (tmp_path / "typo").exists()
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")


def test_trash_list_restore_by_name_and_empty(tmp_path: Path, capsys) -> None:
    lib = tmp_path / "lib"
    run_json(lib, capsys, "create", "Zoë Park", "--age", "30")
    run_json(lib, capsys, "delete", "Zoë Park")
    run_json(lib, capsys, "create", "Zoë Park", "--age", "31")  # a second one of that name, deleted later
    run_json(lib, capsys, "delete", "zoë park")
    code, out = run_json(lib, capsys, "trash", "list")
    assert code == 0 and [t["name"] for t in out["trash"]] == ["Zoë Park", "Zoë Park"]
    code, out = run_json(lib, capsys, "trash", "restore", "ZOË PARK")  # by name: the newest comes back
    assert code == 0 and out["character"]["name"] == "Zoë Park" and out["character"]["age"] == 31
    code, out = run_json(lib, capsys, "trash", "restore", "Zoë Park")  # the other one: the name is taken now
    assert code == 2 and "Zoë Park" in out["error"]
    code, out = run_json(lib, capsys, "trash", "restore", "Nobody")
    assert code == 2 and "library trash list" in out["error"]
    code, out = run_json(lib, capsys, "trash", "empty")
    assert code == 0 and out["removed"] == 1
    code, out = run_json(lib, capsys, "trash", "list")
    assert out["trash"] == []


def test_unknown_bump_key_is_refused_with_a_suggestion(tmp_path: Path, capsys) -> None:
    code, out = run_json(tmp_path / "lib", capsys, "create", "Ana", "--bump", "stepz=3")
    assert code == 2 and out["error"] == "bump: unknown setting 'stepz'; did you mean 'steps'?"
    code, out = run_json(tmp_path / "lib", capsys, "create", "Ana", "--bump", "steps=999")
    assert code == 2 and "bump.steps" in out["error"]
    code, out = run_json(tmp_path / "lib", capsys, "create", "Ana", "--bump", "face_denoise=0.3")
    assert code == 0 and out["character"]["bump"] == {"face_denoise": 0.3}


def test_stored_unknown_bump_keys_still_open(tmp_path: Path) -> None:
    """A character.json written before unknown names were refused still loads (and repairs)."""
    from character_library import Library

    with Library.open(tmp_path / "lib") as lib:
        folder = lib.characters_dir / lib.create_character("Old", bump={"steps": 30}).folder
    doc = json.loads((folder / "character.json").read_text())
    doc["bump"]["legacy_knob"] = 1
    (folder / "character.json").write_text(json.dumps(doc))
    lib, report = Library.repair(tmp_path / "lib")
    with lib:
        assert lib.get_character("Old").bump == {"steps": 30, "legacy_knob": 1} and not report.problems
