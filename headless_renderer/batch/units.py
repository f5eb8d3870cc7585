"""The plan: independent work units, each keyed by a hash of its inputs and settings.

A unit writes its outputs atomically, then a small done-record (``.batch/done/<unit>.json``)
holding that hash. Resuming skips a unit whose record matches its current hash and whose outputs
are still there; a changed setting changes the hash of the units it feeds (a unit's hash covers
its upstream units' hashes), so only those run again. Pure Python: planning needs no bpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_contracts.atomic_io import write_bytes_atomic
from bump_contracts.package_manifest import file_sha256, load_package
from headless_renderer.batch.jobfile import CharacterSpec, Job, ShotSpec

UNIT_VERSION = 1  # bump when a unit's outputs change meaning, so old done-records stop matching
STATE_DIR = ".batch"
RENDER, BUMP, LOCAL = "render", "bump", "local"
RESOURCE = {"package": RENDER, "shot": RENDER, "bump_view": BUMP, "bump_shot": BUMP, "bump_sequence": BUMP,
            "assemble": LOCAL}
_STALE = re.compile(r"^\..+\.(partial|old)-\d+-\d+$|^\..+\.(part|tmp)$")


@dataclass
class Unit:
    id: str  # "mateo/package", "mateo/bump/front", "mateo/shot/street/Cam/f0001", ...
    kind: str  # package | bump_view | assemble | shot | bump_shot | bump_sequence
    character: str
    hash: str
    spec: dict[str, Any]  # what work.run_unit needs (plain JSON data: pickles, crosses to Ray)
    outputs: tuple[str, ...]  # paths relative to the output folder
    needs: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        return RESOURCE[self.kind]

    @property
    def key(self) -> str:
        return unit_key(self.id)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "character": self.character, "hash": self.hash,
                "spec": self.spec, "outputs": list(self.outputs), "needs": list(self.needs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Unit:
        return cls(id=data["id"], kind=data["kind"], character=data["character"], hash=data["hash"],
                   spec=data["spec"], outputs=tuple(data["outputs"]), needs=tuple(data["needs"]))


@dataclass
class Plan:
    job: Job
    out: Path
    units: dict[str, Unit] = field(default_factory=dict)
    model: dict[str, Any] | None = None  # the backends' model identity, in the bump units' hashes

    def add(self, unit: Unit) -> Unit:
        existing = self.units.get(unit.id)
        if existing is not None and existing.hash != unit.hash:
            raise ValueError(f"unit {unit.id} planned twice with different settings")
        self.units.setdefault(unit.id, unit)
        return self.units[unit.id]

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {uid: [] for uid in self.units}
        for unit in self.units.values():
            for need in unit.needs:
                out[need].append(unit.id)
        return out


def unit_key(unit_id: str) -> str:
    """A file-name-safe, unique form of a unit id."""
    return unit_id.replace("/", "~")


def safe_name(text: str | None, default: str) -> str:
    """A folder/file name for a camera or object name; a hash suffix keeps sanitised names unique."""
    if text is None:
        return default
    clean = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or default
    if clean != text:
        clean = f"{clean}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"
    return clean


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (cached per size and mtime: a .blend is hashed once per run)."""
    stat = os.stat(path)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = file_sha256(path)
    return _FILE_HASHES[key]


def _unit(kind: str, uid: str, character: str, inputs: dict[str, Any], spec: dict[str, Any], outputs: list[str],
          needs: list[Unit]) -> Unit:
    h = digest({"kind": kind, "version": UNIT_VERSION, "inputs": inputs, "needs": sorted(u.hash for u in needs)})
    return Unit(uid, kind, character, h, spec, tuple(outputs), tuple(u.id for u in needs))


def _character_inputs(character: CharacterSpec) -> dict[str, Any]:
    source = character.source()
    if character.blend:
        source["blend_sha256"] = file_hash(character.blend)
    return source


def build_plan(job: Job, model: dict[str, Any] | None = None) -> Plan:
    """Every unit of the job, in an order where each unit comes after the units it needs.

    ``model``: the backends' model identity (``backend_model``), in every bump unit's hash, so a
    model change re-runs the bumps (and what is built from them) and no render.
    """
    plan = Plan(job, job.output, model=model)
    packages: dict[str, tuple[Unit | None, str]] = {}  # character -> (package unit, package folder)
    views: dict[str, list[str]] = {}
    for task in job.tasks:
        if task.kind == "package":
            c = job.characters[task.character]
            rel = f"{c.key}/package"
            spec = {"character": {**c.source(), "key": c.key}, "package": c.package.to_dict(), "out": rel}
            unit = plan.add(_unit("package", f"{c.key}/package", c.key,
                                  {"character": _character_inputs(c), "package": c.package.to_dict()}, spec, [rel], []))
            packages[c.key] = (unit, rel)
            views[c.key] = [v[0] for v in c.package.views]
    for key, c in job.characters.items():
        if key not in packages and c.library_package:
            packages[key] = (None, c.library_package)
            views[key] = _package_views(c.library_package)
    bumped: dict[str, Unit] = {}
    for task in job.tasks:
        if task.kind != "bump_package":
            continue
        c = job.characters[task.character]
        package_unit, package_path = packages[c.key]
        needs = [package_unit] if package_unit else []
        pkg_in = {"package_hash": _package_hash(package_path)} if package_unit is None else {}
        view_units = []
        for view in views[c.key]:
            out_png, out_json = f"{c.key}/bump/{view}.png", f"{c.key}/bump/{view}.json"
            spec = {"package": package_path, "view": view, "params": task.bump, "image": out_png, "record": out_json,
                    "mask": f"{c.key}/bump/{view}_mask.png"}
            view_units.append(plan.add(_unit("bump_view", f"{c.key}/bump/{view}", c.key,
                                             {**pkg_in, "view": view, "params": task.bump, "model": model}, spec,
                                             [out_png, out_json], needs)))
        rel = f"{c.key}/package_bumped"
        spec = {"package": package_path, "views": {view: f"{c.key}/bump/{view}.png" for view in views[c.key]},
                "out": rel}
        bumped[c.key] = plan.add(_unit("assemble", f"{c.key}/package_bumped", c.key, {**pkg_in}, spec, [rel],
                                       view_units))
    for task in job.tasks:
        if task.kind != "shots":
            continue
        c = job.characters[task.character]
        for shot in task.shots:
            _plan_shot(plan, c, shot, packages.get(c.key), bumped.get(c.key), model)
    return plan


def _plan_shot(plan: Plan, c: CharacterSpec, shot: ShotSpec, package: tuple[Unit | None, str] | None,
               bumped: Unit | None, model: dict[str, Any] | None) -> None:
    blend_hash = file_hash(shot.blend)
    for camera in shot.cameras:
        renders: list[Unit] = []
        for frame in shot.frames:
            tag = f"{safe_name(camera, 'scene_camera')}/{'current' if frame is None else f'f{frame:04d}'}"
            stem = tag.replace("/", "_")
            base = f"{c.key}/shots/{shot.name}/{stem}"
            character = {"key": c.key, "name": c.name, "object": shot.object or c.object, "head_bone": c.head_bone,
                         "eye_bones": list(c.eye_bones) if c.eye_bones else None}
            spec = {"blend": shot.blend, "camera": camera, "frame": frame, "render": shot.render,
                    "character": character, "image": f"{base}.png", "sidecar": f"{base}.sidecar.json"}
            inputs = {"blend_sha256": blend_hash, "camera": camera, "frame": frame, "render": shot.render,
                      "character": character}
            render = plan.add(_unit("shot", f"{c.key}/shot/{shot.name}/{tag}", c.key, inputs, spec,
                                    [spec["image"], spec["sidecar"]], []))
            renders.append(render)
            if shot.bump is None or package is None or shot.sequence is not None:
                continue
            package_path, ref_in, needs = _shot_reference(shot, package, bumped, [render])
            out = f"{c.key}/shots_bumped/{shot.name}/{stem}"
            spec = {"image_in": spec["image"], "sidecar": spec["sidecar"], "package": package_path,
                    "params": shot.bump, "image": f"{out}.png", "record": f"{out}.json", "mask": f"{out}_mask.png"}
            plan.add(_unit("bump_shot", f"{c.key}/bump_shot/{shot.name}/{tag}", c.key,
                           {**ref_in, "params": shot.bump, "model": model}, spec, [spec["image"], spec["record"]],
                           needs))
        if shot.sequence is not None and shot.bump is not None and package is not None:
            _plan_sequence(plan, c, shot, camera, renders, package, bumped, model)


def _plan_sequence(plan: Plan, c: CharacterSpec, shot: ShotSpec, camera: str | None, renders: list[Unit],
                   package: tuple[Unit | None, str], bumped: Unit | None, model: dict[str, Any] | None) -> None:
    """``sequence = true``: one unit bumps every rendered frame of one camera as a single sequence job."""
    package_path, ref_in, needs = _shot_reference(shot, package, bumped, renders)
    cam = safe_name(camera, "scene_camera")
    out = f"{c.key}/shots_bumped/{shot.name}/{cam}_sequence"
    frames = [{"frame": r.spec["frame"], "image": r.spec["image"], "sidecar": r.spec["sidecar"]} for r in renders]
    spec = {"frames": frames, "package": package_path, "params": shot.bump, "sequence": shot.sequence, "out": out}
    inputs = {**ref_in, "params": shot.bump, "sequence": shot.sequence, "model": model}  # + the renders' hashes
    plan.add(_unit("bump_sequence", f"{c.key}/bump_sequence/{shot.name}/{cam}", c.key, inputs, spec,
                   [f"{out}/sequence.json", f"{out}/frames"], needs))


def _shot_reference(shot: ShotSpec, package: tuple[Unit | None, str], bumped: Unit | None,
                    renders: list[Unit]) -> tuple[str, dict[str, Any], list[Unit]]:
    """The package a shot's bump (one frame or a sequence) takes its identity from, what of it goes into
    the unit's hash, and the units it waits for: the renders, the package's unit, the bumped package
    when ``reference = "bumped"`` (a package from outside the job is hashed by its manifest instead)."""
    package_unit, package_path = package
    needs = [*renders] + ([package_unit] if package_unit else [])
    ref_in: dict[str, Any] = {"reference": shot.reference}
    if shot.reference == "bumped" and bumped is not None:
        needs.append(bumped)
        package_path = bumped.spec["out"]
    elif package_unit is None:
        ref_in["package_hash"] = _package_hash(package_path)
    return package_path, ref_in, needs


def _package_views(folder: str) -> list[str]:
    return [v.name for v in load_package(folder, check_files=False).views]


def _package_hash(folder: str) -> str:
    return file_hash(Path(folder) / "package.json")


# -- done-records ----------------------------------------------------------------------------
def state_dir(out: Path) -> Path:
    return out / STATE_DIR


def lock_path(out: Path) -> Path:
    """The output folder's lock file: flock-held by the run that owns the folder, holding its pid."""
    return state_dir(out) / "lock"


def done_path(out: Path, unit: Unit) -> Path:
    return state_dir(out) / "done" / f"{unit.key}.json"


def log_path(out: Path, unit: Unit | str) -> Path:
    key = unit.key if isinstance(unit, Unit) else unit_key(unit)
    return state_dir(out) / "logs" / f"{key}.log"


def read_done(out: Path, unit: Unit) -> dict[str, Any] | None:
    try:
        return json.loads(done_path(out, unit).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_done(out: Path, unit: Unit) -> bool:
    record = read_done(out, unit)
    return (record is not None and record.get("hash") == unit.hash
            and all((out / rel).exists() for rel in unit.outputs))


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + fsync + rename: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


def write_done(out: Path, unit: Unit, seconds: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The done-record, written last: its presence with the unit's hash is what 'finished' means."""
    record = {"unit": unit.id, "kind": unit.kind, "hash": unit.hash, "seconds": round(seconds, 3),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "outputs": list(unit.outputs),
              "host": os.uname().nodename, "pid": os.getpid(), **(extra or {})}
    write_atomic(done_path(out, unit), (json.dumps(record, indent=1) + "\n").encode())
    return record


def clean_stale(out: Path) -> int:
    """Remove staging folders and temp files a killed run left (only names our writers use)."""
    removed = 0
    if not out.is_dir():
        return 0
    for root, dirs, files in os.walk(out):
        for name in list(dirs):
            if _STALE.match(name):
                shutil.rmtree(Path(root) / name, ignore_errors=True)
                dirs.remove(name)
                removed += 1
        for name in files:
            if _STALE.match(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed += 1
    return removed
