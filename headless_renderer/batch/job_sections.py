"""The checks of each job-file section (defaults, package, bump, characters, entries, shots).

Each function reads one section, reports every problem to the :class:`Checker` with its path,
and returns the typed value (or None when the section is unusable).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from bump_contracts import package_params
from bump_contracts.bump_job import PARAM_FIELDS, ContractError, validate_params
from bump_contracts.pose import Pose, PoseError
from bump_contracts.sequence_job import SequenceParams
from bump_contracts.views import ViewError, resolve_views
from character_library import Library, LibraryError
from headless_renderer.batch.job_checker import Checker, join_path, kind_of
from headless_renderer.batch.job_model import (
    CHARACTER_KEYS,
    DEFAULT_KEYS,
    ENTRY_KEYS,
    NAME_RE,
    PACKAGE_KEYS,
    REFERENCES,
    SHOT_KEYS,
    SHOT_RENDER_KEYS,
    TASKS,
    TOP_KEYS,
    CharacterSpec,
    Job,
    PackageSettings,
    ShotSpec,
    Task,
    merge_bump,
    parse_frames,
)
from profile_rig.core.phenotype import PRESETS as PHENOTYPE_PRESETS
from profile_rig.core.phenotype import Phenotype, PhenotypeError, parse_ethnicity, parse_gender
from profile_rig.core.render_presets import PRESETS
from profile_rig.core.rig_data import DEFAULT_RIG, RIGS
from profile_rig.core.studio_hdri import STUDIOS


def build_job(data: dict[str, Any], path: Path, check: Checker) -> Job | None:
    root = path.parent
    check.known(data, TOP_KEYS, "")
    version = data.get("version", 1)
    if version != 1:
        check.add("version", f"this program reads job files of version 1, got {version!r}")
    defaults = check.table(data.get("defaults"), "defaults")
    check.known(defaults, DEFAULT_KEYS, "defaults")
    output = check.string(defaults, "output", "defaults") or "batch_out"
    backends = _backends(defaults.get("backends"), check)
    token_env = check.string(defaults, "token_env", "defaults")
    upload = defaults.get("upload_package", False)
    if not isinstance(upload, bool):
        check.add("defaults.upload_package", "expected true or false")
        upload = False
    timeout = check.number(defaults, "timeout", "defaults", 1, 7 * 24 * 3600) or 3600.0
    reference = _reference(defaults, "defaults", check) or "rendered"
    library_path = check.string(defaults, "library", "defaults")
    library = _open_library(library_path, root, check) if library_path else None
    update_library = defaults.get("update_library", True)
    if not isinstance(update_library, bool):
        check.add("defaults.update_library", "expected true or false")
        update_library = True

    base_package = check.table(defaults.get("package"), "defaults.package")
    defaults_ok = _package([(base_package, "defaults.package")], root, check) is not None
    base_bump = _bump(defaults.get("bump"), "defaults.bump", check)
    base_shots = check.table(defaults.get("shots"), "defaults.shots")
    check.known(base_shots, SHOT_RENDER_KEYS, "defaults.shots")

    characters: dict[str, CharacterSpec] = {}
    table = check.table(data.get("characters"), "characters")
    if not table:
        check.add("characters", "no characters: add at least one [characters.NAME] table")
    for key, value in table.items():
        spec = _character(key, value, root, base_package if defaults_ok else {}, base_bump, library, check)
        if spec is not None:
            characters[key] = spec

    tasks: list[Task] = []
    entries = data.get("entries")
    if entries is None:
        check.add("entries", "no entries: add at least one [[entries]] with characters and tasks")
        entries = []
    elif not isinstance(entries, list):
        check.add("entries", "expected [[entries]] tables")
        entries = []
    for index, entry in enumerate(entries):
        tasks.extend(_entry(index, entry, table, characters, root, base_shots, reference, backends, check))
    _check_needs(tasks, characters, check)
    if library is None:
        _check_distinct_names(characters, check)
    else:
        if update_library:
            _check_library_targets(characters, library, check)  # names included, as library targets
        library.close()
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if token is None:
            check.add("defaults.token_env", f"environment variable {token_env} is not set")
    return Job(path=path, output=(root / output).resolve(), backends=backends, token=token, upload_package=upload,
               timeout=float(timeout), characters=characters, tasks=_dedupe(tasks, check),
               library=str((root / Path(library_path).expanduser()).resolve()) if library_path else None,
               update_library=update_library)


def _backends(value: Any, check: Checker) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        check.add("defaults.backends", "expected a URL or a list of URLs")
        return []
    urls = []
    for i, url in enumerate(value):
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            check.add(f"defaults.backends[{i}]", f"expected an http(s):// URL, got {url!r}")
        else:
            urls.append(url.rstrip("/"))
    return urls


def _reference(data: dict, path: str, check: Checker) -> str | None:
    value = data.get("reference")
    if value is not None and value not in REFERENCES:
        check.add(join_path(path, "reference"), f"expected one of {', '.join(REFERENCES)}, got {value!r}")
        return None
    return value


def _open_library(folder: str, root: Path, check: Checker):
    try:
        return Library.open(root / Path(folder).expanduser(), create=False)
    except LibraryError as exc:
        check.add("defaults.library", str(exc))
        return None


def _bump(value: Any, path: str, check: Checker) -> dict[str, Any]:
    """Bump parameters by the job contract: names, types and ranges/choices (the generator's own
    rules, from the same table), each problem with its field, so a bad value stops the run up front."""

    table = check.table(value, path)
    out: dict[str, Any] = {}
    for key, item in table.items():
        items = item.items() if key == "face" and isinstance(item, dict) else [(None, item)]
        if key == "face" and item == {}:
            out["face"] = {}
        for sub, sub_item in items:  # face values one by one: every bad one is reported
            doc = {key: {sub: sub_item}} if sub is not None else {key: item}
            try:
                checked = validate_params(doc, ranges=True)
            except ContractError as exc:
                name = (exc.field or "").removeprefix("params.")
                if name == "params" or not name:
                    name = key
                hint = difflib.get_close_matches(key, list(PARAM_FIELDS), n=1) if key not in PARAM_FIELDS else []
                message = str(exc).replace("params.", "")
                if message.startswith(name + " ") or message.startswith(name + ":"):
                    message = message[len(name):].lstrip(": ")  # the field is named in front already
                if hint:
                    message = f"unknown bump setting; did you mean {hint[0]!r}?"
                check.add(join_path(path, name), message)
                if key not in PARAM_FIELDS:
                    break
                continue
            if sub is None:
                out.update(checked)
            else:
                out.setdefault(key, {}).update(checked[key])
    return out


def _package(layers: list[tuple[dict, str]], root: Path, check: Checker) -> PackageSettings | None:

    merged: dict[str, Any] = {}
    where: dict[str, str] = {}
    for table, path in layers:
        check.known(table, PACKAGE_KEYS, path)
        for key, value in table.items():
            merged[key] = value
            where[key] = join_path(path, key)
    ok = True
    views_value = merged.get("views", "minimal")
    try:
        if isinstance(views_value, str) or (isinstance(views_value, list)
                                            and all(isinstance(v, str) for v in views_value)):
            views = resolve_views(views_value)
        else:
            raise ViewError(f"expected a view-set name or a list of views, got {kind_of(views_value)}")
    except ViewError as exc:
        check.add(where.get("views", "defaults.package.views"), str(exc))
        ok, views = False, []
    resolution = _resolution(merged.get("resolution", 720), where.get("resolution", ""), check)
    preset_name = merged.get("preset", "fast")
    preset = PRESETS.get(preset_name) if isinstance(preset_name, str) else None
    if preset is None:
        check.add(where.get("preset", "preset"), f"unknown preset {preset_name!r}; presets: {', '.join(PRESETS)}")
        ok = False
    sub = {k: merged[k] for k in ("samples", "engine") if k in merged}
    samples = _number_in(sub, where, check, package_params.SAMPLES)
    if preset is not None:
        try:
            preset = preset.with_overrides(samples=samples, engine=sub.get("engine"))
        except (ValueError, TypeError) as exc:
            check.add(where.get("engine", "engine"), str(exc))
            ok = False
    studio = merged.get("studio", "almost_white")
    if studio not in STUDIOS:
        check.add(where.get("studio", "studio"), f"unknown studio {studio!r}; studios: {', '.join(STUDIOS)}")
        ok = False
    hdri = merged.get("hdri")
    if hdri is not None:
        hdri_path = (root / str(hdri)).expanduser()
        if not hdri_path.is_file():
            check.add(where["hdri"], f"HDRI not found: {hdri_path}")
            ok = False
        hdri = str(hdri_path)
    lens = _number_in(merged, where, check, package_params.LENS)
    fill = _number_in(merged, where, check, package_params.FACE_FILL)
    pose, expressions, pose_views = _pose_keys(merged, where, check)
    if not ok or resolution is None or preset is None or pose is False:
        return None
    return PackageSettings(views=tuple((v.name, v.yaw, v.pitch, v.roll) for v in views), resolution=resolution,
                           preset=preset.to_dict(), studio=studio, hdri=hdri,
                           lens=float(lens if lens is not None else package_params.LENS.default),
                           face_fill=float(fill if fill is not None else package_params.FACE_FILL.default),
                           pose=pose or None, expressions=expressions, pose_views=pose_views)


def _pose_keys(merged: dict, where: dict[str, str], check: Checker) -> tuple[Any, tuple[str, ...], bool]:
    """``pose = { head = [20, 0, 0] }``, ``expression = { smile = 0.6 }``, ``expressions = ["smile"]``,
    ``pose_views = false``: checked by the pose contract; (False, ...) when invalid."""
    pose: Any = None
    try:
        controls = {k: v if isinstance(v, list) else [v]
                    for k, v in check.table(merged.get("pose", {}), where.get("pose", "pose")).items()}
        expression = check.table(merged.get("expression", {}), where.get("expression", "expression"))
        parsed = Pose.from_dict({"controls": controls, "expression": expression})
        pose = None if parsed.is_neutral() else parsed.to_dict()
    except PoseError as exc:
        check.add(where.get("pose", where.get("expression", "package.pose")), str(exc))
        pose = False
    expressions = merged.get("expressions", [])
    if not isinstance(expressions, list) or not all(isinstance(e, str) for e in expressions):
        check.add(where.get("expressions", "expressions"), f"expected a list of expression names, got {kind_of(expressions)}")
        expressions, pose = [], False
    else:
        try:
            Pose.from_dict({"expression": {e: 1.0 for e in expressions}})
        except PoseError as exc:
            check.add(where["expressions"], str(exc))
            pose = False
    pose_views = merged.get("pose_views", True)
    if not isinstance(pose_views, bool):
        check.add(where["pose_views"], f"expected true or false, got {kind_of(pose_views)}")
        pose = False
    return pose, tuple(expressions), bool(pose_views)


def _number_in(data: dict, where: dict[str, str], check: Checker, rule: package_params.RangeRule) -> Any:
    value = data.get(rule.name)
    if value is None:
        return None
    problem = rule.problem(value)
    if problem:
        check.add(where.get(rule.name, rule.name), problem)
        return None
    return value


def _resolution(value: Any, path: str, check: Checker) -> tuple[int, int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        w = h = value
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        w, h = value
    else:
        check.add(path or "resolution", f"expected N or [W, H] pixels, got {value!r}")
        return None
    try:
        return package_params.check_resolution(w, h)
    except ContractError:
        check.add(path or "resolution", f"must be {package_params.RESOLUTION.describe()}")
        return None


def _character(key: str, value: Any, root: Path, base_package: dict, base_bump: dict, library,
               check: Checker) -> CharacterSpec | None:
    path = f"characters.{key}"
    if not NAME_RE.match(key):
        check.add(path, "character keys are letters, digits, _ and - (they name output folders)")
        return None
    data = check.table(value, path)
    check.known(data, CHARACTER_KEYS, path)
    sources = [k for k in ("demo", "blend", "library") if k in data]
    if len(sources) != 1:
        check.add(path, "give exactly one of demo = PRESET, blend = FILE (with object) or library = NAME"
                  + (f" (got {', '.join(sources)})" if sources else ""))
        return None
    kind = sources[0]
    if "rig" in data and kind != "demo":
        check.add(f"{path}.rig", "rig chooses the demo character's armature; a .blend or library character keeps its own")
        ok_rig = False
    else:
        ok_rig = True
    name = check.string(data, "name", path)
    prompt = check.string(data, "prompt", path)
    negative = check.string(data, "negative_prompt", path)
    own_bump = _bump(data.get("bump"), f"{path}.bump", check)
    eye_bones = _eye_bones(data.get("eye_bones"), f"{path}.eye_bones", check)
    fields: dict[str, Any] = {"head_bone": check.string(data, "head_bone", path),
                              "head_object": check.string(data, "head_object", path),
                              "object": check.string(data, "object", path), "eye_bones": eye_bones}
    derived_prompt = ""
    library_bump: dict[str, Any] = {}
    ok = ok_rig
    if kind == "demo":
        phenotype = _phenotype(data, path, name, check)
        rig = _rig(data, path, check)
        if phenotype is None or rig is False:
            ok = False
        else:
            fields["phenotype"] = phenotype.to_dict()
            fields["rig"] = None if rig == DEFAULT_RIG else rig  # the default renders as if absent: same hash
            name = name or phenotype.name
            derived_prompt = phenotype.describe()
    elif kind == "blend":
        blend = root / str(data["blend"])
        if not isinstance(data["blend"], str) or not blend.is_file():
            check.add(f"{path}.blend", f"blend file not found: {blend}")
            ok = False
        else:
            fields["blend"] = str(blend.resolve())
        name = name or fields["object"] or key
    found = _library_character(data.get("library"), path, library, check) if kind == "library" else None
    if kind == "library" and found is None:
        ok = False
    if found is not None:
        character, package_path, package_version = found
        name = name or character.name
        derived_prompt = character.suggested_prompt()
        fields["library_ref"] = character.name
        fields["library_package"] = package_path
        fields["library_version"] = package_version
        source = character.source or {}
        if source.get("kind") == "blend" and source.get("blend"):
            fields["blend"] = str(Path(source["blend"]).expanduser())
            fields["object"] = fields["object"] or source.get("object")
        bones = character.bones or {}
        fields["head_bone"] = fields["head_bone"] or bones.get("head")
        if not fields["eye_bones"] and bones.get("eye_left") and bones.get("eye_right"):
            fields["eye_bones"] = (bones["eye_left"], bones["eye_right"])
        library_bump = _bump({k: v for k, v in (character.bump or {}).items() if k != "prompt"},
                             f"{path}.library(bump)", check)
        if character.negative_prompt:
            library_bump["negative_prompt"] = character.negative_prompt
    package = _package([(base_package, "defaults.package"), (check.table(data.get("package"), f"{path}.package"),
                                                              f"{path}.package")], root, check)
    if package is None or not ok:
        return None
    name = name or key
    bump = merge_bump({"prompt": derived_prompt or name}, base_bump, library_bump, own_bump)
    if prompt:
        bump["prompt"] = prompt
    if negative:
        bump["negative_prompt"] = negative
    return CharacterSpec(key=key, name=name, kind=kind, package=package, bump=bump, **fields)


def _eye_bones(value: Any, path: str, check: Checker) -> tuple[str, str] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) and v for v in value)):
        check.add(path, "expected [LEFT, RIGHT] bone names (the subject's left and right eye)")
        return None
    return (value[0], value[1])


def _rig(data: dict, path: str, check: Checker) -> str | None | bool:
    """``rig = "mixamo"``: one of the MPFB2 rigs (None when absent; False, reported, when unknown)."""
    if "rig" not in data:
        return None
    rig = data["rig"]
    if not isinstance(rig, str) or rig not in RIGS:
        hint = difflib.get_close_matches(str(rig), list(RIGS), n=1)
        check.add(f"{path}.rig", f"unknown rig {rig!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
                  + f"; rigs: {', '.join(RIGS)}")
        return False
    return rig


def _phenotype(data: dict, path: str, name: str | None, check: Checker):
    preset = data["demo"]
    if preset not in PHENOTYPE_PRESETS:
        check.add(f"{path}.demo", f"unknown demo phenotype {preset!r}; presets: {', '.join(PHENOTYPE_PRESETS)}")
        return None
    values = PHENOTYPE_PRESETS[preset].to_dict()
    overrides = check.table(data.get("phenotype"), f"{path}.phenotype")
    bad = False
    for key, value in overrides.items():
        try:
            if key == "gender" and isinstance(value, str):
                value = parse_gender(value)
            elif key == "ethnicity" and isinstance(value, str):
                value = parse_ethnicity(value)
            elif key == "face" and isinstance(value, dict):
                value = {**values["face"], **value}
            if key not in values:
                hint = difflib.get_close_matches(key, list(values), n=1)
                raise PhenotypeError("unknown phenotype field" + (f"; did you mean {hint[0]!r}?" if hint else ""))
            Phenotype.from_dict({**PHENOTYPE_PRESETS[preset].to_dict(), key: value})
            values[key] = value
        except (PhenotypeError, TypeError) as exc:
            check.add(f"{path}.phenotype.{key}", str(exc))
            bad = True
    if name:
        values["name"] = name
    if bad:
        return None
    return Phenotype.from_dict(values)


def _library_character(ref: Any, path: str, library, check: Checker):
    if not isinstance(ref, str) or not ref:
        check.add(f"{path}.library", "expected the name of a library character")
        return None
    if library is None:
        check.add(f"{path}.library", "set defaults.library to the library folder to use library characters")
        return None

    try:
        character = library.get_character(ref)
    except LibraryError as exc:
        check.add(f"{path}.library", str(exc))
        return None
    package = version = None
    if character.active_version is not None:
        try:
            info = library.get_package(character.name)
            package, version = str(info.path), info.version
        except LibraryError as exc:
            check.add(f"{path}.library", str(exc))
    return character, package, version


def _check_distinct_names(characters: dict[str, CharacterSpec], check: Checker) -> None:
    """Two job characters must not share a name: a package's character id comes from it, so their
    packages, contact sheets and records would claim to be the same character. (Two demo characters
    from one preset share the preset's name unless given their own.)"""
    seen: dict[str, str] = {}
    for key, spec in characters.items():
        folded = spec.name.casefold()
        if folded in seen:
            check.add(f"characters.{key}", f"has the same name {spec.name!r} as characters.{seen[folded]} (a "
                      "package's character id comes from its name); give one of them its own name = \"...\"")
        else:
            seen[folded] = key


def _check_library_targets(characters: dict[str, CharacterSpec], library, check: Checker) -> None:
    """Each job character records into one library character of its own, never into a stranger's:
    a demo or .blend character whose name the library already holds must have the same source."""

    seen: dict[str, str] = {}
    for key, spec in characters.items():
        target = spec.library_name
        folded = target.casefold()
        if folded in seen:
            check.add(f"characters.{key}", f"records into the same library character {target!r} as characters."
                      f"{seen[folded]}; give one of them its own name = \"...\"")
            continue
        seen[folded] = key
        if spec.kind == "library":
            continue
        try:
            existing = library.get_character(target)
        except LibraryError:
            continue  # created on the first run that records something
        if not _same_source(spec, existing.source or {}):
            where = existing.source.get("blend") or existing.source.get("kind", "external")
            check.add(f"characters.{key}", f"the library already has a character {existing.name!r} from another "
                      f"source ({where}); give this one another name = \"...\", use library = {existing.name!r}, "
                      "or set defaults.update_library = false")


def _same_source(spec: CharacterSpec, source: dict[str, Any]) -> bool:
    if spec.kind == "demo":
        return source.get("kind") == "demo"
    if source.get("kind") != "blend" or not source.get("blend") or not spec.blend:
        return False
    same_file = Path(source["blend"]).expanduser().resolve() == Path(spec.blend).resolve()
    return same_file and (not source.get("object") or not spec.object or source["object"] == spec.object)


def _entry(index: int, entry: Any, declared: dict, characters: dict[str, CharacterSpec], root: Path,
           base_shots: dict, reference: str, backends: list[str], check: Checker) -> list[Task]:
    path = f"entries[{index}]"
    data = check.table(entry, path)
    check.known(data, ENTRY_KEYS, path)
    names = data.get("characters")
    if names == "*" or names == ["*"]:
        names = list(declared)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        check.add(f"{path}.characters", "expected a list of character names (or \"*\")")
        names = []
    for i, name in enumerate(names):
        if name not in declared:
            hint = difflib.get_close_matches(name, list(declared), n=1)
            check.add(f"{path}.characters[{i}]", f"no character {name!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
    tasks_value = data.get("tasks", ["package", "bump_package"])
    if not isinstance(tasks_value, list) or not tasks_value:
        check.add(f"{path}.tasks", f"expected a list of tasks from {', '.join(TASKS)}")
        tasks_value = []
    kinds = []
    for i, task in enumerate(tasks_value):
        if task not in TASKS:
            hint = difflib.get_close_matches(str(task), TASKS, n=1)
            check.add(f"{path}.tasks[{i}]", f"unknown task {task!r}" + (f"; did you mean {hint[0]!r}?" if hint
                                                                        else f"; tasks: {', '.join(TASKS)}"))
        else:
            kinds.append(task)
    entry_bump = _bump(data.get("bump"), f"{path}.bump", check)
    if not backends and ("bump_package" in kinds or ("shots" in kinds and any(
            isinstance(shot, dict) and shot.get("bump", True) is not False for shot in data.get("shots") or []))):
        check.add("defaults.backends", f"{path} bumps images: list the backend URL(s), e.g. "
                  "backends = [\"http://127.0.0.1:7861\"]")
    shots: list[ShotSpec] = []
    shot_tables = data.get("shots", [])
    if not isinstance(shot_tables, list):
        check.add(f"{path}.shots", "expected [[entries.shots]] tables")
        shot_tables = []
    if "shots" in kinds and not shot_tables:
        check.add(f"{path}.shots", "task 'shots' needs at least one [[entries.shots]] table")
    if shot_tables and "shots" not in kinds:
        check.add(f"{path}.tasks", "shots are listed but the task 'shots' is not")
    for i, shot in enumerate(shot_tables):
        spec = _shot(shot, f"{path}.shots[{i}]", i, root, base_shots, reference, check)
        if spec is not None:
            shots.append(spec)
    tasks = []
    for name in names:
        if name not in characters:
            continue
        for kind in kinds:
            character = characters[name]
            if kind == "package" and not character.can_render:
                check.add(f"{path}.tasks", f"{name}: 'package' needs a demo or .blend character; library character "
                          f"{character.library_ref!r} has no .blend source (its package is used as it is)")
                continue
            shot_specs = ()
            if kind == "shots":
                shot_specs = tuple(_shot_bump(s, character, entry_bump) for s in shots)
            tasks.append(Task(name, kind, merge_bump(character.bump, entry_bump), shot_specs))
    return tasks


def _shot_bump(shot: ShotSpec, character: CharacterSpec, entry_bump: dict) -> ShotSpec:
    if shot.bump is None:
        return shot

    return replace(shot, bump=merge_bump(character.bump, entry_bump, shot.bump),
                   object=shot.object or character.object)


def _shot(value: Any, path: str, index: int, root: Path, base: dict, reference: str, check: Checker) -> ShotSpec | None:
    data = check.table(value, path)
    check.known(data, SHOT_KEYS, path)
    ok = True
    blend_value = check.string(data, "blend", path, required=True)
    blend = None
    if blend_value:
        blend = (root / blend_value).expanduser()
        if not blend.is_file():
            check.add(f"{path}.blend", f"blend file not found: {blend}")
            ok = False
    name = check.string(data, "name", path) or (Path(blend_value).stem if blend_value else f"shot{index}")
    if not NAME_RE.match(name):
        check.add(f"{path}.name", "shot names are letters, digits, _ and - (they name output folders)")
        ok = False
    cameras = data.get("cameras", [None])
    if isinstance(cameras, str):
        cameras = [cameras]
    if not isinstance(cameras, list) or not cameras or not all(c is None or (isinstance(c, str) and c) for c in cameras):
        check.add(f"{path}.cameras", "expected a list of camera object names")
        ok = False
    elif len(set(cameras)) != len(cameras):
        check.add(f"{path}.cameras", "a camera is listed twice")
        ok = False
    try:
        frames: list[int | None] = parse_frames(data["frames"]) if "frames" in data else [None]
    except ValueError as exc:
        check.add(f"{path}.frames", str(exc))
        ok, frames = False, []
    render: dict[str, Any] = {}
    merged = {**base, **{k: data[k] for k in SHOT_RENDER_KEYS if k in data}}
    if "resolution" in merged:
        res = _resolution(merged["resolution"], f"{path}.resolution", check)
        ok = ok and res is not None
        render["resolution"] = list(res) if res else None
    if "preset" in merged or "samples" in merged or "engine" in merged:
        preset = PRESETS.get(merged.get("preset", "fast"))
        if preset is None:
            check.add(f"{path}.preset", f"unknown preset {merged.get('preset')!r}; presets: {', '.join(PRESETS)}")
            ok = False
        else:
            samples = check.number(merged, "samples", path, 1, 65536, integer=True)
            try:
                render["preset"] = preset.with_overrides(samples=samples, engine=merged.get("engine")).to_dict()
            except ValueError as exc:
                check.add(f"{path}.engine", str(exc))
                ok = False
    bump_value = data.get("bump", {})
    bump: dict[str, Any] | None
    if bump_value is False:
        bump = None
    else:
        bump = _bump(bump_value if bump_value is not True else {}, f"{path}.bump", check)
    ref = _reference(data, path, check) or reference
    sequence = _sequence(data, frames, bump, path, check)
    if not ok or not blend:
        return None
    return ShotSpec(name=name, blend=str(blend.resolve()), cameras=tuple(cameras), frames=tuple(frames),
                    render=render, object=check.string(data, "object", path), bump=bump, reference=ref,
                    sequence=sequence)


def _sequence(data: dict[str, Any], frames: list[int | None], bump: dict[str, Any] | None, path: str,
              check: Checker) -> dict[str, Any] | None:
    """``sequence = true`` (or a table of sequence settings, ``bump_contracts.sequence_job``): the shot's
    frames are bumped as one sequence job (one identity, no flicker) instead of one bump per frame."""
    value = data.get("sequence", False)
    where = join_path(path, "sequence")
    if value is False:
        return None
    if value is not True and not isinstance(value, dict):
        check.add(where, "expected true, false or a table of sequence settings")
        return None
    settings = {} if value is True else dict(value)
    try:
        SequenceParams.from_dict(settings)
    except ContractError as exc:
        check.add(join_path(where, exc.field) if exc.field and exc.field != "sequence" else where,
                  str(exc).removeprefix("sequence: "))
        return None
    except TypeError as exc:
        check.add(where, str(exc))
        return None
    if "frames" not in data or len(frames) < 2:
        check.add(where, "a sequence needs `frames` with at least two frames")
        return None
    if bump is None:
        check.add(where, "a sequence is bumped: remove `bump = false` or `sequence`")
        return None
    return settings


def _check_needs(tasks: list[Task], characters: dict[str, CharacterSpec], check: Checker) -> None:
    rendered = {t.character for t in tasks if t.kind == "package"}
    bumped = {t.character for t in tasks if t.kind == "bump_package"}
    for task in tasks:
        if any(s.reference == "bumped" and s.bump is not None for s in task.shots) and task.character not in bumped:
            check.add("entries", f"{task.character}: shots with reference = \"bumped\" need the task 'bump_package' "
                      "for the same character")
        needs_package = task.kind == "bump_package" or any(s.bump is not None for s in task.shots)
        if needs_package and task.character not in rendered and not characters[task.character].library_package:
            check.add("entries", f"{task.character}: task {task.kind!r} needs the character's package; add the task "
                      "'package' or use a library character that has one")


def _dedupe(tasks: list[Task], check: Checker) -> list[Task]:
    """The same character and task in two entries runs once; with different settings it is an error."""
    seen: dict[tuple[str, str], Task] = {}
    out: list[Task] = []
    for task in tasks:
        key = (task.character, task.kind)
        if task.kind == "shots":
            out.append(task)
            continue
        if key in seen:
            if task.kind == "bump_package" and seen[key].bump != task.bump:
                check.add("entries", f"{task.character}: 'bump_package' is listed twice with different bump settings")
            continue
        seen[key] = task
        out.append(task)
    return out

