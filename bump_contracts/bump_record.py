"""The bump record: what one bump did, written once by the generator and read by everyone else.

The generator writes it beside every result (``<stem>.json`` and the PNG's ``bump_record``
chunk); ``reproduce`` replays it, the add-on and batch runs record it in the character library's
history (:meth:`BumpRecord.history_fields`, the one conversion), and batch runs keep it with
their outputs. Stdlib only, so Blender's Python reads it too.

The JSON keeps the field names of the first version, so records written before this type existed
still read; fields added later are optional on reading. Version 2 added ``model.components`` (a
hash per model part that determines the output, so a replay can say which part changed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from bump_contracts.bump_job import MAX_TEXT, validate_params
from bump_contracts.errors import ContractError

RECORD_SCHEMA = "bump-record"
RECORD_VERSION = 2


# -- small typed readers (every message names the field) ---------------------------------------
def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where}: expected an object, got {type(value).__name__}", where)
    return value


def _get(data: dict[str, Any], key: str, kinds: tuple[type, ...], where: str, *, required: bool = False) -> Any:
    name = f"{where}.{key}" if where else key
    value = data.get(key)
    if value is None:
        if required:
            raise ContractError(f"{name}: missing", name)
        return None
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise ContractError(f"{name}: expected {' or '.join(k.__name__ for k in kinds)}, got {value!r:.80}", name)
    return value


def _opt_obj(data: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = _get(data, key, (dict,), where)
    return None if value is None else dict(value)


def _num(data: dict[str, Any], key: str, where: str) -> float | None:
    value = _get(data, key, (int, float), where)
    return None if value is None else float(value)


# -- parts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRecord:
    """The model that ran: its spec (as ``ModelSpec.to_dict`` gives it), hash, name and part hashes."""

    spec: dict[str, Any]
    hash: str
    name: str = ""
    family: str = ""
    ip_adapter_kind: str | None = None
    components: dict[str, str] = field(default_factory=dict)  # part -> sha256 prefix (v2)

    KEYS = ("hash", "name", "family", "ip_adapter_kind", "components")

    @property
    def label(self) -> str:
        """``name [hash]``: how the history and reports name the model."""
        return f"{self.name} [{self.hash}]" if self.hash else self.name

    def to_dict(self) -> dict[str, Any]:
        out = {**self.spec, "hash": self.hash, "name": self.name, "family": self.family,
               "ip_adapter_kind": self.ip_adapter_kind}
        if self.components:
            out["components"] = dict(self.components)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> ModelRecord:
        data = _obj(data, "model")
        components = _opt_obj(data, "components", "model") or {}
        if not all(isinstance(v, str) for v in components.values()):
            raise ContractError("model.components: expected part -> hash text", "model.components")
        return cls(spec={k: v for k, v in data.items() if k not in cls.KEYS},
                   hash=_get(data, "hash", (str,), "model", required=True),
                   name=_get(data, "name", (str,), "model") or "", family=_get(data, "family", (str,), "model") or "",
                   ip_adapter_kind=_get(data, "ip_adapter_kind", (str,), "model"), components=components)


@dataclass(frozen=True)
class PackageRecord:
    """A reference package: its folder and, once encoded, its id, content hash and views."""

    path: str
    id: str | None = None
    hash: str | None = None
    views: tuple[dict[str, Any], ...] | None = None  # None: not encoded (no IP-Adapter)
    skipped_views: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.views is None:
            return {"path": self.path}
        out: dict[str, Any] = {"id": self.id, "hash": self.hash, "views": [dict(v) for v in self.views]}
        if self.skipped_views:
            out["skipped_views"] = dict(self.skipped_views)
        out["path"] = self.path
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "package") -> PackageRecord | None:
        if data is None:
            return None
        data = _obj(data, where)
        views = _get(data, "views", (list,), where)
        if views is not None and not all(isinstance(v, dict) for v in views):
            raise ContractError(f"{where}.views: expected a list of objects", f"{where}.views")
        return cls(path=_get(data, "path", (str,), where, required=True), id=_get(data, "id", (str,), where),
                   hash=_get(data, "hash", (str,), where), views=None if views is None else tuple(views),
                   skipped_views=_opt_obj(data, "skipped_views", where))


@dataclass(frozen=True)
class FacePackage:
    """The package one face was bumped with (id and hash None when it was not encoded)."""

    path: str
    id: str | None = None
    hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hash": self.hash, "path": self.path}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FacePackage | None:
        if data is None:
            return None
        data = _obj(data, where)
        return cls(path=_get(data, "path", (str,), where, required=True), id=_get(data, "id", (str,), where),
                   hash=_get(data, "hash", (str,), where))


@dataclass(frozen=True)
class ImageRecord:
    """An image by its pixel hash and size; ``path`` for the input only."""

    sha256: str
    width: int
    height: int
    path: str | None = None

    def to_dict(self, with_path: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path} if with_path else {}
        out.update(sha256=self.sha256, width=self.width, height=self.height)
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ImageRecord:
        data = _obj(data, where)
        return cls(sha256=_get(data, "sha256", (str,), where, required=True),
                   width=_get(data, "width", (int,), where, required=True),
                   height=_get(data, "height", (int,), where, required=True), path=_get(data, "path", (str,), where))


@dataclass(frozen=True)
class FaceRecord:
    """One bumped face: where it was, its package, seeds, identity scores and the chosen crop."""

    face: dict[str, Any]
    seeds: tuple[int, ...]
    chosen_seed: int
    crop_sha256: str
    character_id: str | None = None
    package: FacePackage | None = None
    scores: tuple[float | None, ...] | None = None
    identity_score: float | None = None
    ranked_by: str | None = None
    references: dict[str, Any] | None = None
    ranking: str | None = None  # why candidates were not ranked
    prompt: str | None = None  # set when the face had its own (character) prompt
    negative_prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "face": dict(self.face), "character_id": self.character_id,
            "package": None if self.package is None else self.package.to_dict(), "seeds": list(self.seeds),
            "chosen_seed": self.chosen_seed, "scores": None if self.scores is None else list(self.scores),
            "identity_score": self.identity_score, "ranked_by": self.ranked_by, "references": self.references,
            "crop_sha256": self.crop_sha256,
        }
        if self.ranking is not None:
            out["ranking"] = self.ranking
        if self.prompt is not None:
            out["prompt"], out["negative_prompt"] = self.prompt, self.negative_prompt
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FaceRecord:
        data = _obj(data, where)
        seeds = _get(data, "seeds", (list,), where, required=True)
        scores = _get(data, "scores", (list,), where)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ContractError(f"{where}.seeds: expected whole numbers", f"{where}.seeds")
        if scores is not None and not all(s is None or (isinstance(s, (int, float)) and not isinstance(s, bool))
                                          for s in scores):
            raise ContractError(f"{where}.scores: expected numbers", f"{where}.scores")
        return cls(face=dict(_obj(data.get("face"), f"{where}.face")), seeds=tuple(seeds),
                   chosen_seed=_get(data, "chosen_seed", (int,), where, required=True),
                   crop_sha256=_get(data, "crop_sha256", (str,), where) or "",
                   character_id=_get(data, "character_id", (str,), where),
                   package=FacePackage.from_dict(data.get("package"), f"{where}.package"),
                   scores=None if scores is None else tuple(None if s is None else float(s) for s in scores),
                   identity_score=_num(data, "identity_score", where), ranked_by=_get(data, "ranked_by", (str,), where),
                   references=_opt_obj(data, "references", where), ranking=_get(data, "ranking", (str,), where),
                   prompt=_get(data, "prompt", (str,), where),
                   negative_prompt=_get(data, "negative_prompt", (str,), where))


# -- the record ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BumpRecord:
    """Everything that explains one bump result (see the module's docstring)."""

    created: str
    settings: dict[str, Any]  # BumpSettings.to_dict(), the seed resolved
    seed: int
    model: ModelRecord
    input: ImageRecord
    working_size: tuple[int, int]  # (width, height) the model worked at
    output: ImageRecord
    package: PackageRecord | None = None
    sidecar: dict[str, Any] | None = None
    faces: tuple[FaceRecord, ...] = ()
    skipped_faces: tuple[Any, ...] = ()  # the face finder's skipped faces (objects; text in old records)
    whole_pass_references: dict[str, Any] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    packages: dict[str, PackageRecord | None] = field(default_factory=dict)  # per character id
    character_prompts: dict[str, dict[str, str]] = field(default_factory=dict)
    whole_pass_package: str | None = None
    face_search: dict[str, Any] | None = None
    face_finder: dict[str, Any] | None = None  # FaceFinderSettings when the caller gave some
    batch: dict[str, Any] | None = None  # a batch run's unit, job id and backend

    @property
    def identity_scores(self) -> list[float]:
        return [f.identity_score for f in self.faces if f.identity_score is not None]

    @property
    def best_identity_score(self) -> float | None:
        scores = self.identity_scores
        return max(scores) if scores else None

    def history_fields(self) -> dict[str, Any]:
        """The character library's history run fields this record gives (the one conversion:
        ``character_library`` adds its run id, package version and outputs)."""
        s = self.settings
        return {"seed": self.seed, "steps": s.get("steps"), "cfg": s.get("cfg"), "denoise": s.get("denoise"),
                "sampler": s.get("sampler") or "", "model": self.model.label, "prompt": s.get("prompt") or "",
                "negative_prompt": s.get("negative_prompt") or "", "settings": dict(s),
                "identity_score": self.best_identity_score}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": RECORD_SCHEMA, "schema_version": RECORD_VERSION, "created": self.created,
            "settings": dict(self.settings), "seed": self.seed, "model": self.model.to_dict(),
            "package": None if self.package is None else self.package.to_dict(),
            "input": self.input.to_dict(with_path=True), "working_size": list(self.working_size),
            "sidecar": self.sidecar, "faces": [f.to_dict() for f in self.faces],
            "skipped_faces": list(self.skipped_faces), "whole_pass_references": self.whole_pass_references,
            "output": self.output.to_dict(with_path=False), "runtime": dict(self.runtime),
            "timings": dict(self.timings),
            "packages": {cid: None if p is None else p.to_dict() for cid, p in self.packages.items()},
            "character_prompts": {cid: dict(p) for cid, p in self.character_prompts.items()},
            "whole_pass_package": self.whole_pass_package, "face_search": self.face_search,
        }
        if self.face_finder is not None:
            out["face_finder"] = dict(self.face_finder)
        if self.batch is not None:
            out["batch"] = dict(self.batch)
        return out

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def loads(cls, text: str, source: str = "record") -> BumpRecord:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ContractError(f"{source}: not valid JSON ({exc})", "record") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> BumpRecord:
        data = _obj(data, "record")
        if data.get("schema") != RECORD_SCHEMA:
            raise ContractError(f"not a bump record (schema must be {RECORD_SCHEMA!r}, got {data.get('schema')!r})",
                                "schema")
        version = data.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= RECORD_VERSION:
            raise ContractError(f"schema_version must be 1..{RECORD_VERSION}, got {version!r} (a newer generator "
                                "wrote it?)", "schema_version")
        settings = dict(_obj(data.get("settings"), "settings"))
        try:
            validate_params(settings)  # names and types of the job contract's parameter table
        except ContractError as exc:
            field_ = (exc.field or "params").replace("params", "settings", 1)
            raise ContractError(str(exc).replace("params", "settings", 1), field_) from None
        size = data.get("working_size")
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ContractError(f"working_size: expected [width, height], got {size!r:.80}", "working_size")
        prompts_ = _opt_obj(data, "character_prompts", "") or {}
        for cid, entry in prompts_.items():
            entry = _obj(entry, f"character_prompts.{cid}")
            if not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in entry.values()):
                raise ContractError(f"character_prompts.{cid}: expected texts", f"character_prompts.{cid}")
        faces = _get(data, "faces", (list,), "") or []
        packages = _opt_obj(data, "packages", "") or {}
        timings = _opt_obj(data, "timings", "") or {}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in timings.values()):
            raise ContractError("timings: expected seconds per stage", "timings")
        return cls(
            created=_get(data, "created", (str,), "") or "", settings=settings,
            seed=_get(data, "seed", (int,), "", required=True), model=ModelRecord.from_dict(data.get("model")),
            input=ImageRecord.from_dict(data.get("input"), "input"), working_size=(size[0], size[1]),
            output=ImageRecord.from_dict(data.get("output"), "output"),
            package=PackageRecord.from_dict(data.get("package")), sidecar=_opt_obj(data, "sidecar", ""),
            faces=tuple(FaceRecord.from_dict(f, f"faces[{i}]") for i, f in enumerate(faces)),
            skipped_faces=tuple(_get(data, "skipped_faces", (list,), "") or ()),
            whole_pass_references=_opt_obj(data, "whole_pass_references", ""),
            runtime=_opt_obj(data, "runtime", "") or {}, timings={k: float(v) for k, v in timings.items()},
            packages={str(cid): PackageRecord.from_dict(p, f"packages.{cid}") for cid, p in packages.items()},
            character_prompts={cid: dict(e) for cid, e in prompts_.items()},
            whole_pass_package=_get(data, "whole_pass_package", (str,), ""),
            face_search=_opt_obj(data, "face_search", ""), face_finder=_opt_obj(data, "face_finder", ""),
            batch=_opt_obj(data, "batch", ""))
