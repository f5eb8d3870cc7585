"""Bump-run history: every run's settings, seed, identity score and outputs, per character.

On disk each character keeps ``history.jsonl``: one JSON object per line, appended while the write
lock is held. A run is ``{"op": "run", ...}``; later edits (rating, notes) are
``{"op": "update", "run_id": ...}`` lines, so the file is never rewritten and a crash can only
tear the last line, which ``repair`` skips and reports.
"""

from __future__ import annotations

import json
import math
import sqlite3
import uuid
from dataclasses import dataclass, field
from typing import Any

from bump_contracts.bump_job import MAX_TEXT
from bump_contracts.bump_record import BumpRecord
from bump_contracts.errors import ContractError
from bump_contracts.sequence_job import sequence_history_fields
from character_library.errors import NotFoundError, ValidationError
from character_library.fsutil import append_line, now_iso

HISTORY_FILE = "history.jsonl"
RUN_FIELDS = (
    "run_id", "package_version", "created", "seed", "steps", "cfg", "denoise", "sampler", "model", "prompt",
    "negative_prompt", "settings", "identity_score", "outputs", "rating", "notes",
)


@dataclass(frozen=True)
class HistoryRun:
    run_id: str
    character_id: str
    created: str
    package_version: int | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    denoise: float | None = None
    sampler: str = ""
    model: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    identity_score: float | None = None
    outputs: tuple[str, ...] = ()
    rating: int | None = None
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["outputs"] = list(self.outputs)
        return out


def _opt_int(value: Any, key: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValidationError(f"{key}: expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValidationError(f"{key}: {value} is outside {low}..{high}")
    return int(value)


def _opt_float(value: Any, key: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{key}: expected a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValidationError(f"{key}: {value} is outside {low}..{high}")
    return float(value)


def _text(value: Any, key: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(f"{key}: expected text up to {limit} characters")
    return value


def validate_run(data: dict[str, Any]) -> dict[str, Any]:
    """Normalise a run record; unknown keys are refused so typos do not vanish silently."""
    unknown = sorted(set(data) - set(RUN_FIELDS))
    if unknown:
        raise ValidationError(f"history run: unknown field(s) {', '.join(unknown)}; known: {', '.join(RUN_FIELDS)}")
    settings = data.get("settings") or {}
    try:
        json.dumps(settings, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationError("settings: must be plain JSON data (numbers, text, lists, mappings)") from None
    if not isinstance(settings, dict):
        raise ValidationError("settings: expected a mapping")
    outputs = data.get("outputs") or ()
    if isinstance(outputs, str) or not all(isinstance(o, str) and len(o) < 4096 for o in outputs):
        raise ValidationError("outputs: expected a list of file paths")
    run_id = data.get("run_id") or uuid.uuid4().hex
    if not isinstance(run_id, str) or not 8 <= len(run_id) <= 64 or not all(c.isalnum() or c in "-_" for c in run_id):
        raise ValidationError(f"run_id: {run_id!r} must be 8-64 letters, digits, - or _")
    created = data.get("created") or now_iso()
    return {
        "run_id": run_id,
        "package_version": _opt_int(data.get("package_version"), "package_version", 1, 10**6),
        "created": _text(created, "created", 64),
        "seed": _opt_int(data.get("seed"), "seed", -1, 2**63 - 1),
        "steps": _opt_int(data.get("steps"), "steps", 1, 10000),
        "cfg": _opt_float(data.get("cfg"), "cfg", 0.0, 100.0),
        "denoise": _opt_float(data.get("denoise"), "denoise", 0.0, 1.0),
        "sampler": _text(data.get("sampler"), "sampler", 200),
        "model": _text(data.get("model"), "model", 1000),
        "prompt": _text(data.get("prompt"), "prompt", MAX_TEXT),
        "negative_prompt": _text(data.get("negative_prompt"), "negative_prompt", MAX_TEXT),
        "settings": settings,
        "identity_score": _opt_float(data.get("identity_score"), "identity_score", -1e6, 1e6),
        "outputs": tuple(outputs),
        "rating": _opt_int(data.get("rating"), "rating", 0, 5),
        "notes": _text(data.get("notes"), "notes", 20000),
    }


def insert_run(conn: sqlite3.Connection, char_id: str, run: dict[str, Any]) -> None:
    conn.execute(
        """INSERT INTO history (run_id, character_id, package_version, created, seed, steps, cfg, denoise, sampler,
               model, prompt, negative_prompt, settings_json, identity_score, outputs_json, rating, notes)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            run["run_id"], char_id, run["package_version"], run["created"], run["seed"], run["steps"], run["cfg"],
            run["denoise"], run["sampler"], run["model"], run["prompt"], run["negative_prompt"],
            json.dumps(run["settings"]), run["identity_score"], json.dumps(list(run["outputs"])), run["rating"], run["notes"],
        ),
    )


def apply_update(conn: sqlite3.Connection, run_id: str, changes: dict[str, Any]) -> bool:
    sets = {k: v for k, v in changes.items() if k in ("rating", "notes")}
    if not sets:
        return False
    cur = conn.execute(
        "UPDATE history SET " + ", ".join(f"{k} = ?" for k in sets) + " WHERE run_id = ?", [*sets.values(), run_id]
    )
    return cur.rowcount > 0


def row_to_run(row: sqlite3.Row) -> HistoryRun:
    return HistoryRun(
        run_id=row["run_id"], character_id=row["character_id"], created=row["created"],
        package_version=row["package_version"], seed=row["seed"], steps=row["steps"], cfg=row["cfg"],
        denoise=row["denoise"], sampler=row["sampler"], model=row["model"], prompt=row["prompt"],
        negative_prompt=row["negative_prompt"], settings=json.loads(row["settings_json"]),
        identity_score=row["identity_score"], outputs=tuple(json.loads(row["outputs_json"])), rating=row["rating"],
        notes=row["notes"],
    )


def replay_lines(lines: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Runs (with updates applied) from ``history.jsonl`` lines, and the problems met on the way."""
    runs: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            op = record.pop("op")
            if op == "run":
                run = validate_run(record)
                runs[run["run_id"]] = run
            elif op == "update":
                target = runs.get(record.get("run_id"))
                if target is None:
                    raise ValidationError(f"update of unknown run {record.get('run_id')!r}")
                checked = validate_run({"run_id": target["run_id"], **{k: record[k] for k in ("rating", "notes") if k in record}})
                target.update({k: checked[k] for k in ("rating", "notes") if k in record})
            else:
                raise ValidationError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"line {number}: skipped ({exc})")
    return list(runs.values()), problems


class HistoryMixin:
    """Record bump runs and find the best seeds and settings again."""

    def _history_path(self, conn: sqlite3.Connection, char_id: str):
        folder = conn.execute("SELECT folder FROM characters WHERE id = ?", (char_id,)).fetchone()["folder"]
        return self.characters_dir / folder / HISTORY_FILE

    def add_run(self, ref: str, **fields: Any) -> HistoryRun:
        """Record one bump run (seed, steps, cfg, denoise, sampler, model, prompts, settings, score, outputs)."""
        run = validate_run(fields)
        with self.write() as conn:
            char_id = self.character_id(conn, ref)
            if run["package_version"] is not None and not conn.execute(
                "SELECT 1 FROM packages WHERE character_id = ? AND version = ?", (char_id, run["package_version"])
            ).fetchone():
                raise NotFoundError(f"the character has no package version {run['package_version']}")
            if conn.execute("SELECT 1 FROM history WHERE run_id = ?", (run["run_id"],)).fetchone():
                raise ValidationError(f"run {run['run_id']} is already recorded")
            insert_run(conn, char_id, run)
            record = {"op": "run", **run, "outputs": list(run["outputs"])}
            append_line(self._history_path(conn, char_id), json.dumps(record, ensure_ascii=False, allow_nan=False))
            row = conn.execute("SELECT * FROM history WHERE run_id = ?", (run["run_id"],)).fetchone()
        return row_to_run(row)

    def add_bump_run(self, ref: str, record: BumpRecord, *, run_id: str | None = None,
                     package_version: int | None = None, outputs: tuple[str, ...] | list[str] = (),
                     extra_settings: dict[str, Any] | None = None) -> HistoryRun:
        """Record a finished bump from its record, the one conversion every caller uses (the add-on,
        batch runs): seed, the resolved settings, model ``name [hash]`` and best identity score come
        from the record; ``extra_settings`` (a batch's unit, say) is kept beside its settings."""
        fields = record.history_fields()
        if extra_settings:
            fields["settings"] = {**fields["settings"], **extra_settings}
        return self.add_run(ref, run_id=run_id, package_version=package_version, outputs=list(outputs), **fields)

    def add_sequence_run(self, ref: str, record: dict[str, Any], *, run_id: str | None = None,
                         package_version: int | None = None, outputs: tuple[str, ...] | list[str] = (),
                         extra_settings: dict[str, Any] | None = None) -> HistoryRun:
        """Record a finished sequence (a bumped frame range) from its ``sequence.json`` record, through
        the contract's one conversion (``sequence_history_fields``: counts and sequence settings under
        ``settings["sequence"]``); ``extra_settings`` as for :meth:`add_bump_run`."""
        try:
            fields = sequence_history_fields(record)
        except ContractError as exc:
            raise ValidationError(f"sequence record: {exc}") from None
        if extra_settings:
            fields["settings"] = {**fields["settings"], **extra_settings}
        return self.add_run(ref, run_id=run_id, package_version=package_version, outputs=list(outputs), **fields)

    def update_run(self, run_id: str, *, rating: int | None = None, notes: str | None = None) -> HistoryRun:
        """Rate a run (0-5) or change its notes; everything else about a run is a fact and stays."""
        changes: dict[str, Any] = {}
        if rating is not None:
            changes["rating"] = rating
        if notes is not None:
            changes["notes"] = notes
        checked = validate_run({"run_id": run_id, **changes})
        changes = {k: checked[k] for k in changes}
        with self.write() as conn:
            row = conn.execute("SELECT character_id FROM history WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"no history run {run_id!r}")
            if changes:
                apply_update(conn, run_id, changes)
                line = json.dumps({"op": "update", "run_id": run_id, **changes}, ensure_ascii=False)
                append_line(self._history_path(conn, row["character_id"]), line)
            new = conn.execute("SELECT * FROM history WHERE run_id = ?", (run_id,)).fetchone()
        return row_to_run(new)

    def get_run(self, run_id: str) -> HistoryRun:
        with self.read() as conn:
            row = conn.execute("SELECT * FROM history WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no history run {run_id!r}")
        return row_to_run(row)

    def list_runs(self, ref: str, *, limit: int = 50, offset: int = 0) -> list[HistoryRun]:
        """Newest first."""
        with self.read() as conn:
            char_id = self.character_id(conn, ref)
            rows = conn.execute(
                "SELECT * FROM history WHERE character_id = ? ORDER BY created DESC, id DESC LIMIT ? OFFSET ?",
                (char_id, limit, offset),
            ).fetchall()
        return [row_to_run(r) for r in rows]

    def count_runs(self, ref: str | None = None) -> int:
        with self.read() as conn:
            if ref is None:
                return conn.execute("SELECT count(*) FROM history").fetchone()[0]
            return conn.execute("SELECT count(*) FROM history WHERE character_id = ?", (self.character_id(conn, ref),)).fetchone()[0]

    def best_runs(self, ref: str, *, limit: int = 5, min_score: float | None = None) -> list[HistoryRun]:
        """Highest identity score first (then rating, then newest); unscored runs come last."""
        sql = "SELECT * FROM history WHERE character_id = ?"
        with self.read() as conn:
            params: list[Any] = [self.character_id(conn, ref)]
            if min_score is not None:
                sql += " AND identity_score >= ?"
                params.append(float(min_score))
            sql += " ORDER BY identity_score IS NULL, identity_score DESC, rating IS NULL, rating DESC, created DESC LIMIT ?"
            rows = conn.execute(sql, [*params, int(limit)]).fetchall()
        return [row_to_run(r) for r in rows]

    def best_seeds(self, ref: str, *, limit: int = 5) -> list[dict[str, Any]]:
        """Seeds ranked by their best identity score, with how often each was used."""
        with self.read() as conn:
            rows = conn.execute(
                """SELECT seed, max(identity_score) AS best_score, count(*) AS runs, max(rating) AS best_rating
                   FROM history WHERE character_id = ? AND seed IS NOT NULL AND seed >= 0
                   GROUP BY seed ORDER BY best_score IS NULL, best_score DESC, runs DESC LIMIT ?""",
                (self.character_id(conn, ref), int(limit)),
            ).fetchall()
        return [dict(r) for r in rows]
