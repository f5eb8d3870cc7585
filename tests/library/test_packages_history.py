from __future__ import annotations

import json
import os

import pytest

from bump_contracts.package_manifest import file_sha256, load_package
from character_library import ConflictError, Library, LibraryError, NotFoundError, ValidationError


def test_versions_active_provenance_and_hashes(lib: Library, make_package) -> None:
    c = lib.create_character("Rin")
    v1 = lib.add_package("Rin", make_package(seed=1))
    assert v1.version == 1 and v1.active and v1.origin == "rendered"
    assert (v1.path / "package.json").is_file() and v1.path.name == "v0001"
    manifest = load_package(v1.path, check_hashes=True)
    assert manifest.character_id == c.id and manifest.character_name == "Rin"
    assert [v.sha256 for v in v1.views] == [file_sha256(v1.path / v.file) for v in v1.views]
    assert (lib.characters_dir / c.folder / "thumbnail.png").is_file()

    v2 = lib.add_package(c.id, make_package(seed=2), origin="bumped", parent_version=1, activate_it=False)
    assert (v2.version, v2.active, v2.parent_version, v2.origin) == (2, False, 1, "bumped")
    assert lib.get_package("Rin").version == 1
    assert lib.set_active("Rin", 2).active and lib.get_character("Rin").active_version == 2
    assert [p.active for p in lib.list_packages("Rin")] == [False, True]
    doc = json.loads((lib.characters_dir / c.folder / "character.json").read_text())
    assert doc["active_version"] == 2 and doc["packages"]["2"]["parent_version"] == 1

    hits = lib.find_views_by_hash(v2.views[0].sha256)
    assert hits == [{"character_id": c.id, "version": 2, "name": "front", "file": "front.png", "character_name": "Rin"}]

    with pytest.raises(ValidationError, match="parent_version"):
        lib.add_package("Rin", make_package(seed=3), origin="bumped")
    with pytest.raises(NotFoundError):
        lib.add_package("Rin", make_package(seed=3), origin="bumped", parent_version=9)
    with pytest.raises(NotFoundError):
        lib.set_active("Rin", 7)
    with pytest.raises(ConflictError):
        lib.delete_package("Rin", 2)  # active
    trashed = lib.delete_package("Rin", 1)
    assert trashed.parent == lib.trash_dir and [p.version for p in lib.list_packages("Rin")] == [2]
    assert lib.list_packages("Rin")[0].parent_version is None


def test_tampered_or_linked_packages_are_refused(lib: Library, make_package, tmp_path) -> None:
    lib.create_character("Rin")
    folder = make_package()
    with open(folder / "front.png", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(LibraryError, match="sha256"):
        lib.add_package("Rin", folder)
    folder = make_package(seed=5)
    secret = tmp_path / "secret.png"
    os.replace(folder / "front.png", secret)
    (folder / "front.png").symlink_to(secret)
    with pytest.raises(LibraryError, match="symlink"):
        lib.add_package("Rin", folder)
    assert lib.list_packages("Rin") == [] and list(lib.staging_dir.iterdir()) == []


def test_history_best_runs_and_seeds(lib: Library, make_package) -> None:
    lib.create_character("Rin")
    lib.add_package("Rin", make_package())
    a = lib.add_run("Rin", seed=11, steps=35, cfg=7, denoise=0.32, sampler="Restart", identity_score=0.71,
                    outputs=["/out/a.png"], package_version=1, settings={"ip_adapter_scale": 0.7})
    lib.add_run("Rin", seed=22, steps=40, cfg=6.5, denoise=0.4, identity_score=0.83)
    lib.add_run("Rin", seed=11, steps=33, cfg=7, denoise=0.35, identity_score=0.78)
    lib.add_run("Rin", seed=33)  # no score yet
    best = lib.best_runs("Rin", limit=3)
    assert [r.seed for r in best] == [22, 11, 11] and best[0].identity_score == 0.83
    assert [r.seed for r in lib.best_runs("Rin", min_score=0.8)] == [22]
    seeds = lib.best_seeds("Rin")
    assert [(s["seed"], s["runs"]) for s in seeds] == [(22, 1), (11, 2), (33, 1)]
    rated = lib.update_run(a.run_id, rating=5, notes="keeps the freckles")
    assert rated.rating == 5 and rated.settings == {"ip_adapter_scale": 0.7} and rated.outputs == ("/out/a.png",)
    assert lib.count_runs("Rin") == 4 and len(lib.list_runs("Rin", limit=2)) == 2
    lines = (lib.character_path("Rin") / "history.jsonl").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[-1])["op"] == "update"
    for bad in ({"seed": 1.5}, {"cfg": float("inf")}, {"denoise": 2}, {"rating": 9}, {"package_version": 4}, {"colour": 1}):
        with pytest.raises(LibraryError):
            lib.add_run("Rin", **bad)
    assert lib.count_runs() == 4


def test_a_bump_record_becomes_one_history_run_whatever_its_prompt_length(lib: Library, make_package) -> None:
    """The add-on and batch runs record a bump through this one conversion; a prompt the job contract
    accepts (5,000 characters here) is recorded whole, not refused nor cut."""
    from pathlib import Path

    from bump_contracts.bump_job import MAX_TEXT
    from bump_contracts.bump_record import BumpRecord

    data = json.loads((Path(__file__).parents[1] / "generate" / "data" / "bump_record_v1.json").read_text())
    data["settings"]["prompt"] = "freckles, " * 500
    assert len(data["settings"]["prompt"]) == 5000 < MAX_TEXT
    record = BumpRecord.from_dict(data)
    lib.create_character("Rin")
    lib.add_package("Rin", make_package())
    run = lib.add_bump_run("Rin", record, run_id="job-000001", package_version=1, outputs=["/out/bump.png"],
                           extra_settings={"batch": {"unit": "u1"}})
    assert run.prompt == data["settings"]["prompt"] and run.seed == record.seed == 7 and run.steps == 3
    assert run.model == f"{record.model.name} [{record.model.hash}]" and run.identity_score == record.best_identity_score
    assert run.settings == {**record.settings, "batch": {"unit": "u1"}} and run.outputs == ("/out/bump.png",)
    assert lib.get_run("job-000001") == run


def test_a_sequence_record_becomes_one_history_run(lib: Library, make_package) -> None:
    """A bumped frame range: the track seed, settings, model and counts; an unfinished record is refused."""
    record = {"schema": "bump-sequence-record", "mode": "bump", "face": {"seed": 99},
              "settings": {"steps": 12, "cfg": 4.5, "denoise": 0.4, "sampler": "Euler a", "prompt": "a man"},
              "params": {"crf": 18}, "frames": [{}] * 5, "tracks": [{"bumped": 5}],
              "model": {"hash": "0123abcd", "name": "sd15"}}
    lib.create_character("Rin")
    lib.add_package("Rin", make_package())
    run = lib.add_sequence_run("Rin", record, run_id="seq-000001", package_version=1,
                               outputs=["/out/clip_bump.mp4", "/out/frames"])
    assert run.seed == 99 and run.steps == 12 and run.model == "sd15 [0123abcd]" and run.prompt == "a man"
    assert run.settings["sequence"]["frames"] == 5 and run.settings["sequence"]["faces_bumped"] == 5
    assert run.outputs == ("/out/clip_bump.mp4", "/out/frames")
    with pytest.raises(LibraryError, match="analyse-only"):
        lib.add_sequence_run("Rin", {**record, "mode": "analyse-only"})
    assert lib.count_runs("Rin") == 1
