"""Hostile exports and killed imports: refused or cleaned up with the library unchanged, nothing left behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_library_cli import cli

from character_library import ArchiveError, Library
from character_library.staging import claim, sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def exported(lib: Library, make_package, tmp_path: Path) -> Path:
    lib.create_character("Zoe", age=25)
    lib.add_package("Zoe", make_package(seed=1))
    return lib.export_character("Zoe", tmp_path / "zoe.zip")


def _library_state(lib: Library) -> tuple:
    files = sorted(str(p.relative_to(lib.root)) for p in lib.root.rglob("*") if "index.sqlite3" not in p.name)
    return files, [c.to_dict() for c in lib.list_characters()]


def _add_listed_members(src: Path, dst: Path, members: dict[str, bytes]) -> Path:
    """``src`` plus ``members`` (deflated), each listed in export.json with its true sha256: only size checks remain."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            blob = zin.read(info)
            if info.filename == "export.json":
                doc = json.loads(blob)
                digests: dict[bytes, str] = {}
                for name, data in members.items():
                    digest = digests.setdefault(data, hashlib.sha256(data).hexdigest())
                    doc["files"].append({"path": name, "size": len(data), "sha256": digest})
                blob = json.dumps(doc).encode()
            zout.writestr(info.filename, blob)
        for name, data in members.items():
            zout.writestr("character/" + name, data)
    return dst


def test_zip_bomb_of_many_members_is_refused(lib: Library, exported: Path, tmp_path: Path) -> None:
    """400 members of 1 MiB that each expand 'only' ~100x (under the per-member ratio): the archive as a
    whole expands ~100x its size, which no real export does."""
    rng = np.random.default_rng(0)
    members = {}
    for i in range(400):
        data = bytearray(1 << 20)
        data[:9000] = rng.integers(0, 255, 9000, dtype=np.uint8).tobytes()
        members[f"packages/v0002/f{i:03d}.png"] = bytes(data)
    bomb = _add_listed_members(exported, tmp_path / "bomb.zip", members)
    with zipfile.ZipFile(bomb) as z:
        ratios = [i.file_size / i.compress_size for i in z.infolist() if i.filename.endswith(".png") and "/f" in i.filename]
    assert max(ratios) < 200, "each member stays under the per-member ratio"
    before = _library_state(lib)
    with pytest.raises(ArchiveError, match="expands .*x .*zip bomb") as caught:
        lib.import_character(bomb, rename="Bomb")
    assert "400" in str(caught.value) or "401" in str(caught.value) or "files" in str(caught.value)
    assert _library_state(lib) == before
    assert list(lib.staging_dir.iterdir()) == []


def test_many_small_deflated_members_are_refused_member_by_member(lib: Library, exported: Path, tmp_path: Path) -> None:
    """Members of 256 KiB zeros: each one expands ~1000x (the old check skipped members under 1 MiB)."""
    members = {f"packages/v0002/z{i:03d}.png": b"\0" * (256 << 10) for i in range(50)}
    bomb = _add_listed_members(exported, tmp_path / "zeros.zip", members)
    before = _library_state(lib)
    with pytest.raises(ArchiveError, match="expands .*zip bomb"):
        lib.import_character(bomb, rename="Zeros")
    assert _library_state(lib) == before and list(lib.staging_dir.iterdir()) == []


def test_a_real_export_stays_well_under_the_ratios(lib: Library, make_package, tmp_path: Path) -> None:
    lib.create_character("Big", age=30)
    for seed in range(3):
        lib.add_package("Big", make_package(seed=seed, side=512))
    for i in range(200):
        lib.add_run("Big", seed=i, identity_score=0.5, package_version=1)
    path = lib.export_character("Big", tmp_path / "big.zip")
    other = Library.open(tmp_path / "other")
    character, report = other.import_character(path)
    assert character.package_count == 3 and report.runs == 200
    other.close()


def test_wrong_package_schema_is_refused_with_nothing_left(lib: Library, exported: Path, tmp_path: Path, capsys) -> None:
    """An export whose package.json has the wrong schema: exit 2, a clear message, no packages folder left."""
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(exported) as zin:
        blobs = {i.filename: zin.read(i) for i in zin.infolist()}
    name = "character/packages/v0001/package.json"
    doc = json.loads(blobs[name])
    doc["schema"] = "something-else"
    blobs[name] = json.dumps(doc).encode()
    manifest = json.loads(blobs["export.json"])
    for entry in manifest["files"]:
        if entry["path"] == "packages/v0001/package.json":
            entry["sha256"], entry["size"] = hashlib.sha256(blobs[name]).hexdigest(), len(blobs[name])
    blobs["export.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(bad, "w") as zout:
        for member, blob in blobs.items():
            zout.writestr(member, blob)
    other = tmp_path / "other"
    Library.open(other).close()
    code, _ = cli(other, "import", str(bad))
    err = capsys.readouterr().err
    assert code == 2
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert line and "packages/v0001/package.json" in line[0] and "schema" in line[0] and "nothing was imported" in line[0]
    assert not list((other / "characters").rglob("*")), "no character folder, no packages/v0001 left"
    assert [p for p in (other / ".staging").iterdir()] == []
    with Library.open(other) as reopened:
        assert reopened.list_characters() == []


# -- staging left by killed processes ----------------------------------------------------------
HOLDER = """
import sys, time
from pathlib import Path
from character_library.staging import claim
with claim(Path(sys.argv[1]), "import") as path:
    path.mkdir()
    (path / "character.json").write_bytes(b"x" * 100_000)
    print("ready", flush=True)
    time.sleep(600)
"""


def _holder(staging: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(staging)], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_staging_of_a_killed_process_goes_when_the_library_is_opened(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    Library.open(root).close()
    staging = root / ".staging"
    killed, alive = _holder(staging), _holder(staging)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        assert len([p for p in staging.iterdir() if p.is_dir()]) == 2
        with Library.open(root) as lib:
            assert len(lib.swept) == 1
        left = [p.name for p in staging.iterdir() if p.is_dir()]
        assert len(left) == 1 and (staging / left[0] / "character.json").is_file(), "the live import is untouched"
    finally:
        alive.kill()
        alive.wait(10)
    lib, report = Library.repair(root)  # repair sweeps too
    lib.close()
    assert report.staging_removed == left and list(staging.iterdir()) == []


def test_killed_real_import_leaves_nothing_after_reopen(lib: Library, make_package, tmp_path: Path) -> None:
    """kill -9 of a real ``library import`` while it extracts: the next open removes its staged folder."""
    lib.create_character("Heavy", age=40)
    for seed in range(6):
        lib.add_package("Heavy", make_package(seed=seed, side=1024))
    path = lib.export_character("Heavy", tmp_path / "heavy.zip")
    target = tmp_path / "target"
    Library.open(target).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "headless_renderer", "library", "--library", str(target),
                                 "import", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        staged = []
        while proc.poll() is None and time.monotonic() < deadline:
            staged = [p for p in (target / ".staging").glob("import-*") if p.is_dir() and any(p.rglob("*.png"))]
            if staged:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(30)
        if staged:
            break
        with Library.open(target) as done:  # it finished before we caught it: undo and try again
            for c in done.list_characters():
                done.delete_character(c.id)
    assert staged, "never caught the import mid-extraction"
    assert staged[0].exists() and any(staged[0].rglob("*.png")), "kill -9 left the staged folder"
    with Library.open(target) as reopened:
        assert [s.name for s in staged][0] in reopened.swept
        assert reopened.list_characters() == []
    assert list((target / ".staging").iterdir()) == []


def test_sweep_keeps_lockless_recent_folders_and_removes_old_ones(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "import-old").mkdir()
    (staging / "import-new").mkdir()
    old = time.time() - 7200
    os.utime(staging / "import-old", (old, old))
    assert sweep(staging) == ["import-old"]
    assert [p.name for p in staging.iterdir()] == ["import-new"]
    with claim(staging, "pkg") as path:
        path.mkdir()
        assert sweep(staging) == [] and path.is_dir()
    assert [p.name for p in staging.iterdir()] == ["import-new"]
