"""The end of a run: ``report.json`` (every unit, what failed and why), a contact sheet per character
(package views before/after the bump, shots before/after, identity scores), and the exit code.

numpy + the project's PNG writer only, so it also runs inside Blender (no Pillow there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bump_contracts.package_manifest import load_package
from headless_renderer.batch.units import Plan, Unit, log_path, read_done, write_atomic
from profile_rig.imaging.contact_sheet import make_contact_sheet
from profile_rig.imaging.png_io import read_png, write_png

TILE = 160
MAX_SHOTS_PER_ROW = 6
MAX_SHOTS = 60  # a sheet, not an archive: the first ones


def unit_status(plan: Plan, results: dict[str, dict[str, Any]], skipped: set[str]) -> dict[str, dict[str, Any]]:
    """Each unit's outcome: done (this run), skipped (done earlier), failed, blocked or not run."""
    out = {}
    for uid, unit in plan.units.items():
        result = results.get(uid)
        if uid in skipped:
            record = read_done(plan.out, unit) or {}
            entry = {"status": "skipped", "seconds": record.get("seconds"), "extra": _extra(record)}
        elif result is None:
            entry = {"status": "not run", "error": "the run stopped before this unit started"}
        else:
            entry = {k: v for k, v in result.items() if k in ("status", "seconds", "error", "extra")}
        entry.update({"kind": unit.kind, "character": unit.character, "outputs": list(unit.outputs),
                      "log": str(log_path(plan.out, unit)), "hash": unit.hash[:16]})
        out[uid] = entry
    return out


def _extra(record: dict[str, Any]) -> dict[str, Any]:
    skip = {"unit", "kind", "hash", "seconds", "finished", "outputs", "host", "pid"}
    return {k: v for k, v in record.items() if k not in skip}


def write_report(plan: Plan, results: dict[str, dict[str, Any]], skipped: set[str], run: dict[str, Any]) -> dict[str, Any]:
    units = unit_status(plan, results, skipped)
    counts: dict[str, int] = {}
    for entry in units.values():
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    failures = [{"unit": uid, "status": e["status"], "error": e.get("error"), "log": e["log"]}
                for uid, e in units.items() if e["status"] in ("failed", "blocked", "not run")]
    characters = {}
    for key in sorted({u.character for u in plan.units.values()}):
        characters[key] = _character_summary(plan, key, units)
    library_problems = (run.get("library") or {}).get("problems") or []
    report = {"schema": "batch-report", "schema_version": 1, "job": str(plan.job.path), "output": str(plan.out),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **run, "counts": counts,
              "ok": not failures and not library_problems, "failures": failures, "characters": characters,
              "units": units}
    write_atomic(plan.out / "report.json", (json.dumps(report, indent=1) + "\n").encode())
    return report


def _character_summary(plan: Plan, key: str, units: dict[str, dict[str, Any]]) -> dict[str, Any]:
    mine = [u for u in plan.units.values() if u.character == key]
    scores = {}
    for unit in mine:
        extra = units[unit.id].get("extra") or {}
        if unit.kind in ("bump_view", "bump_shot") and extra.get("identity_scores") is not None:
            scores[unit.id] = extra["identity_scores"]
    sheet = None
    try:
        sheet = contact_sheet(plan, key, mine, units)
    except Exception as exc:  # a sheet is a convenience: never fail the report over it
        sheet = f"not written: {type(exc).__name__}: {exc}"
    return {"name": plan.job.characters[key].name if key in plan.job.characters else key,
            "package": _first(mine, "package") or plan.job.characters[key].library_package,
            "package_bumped": _first(mine, "assemble"), "identity_scores": scores, "contact_sheet": sheet,
            "units": {s: sum(1 for u in mine if units[u.id]["status"] == s) for s in
                      sorted({units[u.id]["status"] for u in mine})}}


def _first(units: list[Unit], kind: str) -> str | None:
    for unit in units:
        if unit.kind == kind:
            return unit.outputs[0]
    return None


def _load(path: Path) -> np.ndarray | None:
    try:
        image = read_png(path)
    except (OSError, ValueError):
        return None
    if image.dtype != np.uint8:
        image = (image.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _square(image: np.ndarray | None) -> np.ndarray:
    """Letterbox to a square tile (shots are rarely square); a grey tile for a missing image."""
    if image is None:
        return np.full((TILE, TILE, 3), 200, np.uint8)
    h, w = image.shape[:2]
    side = max(h, w)
    canvas = np.full((side, side, 3), 235, np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    canvas[y:y + h, x:x + w] = image
    return canvas


def _score_label(name: str, extra: dict[str, Any] | None) -> str:
    scores = (extra or {}).get("identity_scores") or []
    return f"{name} id {max(scores):.2f}" if scores else name


def contact_sheet(plan: Plan, key: str, units: list[Unit], status: dict[str, dict[str, Any]]) -> str | None:
    """Rows: package views, the same views bumped, shots, the same shots bumped."""

    out = plan.out
    rows: list[list[tuple[np.ndarray | None, str]]] = []
    by_kind: dict[str, list[Unit]] = {}
    for unit in units:
        by_kind.setdefault(unit.kind, []).append(unit)
    bumps = {u.spec["view"]: u for u in by_kind.get("bump_view", [])}
    package = next(iter(by_kind.get("package", [])), None)
    package_dir = out / package.outputs[0] if package else (
        Path(plan.job.characters[key].library_package) if plan.job.characters[key].library_package else None)
    if package_dir is not None and (package_dir / "package.json").is_file():
        manifest = load_package(package_dir, check_files=False)
        rows.append([(_load(package_dir / v.file), v.name) for v in manifest.views])
        if bumps:
            rows.append([(_load(out / bumps[v.name].outputs[0]) if v.name in bumps else None,
                          _score_label(f"bumped {v.name}", status.get(bumps[v.name].id, {}).get("extra"))
                          if v.name in bumps else "") for v in manifest.views])
    shots = by_kind.get("shot", [])[:MAX_SHOTS]
    shot_bumps = {u.needs[0]: u for u in by_kind.get("bump_shot", [])}
    width = max([len(r) for r in rows] + [MAX_SHOTS_PER_ROW])
    for start in range(0, len(shots), width):  # shots in rows of `width`, each row over its bumped row
        chunk = shots[start:start + width]
        rows.append([(_load(out / s.outputs[0]), s.id.split("/", 2)[2]) for s in chunk])
        if shot_bumps:
            rows.append([(_load(out / shot_bumps[s.id].outputs[0]), _score_label(
                "bumped", status.get(shot_bumps[s.id].id, {}).get("extra"))) if s.id in shot_bumps else (None, "")
                for s in chunk])
    rows = [row for row in rows if any(image is not None for image, _ in row)]
    if not rows:
        return None
    columns = max(len(row) for row in rows)
    images, labels = [], []
    for row in rows:
        padded = row + [(None, "")] * (columns - len(row))
        for image, label in padded:
            images.append(_square(image) if image is not None or label else np.full((TILE, TILE, 3), 235, np.uint8))
            labels.append(label)
    sheet = make_contact_sheet(images, labels, tile=TILE, title=plan.job.characters[key].name, columns=columns)
    path = out / key / "contact_sheet.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, sheet)
    return str(path.relative_to(out))


def print_summary(report: dict[str, Any], stream) -> None:
    counts = report["counts"]
    parts = [f"{n} {s}" for s, n in sorted(counts.items())]
    print(f"[batch] {sum(counts.values())} units: {', '.join(parts)} in {report.get('seconds', 0):.1f} s; "
          f"report: {Path(report['output']) / 'report.json'}", file=stream)
    for failure in report["failures"]:
        print(f"[batch] {failure['status'].upper()} {failure['unit']}: {failure['error']} (log: {failure['log']})",
              file=stream)
    library = report.get("library")
    if library:
        added = library.get("packages_added") or []
        print(f"[batch] library {library['library']}: {len(added)} package version(s) and "
              f"{library.get('runs_added', 0)} bump run(s) recorded, {library.get('packages_known', 0)} and "
              f"{library.get('runs_known', 0)} already there", file=stream)
        for problem in library.get("problems") or []:
            print(f"[batch] LIBRARY {problem}", file=stream)
