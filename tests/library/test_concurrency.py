"""Two real processes write to one library at once: no lost, duplicated or corrupted row."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path

from character_library import Library

WRITES = 150


def _writer(root: str, tag: str, barrier) -> None:
    lib = Library.open(root)
    barrier.wait()
    for i in range(WRITES):
        lib.create_character(f"{tag} {i}", tags=[tag])
        lib.add_run("Shared", seed=i, identity_score=i / WRITES, notes=tag)
        if i % 10 == 0:
            lib.update_character("Shared", notes=f"{tag} {i}")
    lib.close()


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    with Library.open(root) as lib:
        lib.create_character("Shared")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(root), tag, barrier)) for tag in ("blender", "batch")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]

    with Library.open(root) as lib:
        assert lib.count_characters() == 1 + 2 * WRITES
        for tag in ("blender", "batch"):
            names = {c.name for c in lib.list_characters(tag=tag)}
            assert names == {f"{tag} {i}" for i in range(WRITES)}
        runs = lib.list_runs("Shared", limit=-1)
        assert len(runs) == 2 * WRITES
        assert sorted((r.notes, r.seed) for r in runs) == sorted((t, i) for t in ("blender", "batch") for i in range(WRITES))
        lines = (lib.character_path("Shared") / "history.jsonl").read_text().splitlines()
        assert len(lines) == 2 * WRITES and all(json.loads(line)["op"] == "run" for line in lines)
        doc = json.loads((lib.character_path("Shared") / "character.json").read_text())
        assert doc["notes"] == lib.get_character("Shared").notes  # file and row agree
        for c in lib.list_characters():
            assert json.loads((lib.characters_dir / c.folder / "character.json").read_text())["id"] == c.id
    conn = sqlite3.connect(root / "index.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
