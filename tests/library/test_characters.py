from __future__ import annotations

import json

import pytest

from bump_contracts.bump_job import MAX_TEXT, check_param
from character_library import ConflictError, Library, LibraryError, NotFoundError, UnsafeNameError, ValidationError


def test_create_get_list_update_delete(lib: Library) -> None:
    c = lib.create_character(
        "Mateo Ruiz", age=20, gender="man", ethnicity="Spanish", features="goatee", tags=["Hero", "test"],
        negative_prompt="cartoon, earrings", bump={"steps": 35, "cfg": 7, "denoise": 0.32, "seed": 1234, "sampler": "Restart"},
        source={"kind": "blend", "blend": "/scenes/mateo.blend", "object": "Mateo"}, bones={"head": "DEF-head"},
    )
    assert c.suggested_prompt() == "20-year-old Spanish man, goatee"
    assert c.tags == ("hero", "test") and c.bump["cfg"] == 7.0 and c.active_version is None
    assert lib.get_character("mateo ruiz").id == c.id == lib.get_character(c.id).id
    on_disk = json.loads((lib.characters_dir / c.folder / "character.json").read_text())
    assert on_disk["name"] == "Mateo Ruiz" and on_disk["bones"] == {"head": "DEF-head"}

    lib.create_character("Ana", tags=["test"], notes="freckles and a mole on the left cheek")
    assert [x.name for x in lib.list_characters()] == ["Ana", "Mateo Ruiz"]
    assert [x.name for x in lib.list_characters("freckles")] == ["Ana"]
    assert [x.name for x in lib.list_characters(tag="hero")] == ["Mateo Ruiz"]
    assert lib.count_characters(tag="test") == 2
    assert lib.list_characters("100%_") == []  # LIKE wildcards are literal

    updated = lib.update_character("Mateo Ruiz", name="Mateo R.", prompt="photo of Mateo", tags=[])
    assert updated.folder == c.folder and updated.tags == () and updated.updated >= c.updated
    assert json.loads((lib.characters_dir / c.folder / "character.json").read_text())["name"] == "Mateo R."
    with pytest.raises(NotFoundError):
        lib.get_character("Mateo Ruiz")

    trash = lib.delete_character("Mateo R.")
    assert trash.parent == lib.trash_dir and (trash / "character.json").is_file()
    assert not (lib.characters_dir / c.folder).exists()
    assert [x.name for x in lib.list_characters()] == ["Ana"]
    restored = lib.restore_character(trash.name)
    assert restored.name == "Mateo R." and restored.bump["steps"] == 35


def test_names_must_be_unique_up_to_case_and_lookalikes(lib: Library) -> None:
    lib.create_character("Alice")
    for clash in ("alice", "ALICE ", "Аlice", "Al\u200bice"):
        with pytest.raises(ConflictError):
            lib.create_character(clash)
    bob = lib.create_character("Bob")
    with pytest.raises(ConflictError):
        lib.update_character(bob.id, name="ALICE")


def test_hostile_names_stay_inside_the_library(lib: Library) -> None:
    for name in ("../../escape", "/etc/passwd", "CON", "..", "a/../../b"):
        c = lib.create_character(name)
        path = (lib.characters_dir / c.folder).resolve()
        assert path.parent == lib.characters_dir.resolve() and path.is_dir()
    assert not (lib.root.parent / "escape").exists()
    with pytest.raises(UnsafeNameError):
        lib.create_character("bad\nname")


@pytest.mark.parametrize(
    "fields",
    [
        {"age": -1}, {"age": 200}, {"age": "old"}, {"gender": "a\nb"}, {"bump": {"steps": 0}}, {"bump": {"cfg": float("nan")}},
        {"bump": {"denoise": 1.5}}, {"bump": {"Bad Key": 1}}, {"source": {"kind": "blend"}}, {"source": {"kind": "cloud"}},
        {"bones": {"Head": "x"}}, {"tags": ["a,b"]}, {"colour": "red"}, {"prompt": "x" * (MAX_TEXT + 1)},
        # the job contract's own ranges: a stored default the backend would refuse is refused here
        {"bump": {"denoise": 0}}, {"bump": {"candidates": 64}}, {"bump": {"sampler": "Euler z"}},
        {"bump": {"face_denoise": 0}}, {"bump": {"face_size": 100}},
    ],
)
def test_bad_fields_are_refused_with_the_field_named(lib: Library, fields: dict) -> None:
    with pytest.raises(ValidationError) as info:
        lib.create_character("Someone", **fields)
    assert next(iter(fields)) in str(info.value)
    assert lib.count_characters() == 0 and list(lib.characters_dir.iterdir()) == []


def test_open_refuses_foreign_folders(tmp_path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(LibraryError, match="not a character library"):
        Library.open(tmp_path / "stuff")
    with pytest.raises(LibraryError, match="not a character library"):
        Library.open(tmp_path / "missing", create=False)


def test_empty_trash(lib: Library) -> None:
    lib.create_character("Temp")
    lib.delete_character("Temp")
    assert len(lib.list_trash()) == 1
    assert lib.empty_trash() == 1 and lib.list_trash() == []


def test_summaries_for_long_lists(lib: Library, make_package) -> None:
    lib.create_character("Bo", tags=["a"])
    lib.create_character("al")
    lib.add_package("Bo", make_package())
    rows = lib.list_summaries()
    assert [(r.name, r.active_version) for r in rows] == [("al", None), ("Bo", 1)]
    assert [r.name for r in lib.list_summaries(tag="a")] == ["Bo"]
    assert [c.name for c in lib.list_characters(limit=1000)] == [c.name for c in lib.list_characters(limit=1)] + ["Bo"]


def test_bump_defaults_follow_the_job_contract(lib: Library) -> None:
    from bump_contracts.bump_job import check_param

    character = lib.create_character("Ana", bump={"sampler": "dpm++ 2m karras", "steps": 30.0, "face_denoise": 0.32,
                                                  "model": "my-checkpoint"})
    # The sampler comes back in its A1111 spelling, a whole float as an int, library-only labels as they are.
    assert character.bump == {"sampler": "DPM++ 2M Karras", "steps": 30, "face_denoise": 0.32,
                              "model": "my-checkpoint"}
    assert check_param("face.denoise", character.bump["face_denoise"]) == 0.32


def test_every_prompt_the_job_contract_accepts_is_kept_by_characters_and_history(lib: Library) -> None:
    """One text limit: a bump whose prompt the server accepted is never dropped from the history."""
    longest = "y" * MAX_TEXT
    assert check_param("prompt", longest) == longest
    lib.create_character("Ines", prompt=longest, negative_prompt=longest)
    run = lib.add_run("Ines", seed=5, prompt=longest, negative_prompt=longest)
    assert lib.get_run(run.run_id).prompt == longest
    assert lib.get_character("Ines").negative_prompt == longest
