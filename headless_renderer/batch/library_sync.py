"""Batch runs keep the character library up to date.

When the job names a library (``defaults.library``) and ``defaults.update_library`` is not false,
the end of every run (an interrupted one too) records what is finished:

* a rendered package (``C/package``) -> a new package version of the character, origin
  ``rendered``, made active (it is the character's newest look);
* a bumped package (``C/package_bumped``) -> a new version, origin ``bumped``, whose
  ``parent_version`` is the version it was bumped from (the rendered one above, or the library
  package the job used); not made active, so the next run bumps the same package again;
* every bump (``C/bump/VIEW``, ``C/bump_shot/...``) -> a row of the character's history: seed,
  steps, CFG, denoise, sampler, model, prompts, the full settings of the backend's record, the
  identity score (the best face's), the output paths, and the package version it used.

Characters that come from the library record into themselves; demo and ``.blend`` characters
record into the library character of their name, created on the first run that records something
(the job-file check refuses a name the library holds for another source).

Idempotent: a package version carries ``[batch-key K]`` in its notes, K a digest of the unit's
hash and the package's view hashes; a history row's id is a digest of the unit's hash and the
backend job that made it. A resumed run (or a second one) finds them and adds nothing; only new
work adds rows. It walks every finished unit, skipped ones included, so a run that could not reach
the library (or an older job without one) is caught up by the next.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bump_contracts.bump_record import BumpRecord
from bump_contracts.package_manifest import load_package
from character_library import Library, LibraryError, NotFoundError
from headless_renderer.batch.jobfile import CharacterSpec
from headless_renderer.batch.units import Plan, Unit, digest, is_done, read_done

KEY_RE = re.compile(r"\[batch-key ([0-9a-f]{32})\]")
ORDER = {"package": 0, "assemble": 1, "bump_view": 2, "bump_shot": 3, "bump_sequence": 4}


def sync_library(plan: Plan) -> dict[str, Any] | None:
    """Record the plan's finished units in the job's library; a summary for the report (None: no library)."""
    job = plan.job
    if not job.library or not job.update_library:
        return None
    summary: dict[str, Any] = {"library": job.library, "packages_added": [], "packages_known": 0, "runs_added": 0,
                               "runs_known": 0, "problems": []}
    try:
        library = Library.open(job.library, create=False)
    except LibraryError as exc:
        summary["problems"].append(str(exc))
        return summary
    with library:
        for key, spec in job.characters.items():
            units = sorted((u for u in plan.units.values() if u.character == key and u.kind in ORDER
                            and is_done(plan.out, u)), key=lambda u: ORDER[u.kind])
            if not units:
                continue
            try:
                _sync_character(library, plan, spec, units, summary)
            except (LibraryError, OSError, ValueError, KeyError) as exc:
                summary["problems"].append(f"{key}: {type(exc).__name__}: {exc}")
    return summary


def _sync_character(library: Any, plan: Plan, spec: CharacterSpec, units: list[Unit], summary: dict) -> None:
    character = _character(library, plan, spec)
    known = {key: p.version for p in library.list_packages(character.id) for key in KEY_RE.findall(p.notes or "")}
    versions: dict[str, int] = {}  # a package folder as the units name it -> its library version
    if spec.library_package and spec.library_version is not None:
        versions[spec.library_package] = spec.library_version
    for unit in units:
        if unit.kind == "package":
            versions[unit.outputs[0]] = _package(library, plan, character, unit, "rendered", None, known, summary)
        elif unit.kind == "assemble":
            parent = versions.get(unit.spec["package"])
            if parent is None:
                summary["problems"].append(f"{unit.id}: the package it was bumped from is not in the library")
                continue
            versions[unit.outputs[0]] = _package(library, plan, character, unit, "bumped", parent, known, summary)
        else:
            _run(library, plan, character, unit, versions.get(unit.spec["package"]), summary)


def _character(library: Any, plan: Plan, spec: CharacterSpec) -> Any:
    try:
        return library.get_character(spec.library_name)
    except NotFoundError:
        pass
    if spec.kind == "library":  # it was there when the job was checked
        raise NotFoundError(f"library character {spec.library_name!r} is gone")
    source: dict[str, Any] = {"kind": "demo"} if spec.kind == "demo" else {"kind": "blend", "blend": spec.blend}
    if spec.kind == "blend" and spec.object:
        source["object"] = spec.object
    bones = {"head": spec.head_bone} if spec.head_bone else {}
    if spec.eye_bones:
        bones.update(eye_left=spec.eye_bones[0], eye_right=spec.eye_bones[1])
    fields: dict[str, Any] = {"source": source, "bones": bones, "notes": f"created by the batch job {plan.job.path}"}
    for name in ("prompt", "negative_prompt"):
        text = spec.bump.get(name)
        if isinstance(text, str) and text:  # the job contract already holds it to MAX_TEXT, as the library does
            fields[name] = text
    return library.create_character(spec.name, **fields)


def _package(library: Any, plan: Plan, character: Any, unit: Unit, origin: str, parent: int | None,
             known: dict[str, int], summary: dict) -> int:
    folder = plan.out / unit.outputs[0]
    manifest = load_package(folder, check_files=False)
    key = digest({"unit": unit.hash, "views": [[v.name, v.sha256] for v in manifest.views]})[:32]
    if key in known:
        summary["packages_known"] += 1
        return known[key]
    notes = f"{origin} by the batch job {plan.job.path}, unit {unit.id} [batch-key {key}]"
    info = library.add_package(character.id, folder, origin=origin, parent_version=parent, notes=notes,
                               activate_it=origin == "rendered")
    known[key] = info.version
    summary["packages_added"].append({"character": character.name, "version": info.version, "origin": origin,
                                      "parent_version": parent, "unit": unit.id})
    return info.version


def _run(library: Any, plan: Plan, character: Any, unit: Unit, package_version: int | None, summary: dict) -> None:
    done = read_done(plan.out, unit) or {}
    run_id = "batch-" + digest({"unit": unit.hash, "job": done.get("job_id")})[:40]
    try:
        library.get_run(run_id)
        summary["runs_known"] += 1
        return
    except NotFoundError:
        pass
    spec = unit.spec
    batch = {"job": str(plan.job.path), "unit": unit.id, "unit_hash": unit.hash, "job_id": done.get("job_id"),
             "backend": done.get("backend"), "params": spec["params"]}
    if unit.kind == "bump_sequence":  # one run for the whole sequence, from its sequence.json
        folder = plan.out / spec["out"]
        record = json.loads((folder / "sequence.json").read_text(encoding="utf-8"))
        outputs = [str(p) for p in (folder / "sequence.mp4", folder / "frames", folder / "sequence.json")
                   if p.exists()]
        library.add_sequence_run(character.id, record, run_id=run_id, package_version=package_version,
                                 outputs=outputs, extra_settings={"batch": batch})
    else:
        record = BumpRecord.loads((plan.out / spec["record"]).read_text(encoding="utf-8"), spec["record"])
        outputs = [str(plan.out / spec[k]) for k in ("image", "record", "mask") if (plan.out / spec[k]).exists()]
        library.add_bump_run(character.id, record, run_id=run_id, package_version=package_version,
                             outputs=outputs, extra_settings={"batch": batch})
    summary["runs_added"] += 1
