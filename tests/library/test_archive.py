from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest

from character_library import ArchiveError, ConflictError, ImportLimits, Library


@pytest.fixture
def exported(lib: Library, make_package, tmp_path: Path) -> Path:
    lib.create_character("Zoe", age=25, tags=["x"], negative_prompt="earrings")
    lib.add_package("Zoe", make_package(seed=1))
    lib.add_package("Zoe", make_package(seed=2), origin="bumped", parent_version=1)
    lib.add_run("Zoe", seed=7, identity_score=0.8, package_version=2)
    return lib.export_character("Zoe", tmp_path / "zoe.zip")


def _library_state(lib: Library) -> tuple:
    files = sorted(str(p.relative_to(lib.root)) for p in lib.root.rglob("*") if "index.sqlite3" not in p.name)
    return files, [c.to_dict() for c in lib.list_characters()]


def test_export_import_round_trip(lib: Library, exported: Path, tmp_path: Path) -> None:
    with pytest.raises(ConflictError, match="--overwrite"):
        lib.export_character("Zoe", exported)
    with pytest.raises(ConflictError, match="--rename"):
        lib.import_character(exported)
    copy, report = lib.import_character(exported, rename="Zoe Copy")
    assert copy.name == "Zoe Copy" and copy.package_count == 2 and copy.active_version == 2 and report.runs == 1
    assert any("renumbered" in p for p in report.problems)  # run ids are unique library-wide
    assert lib.best_runs("Zoe Copy")[0].seed == 7 and lib.count_runs() == 2

    other = Library.open(tmp_path / "other")
    zoe, report = other.import_character(exported)
    assert zoe.to_dict() | {"folder": "", "updated": ""} == lib.get_character("Zoe").to_dict() | {"folder": "", "updated": ""}
    assert [p.to_dict()["views"] for p in other.list_packages("Zoe")] == [p.to_dict()["views"] for p in lib.list_packages("Zoe")]
    assert report.problems == []
    replaced, _ = other.import_character(exported, replace=True)
    assert replaced.name == "Zoe" and len(other.list_trash()) == 1
    other.close()


def _rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a zip member by member, letting ``edit(name, data)`` return [(ZipInfo|name, data), ...]."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            for name, data in edit(info.filename, zin.read(info)):
                zout.writestr(name, data)
    return dst


def _with_listed(src: Path, dst: Path, extra_name: str, data: bytes, attr: int | None = None) -> Path:
    """Add a member *and* list it in export.json, so only the path/type checks can catch it."""
    import hashlib

    def edit(name, blob):
        if name == "export.json":
            doc = json.loads(blob)
            doc["files"].append({"path": extra_name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            blob = json.dumps(doc).encode()
        return [(name, blob)]

    _rewrite(src, dst, edit)
    with zipfile.ZipFile(dst, "a") as z:
        info = zipfile.ZipInfo("character/" + extra_name if not extra_name.startswith(("/", "..", "C:")) else extra_name)
        if attr is not None:
            info.create_system = 3
            info.external_attr = attr << 16
        z.writestr(info, data)
    return dst


@pytest.mark.parametrize(
    "member, attr, message",
    [
        ("../../../evil.txt", None, "zip-slip"),
        ("packages/v0001/../../../../evil.png", None, "zip-slip"),
        ("/etc/cron.d/evil", None, "absolute"),
        ("C:/Windows/evil.png", None, "absolute"),
        ("packages\\v0001\\evil.png", None, "absolute or Windows"),
        ("packages/v0001/link.png", stat.S_IFLNK | 0o777, "symbolic link"),
        ("packages/v0001/fifo.png", stat.S_IFIFO | 0o644, "special file"),
        ("packages/v0001/.hidden.png", None, "not a file a character export contains"),
        ("run.sh", None, "not a file a character export contains"),
    ],
)
def test_hostile_members_are_refused_before_anything_is_written(lib: Library, exported: Path, tmp_path: Path, member, attr, message) -> None:
    hostile = _with_listed(exported, tmp_path / "hostile.zip", member, b"#!/bin/sh\nrm -rf ~\n", attr)
    before = _library_state(lib)
    with pytest.raises(ArchiveError, match=message):
        lib.import_character(hostile, rename="Evil")
    assert _library_state(lib) == before
    assert not list(tmp_path.rglob("evil*")) and not (Path("/etc/cron.d/evil").exists())


def test_oversized_bombs_tampered_and_malformed_zips(lib: Library, exported: Path, tmp_path: Path) -> None:
    before = _library_state(lib)
    with pytest.raises(ArchiveError, match="limit"):
        lib.import_character(exported, rename="Big", limits=ImportLimits(max_member_bytes=1000))
    with pytest.raises(ArchiveError, match="members"):
        lib.import_character(exported, rename="Many", limits=ImportLimits(max_members=3))
    bomb = _with_listed(exported, tmp_path / "bomb.zip", "packages/v0001/zeros.png", b"\0" * (8 << 20))
    # Re-write the bomb member deflated so its ratio is huge.
    with zipfile.ZipFile(bomb) as zin, zipfile.ZipFile(tmp_path / "bomb2.zip", "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
    with pytest.raises(ArchiveError, match="zip bomb"):
        lib.import_character(tmp_path / "bomb2.zip", rename="Bomb")

    def tamper(name, blob):
        return [(name, blob + b"x" if name.endswith("front.png") else blob)]

    with pytest.raises(ArchiveError, match="sha256"):
        lib.import_character(_rewrite(exported, tmp_path / "tampered.zip", tamper), rename="Tampered")

    def duplicate(name, blob):
        return [(name, blob), (name, blob)] if name.endswith("character.json") else [(name, blob)]

    with pytest.warns(UserWarning), pytest.raises(ArchiveError, match="twice"):
        lib.import_character(_rewrite(exported, tmp_path / "dup.zip", duplicate), rename="Dup")
    with pytest.raises(ArchiveError, match="not a character export"):
        lib.import_character(_rewrite(exported, tmp_path / "nomani.zip", lambda n, b: [] if n == "export.json" else [(n, b)]))
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        lib.import_character(tmp_path / "junk.zip")
    assert _library_state(lib) == before
    assert list(lib.staging_dir.iterdir()) == []
