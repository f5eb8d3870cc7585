"""Characters: validated fields, their rows in the index, and their ``character.json`` file."""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from bump_contracts.bump_job import FACE_PARAMS, MAX_TEXT, PARAMS, ContractError, check_param, param_rule
from bump_contracts.package_manifest import character_id_from_name
from character_library.errors import ConflictError, LibraryError, NotFoundError, UnsafeNameError, ValidationError
from character_library.fsutil import fsync_dir, now_iso, stamp, write_json_atomic
from character_library.names import (
    check_character_id,
    check_folder_name,
    clean_display_name,
    clean_tag,
    name_key,
    safe_folder_name,
)

CHARACTER_FILE = "character.json"
CHARACTER_FORMAT = "bump-studio-character"
CHARACTER_FORMAT_VERSION = 1
SOURCE_KINDS = ("external", "blend", "demo")

_LINE_LIMITS = {"gender": 64, "ethnicity": 100, "prompt_name": 100, "features": 500}
_TEXT_LIMITS = {"prompt": MAX_TEXT, "negative_prompt": MAX_TEXT, "notes": 20000}  # prompts: the job contract's limit
EDITABLE = frozenset({"name", "age", *_LINE_LIMITS, *_TEXT_LIMITS, "tags", "source", "bones", "bump"})

# Default bump settings a character may carry, checked against the job contract's own table (one set
# of rules for the library, the server, the add-on and batch files) so a typo cannot poison every run.
# "face_<name>" is the face pass's value of <name>; a few library-only labels are plain text.
_BUMP_TEXT = {"scheduler", "model", "ip_adapter"}


@dataclass(frozen=True)
class Character:
    """One character as the index knows it (``active_version`` is None until it has a package)."""

    id: str
    name: str
    folder: str
    created: str
    updated: str
    age: int | None = None
    gender: str = ""
    ethnicity: str = ""
    prompt_name: str = ""
    features: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    notes: str = ""
    tags: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=lambda: {"kind": "external"})
    bones: dict[str, str] = field(default_factory=dict)
    bump: dict[str, Any] = field(default_factory=dict)
    active_version: int | None = None
    package_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "folder": self.folder,
            "age": self.age,
            "gender": self.gender,
            "ethnicity": self.ethnicity,
            "prompt_name": self.prompt_name,
            "features": self.features,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "notes": self.notes,
            "tags": list(self.tags),
            "source": dict(self.source),
            "bones": dict(self.bones),
            "bump": dict(self.bump),
            "created": self.created,
            "updated": self.updated,
            "active_version": self.active_version,
            "package_count": self.package_count,
        }

    def suggested_prompt(self) -> str:
        """The prompt if set, else one built from the phenotype ("20-year-old Spanish man, goatee")."""
        if self.prompt:
            return self.prompt
        who = " ".join(p for p in (f"{self.age}-year-old" if self.age is not None else "", self.ethnicity, self.gender) if p)
        parts = [p for p in (self.prompt_name, who, self.features) if p]
        return ", ".join(parts)


# -- validation ------------------------------------------------------------------------------
def _line(value: Any, key: str, limit: int, *, multiline: bool = False) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{key}: expected text, got {type(value).__name__}")
    if not multiline and ("\n" in value or "\r" in value):
        raise ValidationError(f"{key}: must be a single line")
    if len(value) > limit:
        raise ValidationError(f"{key}: {len(value)} characters; the limit is {limit}")
    if "\x00" in value:
        raise ValidationError(f"{key}: contains a NUL character")
    return value.strip() if not multiline else value


def _age(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 150:
        raise ValidationError(f"age: expected a whole number of years 0-150, got {value!r}")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [t for t in value.split(",") if t.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValidationError("tags: expected a list of text labels")
    try:
        tags = sorted({clean_tag(t) for t in value})
    except UnsafeNameError as exc:
        raise ValidationError(f"tags: {exc}") from None
    if len(tags) > 50:
        raise ValidationError("tags: at most 50 tags per character")
    return tuple(tags)


def _source(value: Any) -> dict[str, Any]:
    if value is None:
        return {"kind": "external"}
    if not isinstance(value, dict) or value.get("kind") not in SOURCE_KINDS:
        raise ValidationError(f"source: expected {{'kind': one of {', '.join(SOURCE_KINDS)}, ...}}, got {value!r}")
    allowed = {"kind", "blend", "object"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ValidationError(f"source: unknown field(s) {', '.join(unknown)}")
    out = {"kind": value["kind"]}
    for key in ("blend", "object"):
        if key in value and value[key] is not None:
            out[key] = _line(value[key], f"source.{key}", 1000)
    if out["kind"] == "blend" and not out.get("blend"):
        raise ValidationError("source: a 'blend' source needs the .blend file path ('blend')")
    return out


def _bones(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("bones: expected a mapping like {'head': 'DEF-head', 'eye_left': ...}")
    out = {}
    for key, bone in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", key):
            raise ValidationError(f"bones: {key!r} is not a role name (lowercase letters, digits, _)")
        out[key] = _line(bone, f"bones.{key}", 200)
        if not out[key]:
            raise ValidationError(f"bones.{key}: the bone name is empty")
    return out


def _contract_name(key: str) -> str | None:
    """The job contract's name for a library bump key ("steps", "face_denoise" -> "face.denoise")."""
    if key in PARAMS and key != "face":
        return key
    if key.startswith("face_") and key[5:] in FACE_PARAMS:
        return "face." + key[5:]
    return None


def _contract_value(name: str, key: str, item: Any) -> Any:
    if param_rule(name).kind == "str" and isinstance(item, str):
        item = _line(item, f"bump.{key}", MAX_TEXT)
    if param_rule(name).kind == "int" and isinstance(item, float) and item.is_integer():
        item = int(item)  # JSON/TOML tools write 30.0 for 30
    try:
        return check_param(name, item, label=f"bump.{key}")
    except ContractError as exc:
        raise ValidationError(str(exc)) from None


def bump_keys() -> list[str]:
    """Every bump setting name a character may carry: the contract's, ``face_<name>``, library labels."""
    return sorted({*(k for k in PARAMS if k != "face"), *(f"face_{k}" for k in FACE_PARAMS), *_BUMP_TEXT})


def _unknown_bump_key(key: str) -> ValidationError:
    close = difflib.get_close_matches(key, bump_keys(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(bump_keys())}"
    return ValidationError(f"bump: unknown setting {key!r}{hint}")


def _bump(value: Any, strict: bool = True) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("bump: expected a mapping of settings (steps, cfg, denoise, seed, sampler...)")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", key):
            raise ValidationError(f"bump: {key!r} is not a setting name")
        rule = _contract_name(key)
        if rule is not None:
            out[key] = _contract_value(rule, key, item)
        elif key in _BUMP_TEXT:
            out[key] = _line(item, f"bump.{key}", MAX_TEXT)
        elif strict:  # a typo (stepz=3) would be stored and then ignored, or break every batch run
            raise _unknown_bump_key(key)
        else:  # read from disk: written before unknown names were refused; kept as it is
            try:
                json.dumps(item, allow_nan=False)
            except (TypeError, ValueError):
                raise ValidationError(f"bump.{key}: value is not plain JSON data") from None
            out[key] = item
    return out


def validate_fields(fields: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """Check and normalise editable fields; unknown names are refused with the list of known ones.

    ``strict=False`` (reading a stored ``character.json``) keeps unknown bump setting names that an
    older version stored, so an existing library still opens."""
    unknown = sorted(set(fields) - EDITABLE)
    if unknown:
        raise ValidationError(f"unknown character field(s) {', '.join(unknown)}; known: {', '.join(sorted(EDITABLE))}")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "name":
            out[key] = clean_display_name(value)
        elif key == "age":
            out[key] = _age(value)
        elif key in _LINE_LIMITS:
            out[key] = _line(value, key, _LINE_LIMITS[key])
        elif key in _TEXT_LIMITS:
            out[key] = _line(value, key, _TEXT_LIMITS[key], multiline=True)
        elif key == "tags":
            out[key] = _tags(value)
        elif key == "source":
            out[key] = _source(value)
        elif key == "bones":
            out[key] = _bones(value)
        elif key == "bump":
            out[key] = _bump(value, strict)
    return out


# -- rows --------------------------------------------------------------------------------------
# One character (or a short page): correlated subqueries run only for the rows returned.
_SELECT = """
SELECT c.*,
       (SELECT version FROM packages p WHERE p.character_id = c.id AND p.active = 1) AS active_version,
       (SELECT count(*) FROM packages p WHERE p.character_id = c.id) AS package_count,
       (SELECT group_concat(tag, char(10)) FROM tags t WHERE t.character_id = c.id) AS tag_list
FROM characters c
"""


# Long lists: the per-character aggregates are computed once for the whole table instead.
_SELECT_MANY = """
SELECT c.*, p.active_version, coalesce(p.package_count, 0) AS package_count, t.tag_list
FROM characters c
LEFT JOIN (SELECT character_id, max(CASE WHEN active = 1 THEN version END) AS active_version, count(*) AS package_count
           FROM packages GROUP BY character_id) p ON p.character_id = c.id
LEFT JOIN (SELECT character_id, group_concat(tag, char(10)) AS tag_list FROM tags GROUP BY character_id) t
          ON t.character_id = c.id
"""


@lru_cache(maxsize=4096)
def _json_cached(text: str) -> tuple[dict[str, Any], bool]:
    value = json.loads(text)
    return value, all(not isinstance(v, (dict, list)) for v in value.values())


def _json_dict(text: str) -> dict[str, Any]:
    """Most rows share a few JSON values ('{}', the default source): parse each once, copy per row."""
    if len(text) <= 2:
        return {}
    value, flat = _json_cached(text)
    return dict(value) if flat else copy.deepcopy(value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def row_to_character(row: sqlite3.Row) -> Character:
    return Character(
        id=row["id"],
        name=row["name"],
        folder=row["folder"],
        created=row["created"],
        updated=row["updated"],
        age=row["age"],
        gender=row["gender"],
        ethnicity=row["ethnicity"],
        prompt_name=row["prompt_name"],
        features=row["features"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        notes=row["notes"],
        tags=tuple(sorted(row["tag_list"].split("\n"))) if row["tag_list"] else (),
        source=_json_dict(row["source_json"]),
        bones=_json_dict(row["bones_json"]),
        bump=_json_dict(row["bump_json"]),
        active_version=row["active_version"],
        package_count=row["package_count"],
    )


def insert_character(conn: sqlite3.Connection, char_id: str, folder: str, fields: dict[str, Any], created: str, updated: str) -> None:
    """Insert a validated character row (used by create, repair and import alike)."""
    key = name_key(fields["name"])
    clash = conn.execute("SELECT name FROM characters WHERE name_key = ? OR id = ?", (key, char_id)).fetchone()
    if clash:
        raise ConflictError(f"a character named {clash['name']!r} already exists (names must differ in more than case or look-alike letters)")
    conn.execute(
        """INSERT INTO characters (id, name, name_key, folder, prompt, negative_prompt, notes, created, updated,
               age, gender, ethnicity, prompt_name, features, source_json, bones_json, bump_json)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            char_id, fields["name"], key, folder, fields.get("prompt", ""), fields.get("negative_prompt", ""),
            fields.get("notes", ""), created, updated, fields.get("age"), fields.get("gender", ""),
            fields.get("ethnicity", ""), fields.get("prompt_name", ""), fields.get("features", ""),
            json.dumps(fields.get("source") or {"kind": "external"}), json.dumps(fields.get("bones") or {}),
            json.dumps(fields.get("bump") or {}),
        ),
    )
    conn.executemany("INSERT INTO tags (character_id, tag) VALUES (?, ?)", [(char_id, t) for t in fields.get("tags", ())])


def character_document(conn: sqlite3.Connection, char_id: str) -> dict[str, Any]:
    """What ``character.json`` holds: every field plus package provenance and the active version."""
    row = conn.execute(_SELECT + " WHERE c.id = ?", (char_id,)).fetchone()
    doc = {"format": CHARACTER_FORMAT, "version": CHARACTER_FORMAT_VERSION, **row_to_character(row).to_dict()}
    doc.pop("package_count")
    doc.pop("folder")
    doc["packages"] = {
        str(p["version"]): {"origin": p["origin"], "parent_version": p["parent_version"], "notes": p["notes"], "created": p["created"]}
        for p in conn.execute("SELECT * FROM packages WHERE character_id = ? ORDER BY version", (char_id,))
    }
    return doc


def parse_character_document(doc: Any, where: str) -> tuple[str, dict[str, Any], str, str, dict[str, Any], int | None]:
    """Validate a ``character.json`` read from disk or a zip: (id, fields, created, updated, packages, active)."""
    if not isinstance(doc, dict) or doc.get("format") != CHARACTER_FORMAT:
        raise LibraryError(f"{where}: not a character file (format {CHARACTER_FORMAT!r} expected)")
    if not isinstance(doc.get("version"), int) or doc["version"] > CHARACTER_FORMAT_VERSION:
        raise LibraryError(f"{where}: character file version {doc.get('version')!r} is newer than this program; update it")
    char_id = check_character_id(doc.get("id"))
    try:
        fields = validate_fields({k: doc.get(k) for k in EDITABLE if k in doc}, strict=False)
    except LibraryError as exc:
        raise ValidationError(f"{where}: {exc}") from None
    if "name" not in fields:
        raise ValidationError(f"{where}: the character has no name")
    created = doc.get("created") if isinstance(doc.get("created"), str) else now_iso()
    updated = doc.get("updated") if isinstance(doc.get("updated"), str) else created
    packages = doc.get("packages") or {}
    if not isinstance(packages, dict):
        raise ValidationError(f"{where}: 'packages' must be a mapping of version to provenance")
    active = doc.get("active_version")
    if active is not None and (isinstance(active, bool) or not isinstance(active, int)):
        active = None
    return char_id, fields, created, updated, packages, active


@dataclass(frozen=True)
class CharacterSummary:
    """What a long list shows: cheap enough to build for every character of a big library."""

    id: str
    name: str
    folder: str
    active_version: int | None
    updated: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class CharactersMixin:
    """Create, read, list, search, edit and delete characters."""

    def sync_character_file(self, conn: sqlite3.Connection, char_id: str) -> None:
        """Rewrite ``character.json`` from the rows; called inside the write transaction."""
        folder = conn.execute("SELECT folder FROM characters WHERE id = ?", (char_id,)).fetchone()["folder"]
        write_json_atomic(self.characters_dir / folder / CHARACTER_FILE, character_document(conn, char_id))

    def _row(self, conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
        if not isinstance(ref, str) or not ref.strip():
            raise NotFoundError("give a character name or id")
        row = conn.execute(_SELECT + " WHERE c.id = ?", (ref,)).fetchone()
        if row is None:
            try:
                key = name_key(ref)
            except LibraryError:
                key = None
            row = conn.execute(_SELECT + " WHERE c.name_key = ?", (key,)).fetchone() if key else None
        if row is None:
            raise NotFoundError(f"no character named {ref!r} in the library; 'library list' shows the names")
        return row

    def character_id(self, conn: sqlite3.Connection, ref: str) -> str:
        return self._row(conn, ref)["id"]

    def create_character(self, name: str, **fields: Any) -> Character:
        """Create a character and its folder; the name must be new (ignoring case and look-alikes)."""
        values = validate_fields({"name": name, **fields})
        char_id = character_id_from_name(values["name"])
        check_character_id(char_id)
        now = now_iso()
        with self.write() as conn:
            # Folder names are lowercase by construction, so an exact lookup is a case-blind one.
            def taken(candidate: str) -> bool:
                row = conn.execute("SELECT 1 FROM characters WHERE folder = ?", (candidate,)).fetchone()
                return row is not None or (self.characters_dir / candidate).exists()

            folder = safe_folder_name(values["name"], taken)
            insert_character(conn, char_id, folder, values, now, now)
            path = self.characters_dir / folder
            path.mkdir()
            try:
                (path / "packages").mkdir()
                self.sync_character_file(conn, char_id)
                fsync_dir(self.characters_dir)
            except BaseException:
                shutil.rmtree(path, ignore_errors=True)
                raise
        return self.get_character(char_id)

    def get_character(self, ref: str) -> Character:
        """By id, or by display name (case and look-alike letters do not matter)."""
        with self.read() as conn:
            return row_to_character(self._row(conn, ref))

    def character_path(self, ref: str) -> Path:
        return self.characters_dir / self.get_character(ref).folder

    def _where(self, query: str | None, tag: str | None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if query:
            like = f"%{_escape_like(query.strip())}%"
            try:
                key_like = f"%{_escape_like(name_key(query))}%"
            except LibraryError:
                key_like = like
            clauses.append(
                "(c.name_key LIKE ? ESCAPE '\\' OR c.prompt_name LIKE ? ESCAPE '\\' OR c.prompt LIKE ? ESCAPE '\\'"
                " OR c.features LIKE ? ESCAPE '\\' OR c.notes LIKE ? ESCAPE '\\'"
                " OR c.id IN (SELECT character_id FROM tags WHERE tag LIKE ? ESCAPE '\\'))"
            )
            params += [key_like, like, like, like, like, key_like]
        if tag:
            clauses.append("c.id IN (SELECT character_id FROM tags WHERE tag = ?)")
            params.append(clean_tag(tag))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_characters(
        self, query: str | None = None, *, tag: str | None = None, limit: int | None = None, offset: int = 0, order: str = "name"
    ) -> list[Character]:
        """Characters matching a text query (name, prompt, features, notes, tags) and/or a tag."""
        orders = {"name": "c.name_key", "updated": "c.updated DESC", "created": "c.created DESC"}
        if order not in orders:
            raise ValidationError(f"order: expected one of {', '.join(orders)}")
        where, params = self._where(query, tag)
        # Whole-table aggregates pay off only for long unfiltered lists; pages and filters stay per-row.
        base = _SELECT_MANY if (limit is None or limit > 200) and not query and not tag else _SELECT
        sql = base + where + f" ORDER BY {orders[order]} LIMIT ? OFFSET ?"
        with self.read() as conn:
            rows = conn.execute(sql, [*params, -1 if limit is None else int(limit), int(offset)]).fetchall()
        return [row_to_character(r) for r in rows]

    def list_summaries(self, query: str | None = None, *, tag: str | None = None) -> list[CharacterSummary]:
        """Id, name, folder, active version of every matching character, sorted by name (for long lists)."""
        where, params = self._where(query, tag)
        sql = (
            "SELECT c.id, c.name, c.folder, c.updated, p.version FROM characters c"
            " LEFT JOIN packages p ON p.character_id = c.id AND p.active = 1" + where + " ORDER BY c.name_key"
        )
        with self.read() as conn:
            return [CharacterSummary(r[0], r[1], r[2], r[4], r[3]) for r in conn.execute(sql, params)]

    def count_characters(self, query: str | None = None, *, tag: str | None = None) -> int:
        where, params = self._where(query, tag)
        with self.read() as conn:
            return conn.execute("SELECT count(*) FROM characters c" + where, params).fetchone()[0]

    def update_character(self, ref: str, **fields: Any) -> Character:
        """Change fields; renaming keeps the folder (paths recorded in history stay valid)."""
        values = validate_fields(fields)
        with self.write() as conn:
            char_id = self.character_id(conn, ref)
            if "name" in values:
                key = name_key(values["name"])
                clash = conn.execute("SELECT name FROM characters WHERE name_key = ? AND id != ?", (key, char_id)).fetchone()
                if clash:
                    raise ConflictError(f"another character is already named {clash['name']!r}")
                conn.execute("UPDATE characters SET name = ?, name_key = ? WHERE id = ?", (values["name"], key, char_id))
            simple = {k: v for k, v in values.items() if k in _LINE_LIMITS or k in _TEXT_LIMITS or k == "age"}
            for key, value in simple.items():
                conn.execute(f"UPDATE characters SET {key} = ? WHERE id = ?", (value, char_id))
            for key in ("source", "bones", "bump"):
                if key in values:
                    conn.execute(f"UPDATE characters SET {key}_json = ? WHERE id = ?", (json.dumps(values[key]), char_id))
            if "tags" in values:
                conn.execute("DELETE FROM tags WHERE character_id = ?", (char_id,))
                conn.executemany("INSERT INTO tags (character_id, tag) VALUES (?, ?)", [(char_id, t) for t in values["tags"]])
            conn.execute("UPDATE characters SET updated = ? WHERE id = ?", (now_iso(), char_id))
            self.sync_character_file(conn, char_id)
        return self.get_character(char_id)

    def delete_character(self, ref: str) -> Path:
        """Move the character's folder to ``trash/`` and drop its rows; returns the trash path."""
        with self.write() as conn:
            row = self._row(conn, ref)
            source = self.characters_dir / check_folder_name(row["folder"])
            target = self.trash_dir / f"{row['folder']}-{stamp()}"
            conn.execute("DELETE FROM characters WHERE id = ?", (row["id"],))
            if source.exists():
                os.replace(source, target)
                fsync_dir(self.trash_dir)
            else:
                target.mkdir()
            return target

    def list_trash(self) -> list[Path]:
        return sorted(p for p in self.trash_dir.iterdir() if p.is_dir())

    def empty_trash(self) -> int:
        """Delete everything in the trash for good; returns how many entries went."""
        entries = self.list_trash()
        for entry in entries:
            shutil.rmtree(entry)
        return len(entries)
