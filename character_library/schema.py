"""The index database layout and its migrations.

The schema version lives in ``PRAGMA user_version``. A new database is built by running every
migration from 0, so the upgrade path from old libraries is the same code that every test and
every fresh library exercises. Each migration runs inside the caller's write transaction: a
failure leaves the database at its previous version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from character_library.errors import SchemaError

APPLICATION_ID = 0x42534C42  # "BSLB": marks the file as a bump-studio library index

# Version 1: the first layout (characters with prompts, package versions, an active flag).
_V1 = """
CREATE TABLE characters (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL UNIQUE,
    prompt TEXT NOT NULL DEFAULT '',
    negative_prompt TEXT NOT NULL DEFAULT '',
    notes TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE packages (
    character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    version INTEGER NOT NULL CHECK (version > 0),
    folder TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('rendered', 'imported', 'bumped')),
    created TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    PRIMARY KEY (character_id, version)
);
CREATE UNIQUE INDEX packages_one_active ON packages(character_id) WHERE active = 1;
"""

# Version 2: phenotype/prompt fields, tags, source, bone mapping, default bump settings,
# provenance of bumped packages and the per-view image hashes the backend's cache keys on.
_V2 = """
ALTER TABLE characters ADD COLUMN age INTEGER;
ALTER TABLE characters ADD COLUMN gender TEXT NOT NULL DEFAULT '';
ALTER TABLE characters ADD COLUMN ethnicity TEXT NOT NULL DEFAULT '';
ALTER TABLE characters ADD COLUMN prompt_name TEXT NOT NULL DEFAULT '';
ALTER TABLE characters ADD COLUMN features TEXT NOT NULL DEFAULT '';
ALTER TABLE characters ADD COLUMN source_json TEXT NOT NULL DEFAULT '{"kind": "external"}';
ALTER TABLE characters ADD COLUMN bones_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE characters ADD COLUMN bump_json TEXT NOT NULL DEFAULT '{}';
CREATE INDEX characters_updated ON characters(updated);
CREATE TABLE tags (
    character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (character_id, tag)
) WITHOUT ROWID;
CREATE INDEX tags_tag ON tags(tag);
ALTER TABLE packages ADD COLUMN parent_version INTEGER;
ALTER TABLE packages ADD COLUMN notes TEXT NOT NULL DEFAULT '';
CREATE TABLE package_views (
    character_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    file TEXT NOT NULL,
    yaw REAL NOT NULL,
    pitch REAL NOT NULL,
    roll REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    estimated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (character_id, version, name),
    FOREIGN KEY (character_id, version) REFERENCES packages(character_id, version) ON DELETE CASCADE
);
CREATE INDEX package_views_sha ON package_views(sha256);
"""

# Version 3: the bump history, so good seeds and settings can be found and reused.
_V3 = """
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    character_id TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    package_version INTEGER,
    created TEXT NOT NULL,
    seed INTEGER,
    steps INTEGER,
    cfg REAL,
    denoise REAL,
    sampler TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    prompt TEXT NOT NULL DEFAULT '',
    negative_prompt TEXT NOT NULL DEFAULT '',
    settings_json TEXT NOT NULL DEFAULT '{}',
    identity_score REAL,
    outputs_json TEXT NOT NULL DEFAULT '[]',
    rating INTEGER CHECK (rating IS NULL OR rating BETWEEN 0 AND 5),
    notes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX history_character_score ON history(character_id, identity_score DESC);
CREATE INDEX history_character_created ON history(character_id, created DESC);
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(statement)

    return run


# MIGRATIONS[n] upgrades a database at version n to version n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_script(_V1), _script(_V2), _script(_V3)]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> tuple[int, int]:
    """Bring the schema to :data:`SCHEMA_VERSION` inside the open transaction; return (from, to)."""
    version = current_version(conn)
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the library index is schema version {version}, newer than this program understands "
            f"({SCHEMA_VERSION}); update bump-studio before using this library"
        )
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables:
            raise SchemaError("the index file holds tables but no library schema version; it is not a library index")
    elif app_id not in (0, APPLICATION_ID):
        raise SchemaError(f"the index file belongs to another application (application_id {app_id:#x})")
    start = version
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute(f"PRAGMA user_version = {version}")
    if app_id != APPLICATION_ID:
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return start, version
