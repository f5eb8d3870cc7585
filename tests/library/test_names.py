from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from character_library.errors import UnsafeNameError
from character_library.fsutil import inside
from character_library.names import check_folder_name, clean_display_name, name_key, safe_folder_name

FOLDER_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


@pytest.mark.parametrize(
    "name, folder",
    [
        ("../../etc/passwd", "etc_passwd"),
        ("..\\..\\Windows\\System32", "windows_system32"),
        ("/absolute/path", "absolute_path"),
        ("CON", "con_"),
        ("nul", "nul_"),
        ("COM1", "com1_"),
        ("José García", "jose_garcia"),
        ("Ｆｕｌｌｗｉｄｔｈ", "fullwidth"),
        ("Аlice", "alice"),  # Cyrillic А
        ("李小龍", "character"),
        ("a\u200bb", "ab"),  # zero-width space
    ],
)
def test_hostile_names_become_safe_folders(name: str, folder: str) -> None:
    assert safe_folder_name(name) == folder


def test_folder_names_dedupe_case_insensitively() -> None:
    assert safe_folder_name("Alice", {"ALICE"}) == "alice-2"
    assert safe_folder_name("Alice", {"alice", "alice-2"}) == "alice-3"


def test_confusable_and_case_variants_share_a_key() -> None:
    assert name_key("Alice") == name_key("АLICE") == name_key("alice\u200b") == name_key("  Alice ")
    assert name_key("Alice") != name_key("Alicia")


@pytest.mark.parametrize("bad", ["", "   ", "\u200b\u200b", "line\nbreak", "tab\there", "x" * 101, None, 42])
def test_unusable_display_names_are_refused(bad: object) -> None:
    with pytest.raises(UnsafeNameError):
        clean_display_name(bad)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "A", ".hidden", "con", "nul-2", "", "x" * 80, "é"])
def test_folder_names_from_outside_are_checked(bad: str) -> None:
    with pytest.raises(UnsafeNameError):
        check_folder_name(bad)


def test_inside_refuses_escapes(tmp_path) -> None:
    (tmp_path / "lib").mkdir()
    assert inside(tmp_path / "lib", "a", "b") == (tmp_path / "lib" / "a" / "b").resolve()
    with pytest.raises(UnsafeNameError):
        inside(tmp_path / "lib", "..", "x")
    (tmp_path / "lib" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafeNameError):
        inside(tmp_path / "lib", "link", "x")


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_any_name_gives_a_safe_folder_or_a_clear_refusal(name: str) -> None:
    try:
        folder = safe_folder_name(name)
    except UnsafeNameError:
        return
    assert FOLDER_RE.match(folder)
    assert folder.split("-")[0] not in RESERVED and ".." not in folder
