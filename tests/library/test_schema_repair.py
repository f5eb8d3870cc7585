from __future__ import annotations

import json
import sqlite3

import pytest

from character_library import SCHEMA_VERSION, Library, SchemaError
from character_library.schema import APPLICATION_ID

# The version-1 layout exactly as the first release wrote it (kept here, not imported, so a later
# edit of the migration code cannot silently change what "an old library" means in this test).
V1_DDL = """
CREATE TABLE characters (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, name_key TEXT NOT NULL UNIQUE, folder TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL DEFAULT '', negative_prompt TEXT NOT NULL DEFAULT '', notes TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL, updated TEXT NOT NULL
);
CREATE TABLE packages (
    character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version > 0), folder TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('rendered', 'imported', 'bumped')), created TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)), PRIMARY KEY (character_id, version)
);
CREATE UNIQUE INDEX packages_one_active ON packages(character_id) WHERE active = 1;
INSERT INTO characters VALUES ('old_timer_1234abcd', 'Old Timer', 'old timer', 'old_timer', 'photo of an old man',
                               'cartoon', 'from v1', '2024-01-01T00:00:00+00:00', '2024-01-02T00:00:00+00:00');
INSERT INTO packages VALUES ('old_timer_1234abcd', 1, 'v0001', 'rendered', '2024-01-01T00:00:00+00:00', 1);
PRAGMA user_version = 1;
"""


def _old_library(tmp_path):
    root = tmp_path / "old"
    (root / "characters" / "old_timer").mkdir(parents=True)
    (root / "library.json").write_text(json.dumps({"format": "bump-studio-library", "version": 1, "id": "x"}))
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.executescript(V1_DDL)
    conn.close()
    return root


def test_migrates_a_version_1_index_keeping_its_rows(tmp_path) -> None:
    root = _old_library(tmp_path)
    with Library.open(root) as lib:
        assert lib.schema_version == SCHEMA_VERSION
        old = lib.get_character("old timer")
        assert (old.prompt, old.negative_prompt, old.notes, old.active_version) == ("photo of an old man", "cartoon", "from v1", 1)
        assert old.source == {"kind": "external"} and old.tags == () and old.bump == {}
        assert lib.list_packages(old.id)[0].parent_version is None
        lib.update_character(old.id, age=70, tags=["elder"])  # the new columns and tables work
        assert lib.list_characters(tag="elder")[0].age == 70
        assert lib.count_runs(old.id) == 0
    conn = sqlite3.connect(root / "index.sqlite3")
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def test_refuses_newer_and_foreign_indexes(tmp_path) -> None:
    root = _old_library(tmp_path)
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        Library.open(root)
    with pytest.raises(SchemaError, match="newer"):
        Library.repair(root)  # repair never throws away a newer index
    (root / "index.sqlite3").unlink()
    conn = sqlite3.connect(root / "index.sqlite3")
    conn.execute("CREATE TABLE photos (x)")
    conn.close()
    with pytest.raises(SchemaError, match="not a library index"):
        Library.open(root)


def _snapshot(lib: Library) -> dict:
    chars = [c.to_dict() for c in lib.list_characters()]
    for c in chars:
        c.pop("updated")
    return {
        "characters": chars,
        "packages": [p.to_dict() for c in lib.list_characters() for p in lib.list_packages(c.id)],
        "runs": sorted((r.to_dict() for c in lib.list_characters() for r in lib.list_runs(c.id, limit=-1)), key=lambda r: r["run_id"]),
    }


def test_repair_rebuilds_a_lost_or_damaged_index(lib: Library, make_package) -> None:
    a = lib.create_character("Ana", age=30, tags=["x"], bump={"steps": 35})
    lib.add_package("Ana", make_package(seed=1))
    lib.add_package("Ana", make_package(seed=2), origin="bumped", parent_version=1, activate_it=False)
    run = lib.add_run("Ana", seed=5, identity_score=0.9, package_version=2)
    lib.update_run(run.run_id, rating=4)
    lib.create_character("Bea", notes="second")
    before = _snapshot(lib)
    root = lib.root
    lib.close()

    (root / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    for side in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (root / side).unlink(missing_ok=True)
    with pytest.raises(SchemaError, match="repair"):
        Library.open(root)
    repaired, report = Library.repair(root)
    assert report.moved_index and report.characters == 2 and report.packages == 2 and report.runs == 1
    assert _snapshot(repaired) == before
    repaired.close()

    for part in root.glob("index.sqlite3*"):
        part.unlink()
    # A torn last history line (crash mid-append) and a junk folder are reported, not fatal.
    history = root / "characters" / a.folder / "history.jsonl"
    history.write_text(history.read_text() + '{"op": "run", "seed": 1')
    (root / "characters" / "junk").mkdir()
    again, report = Library.repair(root)
    assert _snapshot(again) == before
    assert any("line 3" in p for p in report.problems) and any(s.startswith("junk") for s in report.skipped)
    again.close()


def test_repair_indexes_a_folder_copied_in_by_hand(lib: Library, make_package, tmp_path) -> None:
    import shutil

    lib.create_character("Cid")
    lib.add_package("Cid", make_package())
    folder = lib.character_path("Cid")
    shutil.copytree(folder, tmp_path / "backup")
    lib.delete_character("Cid")
    lib.empty_trash()
    shutil.copytree(tmp_path / "backup", lib.characters_dir / "cid")
    root = lib.root
    lib.close()
    repaired, report = Library.repair(root)
    assert report.skipped == [] and repaired.get_character("Cid").active_version == 1
    repaired.close()
