"""The bump job contract: request, status, result and error documents, defined once.

Stdlib only, because the Blender add-on and the headless renderer import it inside Blender's
Python (no pydantic, no torch, no numpy). The server validates every request with these same
functions, so a client can check a request before sending it and get the same answer.

Every bump parameter's rule lives here once, as data (:data:`PARAMS`): its name, its type and
its range or choices. ``validate_params`` checks names and types (and ranges with
``ranges=True``, as a batch job file does before anything renders); the generator's
``BumpSettings`` validates its values with :func:`check_param` from this same table, so the
server, the add-on and batch runs give the same answer with the same message.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from bump_contracts.errors import ContractError
from bump_contracts.safe_json import check_text, printable, short, shown

CONTRACT_VERSION = 1
REQUEST_SCHEMA = "bump-job-request"
STATUS_SCHEMA = "bump-job-status"
RESULT_SCHEMA = "bump-job-result"
API_PREFIX = "/v1"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7861
START_HINT = "python -m bump_backend serve --port {port}"

class JobState(StrEnum):
    """Where a job is; a str, so it compares with and serialises as the plain names on the wire."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


QUEUED, RUNNING, DONE, FAILED, CANCELLED = JobState
STATES = tuple(state.value for state in JobState)
TERMINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})

# Stages a job walks through; ``JobStatus.stage`` is one of these.
STAGES = ("queued", "preparing", "loading model", "faces", "face pass", "whole-image pass", "saving",
          "done", "failed", "cancelled")

# Accepted input types, by their magic bytes (never by file name or declared content type).
IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "exr": "image/x-exr"}
ID_RE = re.compile(r"^j[0-9]{14}-[0-9a-f]{8}$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TEXT = 8000  # characters in a prompt or negative prompt: jobs, library characters and history alike
# The default negative prompt (WORKFLOW's, without the character-specific terms it adds per character).
DEFAULT_NEGATIVE_PROMPT = "cartoon, painting, illustration, (worst quality, low quality, normal quality:2)"
MAX_LABEL = 200
MAX_CHARACTER_PACKAGES = 32  # entries in JobRequest.packages (and in JobRequest.character_prompts)
PACKAGE_REF_KEYS = ("package_path", "package_id")
CHARACTER_PROMPT_KEYS = ("prompt", "negative_prompt")


def sniff_image_type(head: bytes) -> str | None:
    """``png``, ``jpeg``, ``webp`` or ``exr`` from a file's first bytes; None for anything else."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"\x76\x2f\x31\x01"):
        return "exr"
    return None


# -- parameters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParamRule:
    """One bump parameter: its kind and, for numbers, its range; for names, its choices."""

    kind: str  # int | float | bool | str | face
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # ``low`` itself is not allowed: (low, high]
    multiple_of: int | None = None
    choices: tuple[str, ...] = ()
    note: str = ""
    default: Any = None  # the value when a request leaves it out (the engine, add-on and job files all use it)
    infotext: str = ""  # its label in A1111's ``parameters`` text ("" = not written there)

    def describe(self) -> str:
        """The rule in words, as every message about it says it ("an integer from 1 to 150")."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind not in ("int", "float") or (self.low is None and self.high is None):
            return {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                    "face": "an object"}[self.kind]
        low, high = _num(self.low), _num(self.high)
        if self.kind == "int":
            if self.multiple_of:
                text = f"a multiple of {self.multiple_of}" + (f" from {low} to {high}" if low is not None and high is not None
                                                              else f" and at least {low}" if low is not None else "")
            elif low is not None and high is not None:
                text = f"an integer from {low} to {high}"
            elif low is not None:
                text = f"an integer of at least {low}"
            else:
                text = f"an integer of at most {high}"
        elif self.low_open:
            text = f"in ({low}, {high}]"
        elif low is not None and high is not None:
            text = f"between {low} and {high}"
        else:
            text = f"at least {low}" if low is not None else f"at most {high}"
        return f"{text} ({self.note})" if self.note else text


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:g}" if isinstance(value, float) else str(value)


# The A1111 sampler names the generator maps to diffusers schedulers (bump_backend.generate.samplers
# keeps one scheduler per name; a test keeps the two lists equal), and extra spellings it accepts.
SAMPLER_NAMES: tuple[str, ...] = (
    "Restart", "Heun", "Heun Karras", "Euler", "Euler a", "LMS", "LMS Karras", "DDIM", "UniPC", "DPM++ 2M",
    "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "DPM++ SDE Karras",
)
SAMPLER_ALIASES: dict[str, str] = {"k_euler_a": "Euler a", "k_euler": "Euler", "dpmpp_2m_karras": "DPM++ 2M Karras",
                                   "dpmpp_2m_sde_karras": "DPM++ 2M SDE Karras", "restart": "Restart"}
POSE_MODES = ("nearest", "average", "all")

# Every bump parameter, defined once: the names are BumpSettings' fields (a test keeps them equal);
# "face" nests the face pass's own values (FACE_PARAMS, None = the whole pass's value).
PARAMS: dict[str, ParamRule] = {
    "prompt": ParamRule("str", default="", infotext="Prompt"),
    "negative_prompt": ParamRule("str", default=DEFAULT_NEGATIVE_PROMPT, infotext="Negative prompt"),
    "steps": ParamRule("int", 1, 150, default=35, infotext="Steps"),
    "cfg": ParamRule("float", 0.0, 30.0, default=7.0, infotext="CFG scale"),
    "denoise": ParamRule("float", 0.0, 1.0, low_open=True, default=0.4, infotext="Denoising strength"),
    "sampler": ParamRule("str", choices=SAMPLER_NAMES, default="Restart", infotext="Sampler"),
    "seed": ParamRule("int", -1, 2**32 - 1, note="-1: a random seed, recorded", default=-1, infotext="Seed"),
    "max_side": ParamRule("int", 64, default=1440),
    "ip_adapter_scale": ParamRule("float", 0.0, 2.0, default=0.6, infotext="IP-Adapter scale"),
    "face_pass": ParamRule("bool", default=True, infotext="Face pass"),
    "whole_pass": ParamRule("bool", default=True, infotext="Whole pass"),
    "face": ParamRule("face"),
    "face_size": ParamRule("int", 16, 2048, multiple_of=8, default=720, infotext="Face size"),
    "face_padding": ParamRule("float", 0.0, 2.0, default=0.35, infotext="Face padding"),
    "candidates": ParamRule("int", 1, 16, default=1, infotext="Face candidates"),
    "pose_mode": ParamRule("str", choices=POSE_MODES, default="nearest", infotext="Pose mode"),
    "pose_views": ParamRule("int", 1, default=3, infotext="Pose views"),
    "batch_size": ParamRule("int", 1, default=4),
    "clip_skip": ParamRule("int", 1, 12, note="CLIP layers counted from the end; SD 1.5 and SDXL have 12",
                           default=1, infotext="Clip skip"),
}
# The face pass's values: the whole pass's rules under their own infotext labels.
FACE_PARAMS: dict[str, ParamRule] = {name: replace(PARAMS[name], infotext=label) for name, label in (
    ("steps", "Face steps"), ("cfg", "Face CFG scale"), ("denoise", "Face denoising strength"),
    ("sampler", "Face sampler"), ("prompt", "Face prompt"), ("negative_prompt", "Face negative prompt"),
    ("ip_adapter_scale", "IP-Adapter face scale"))}
# name -> kind (what the type checks, the server and its fuzz tests read)
PARAM_FIELDS: dict[str, str] = {name: rule.kind for name, rule in PARAMS.items()}
FACE_FIELDS: dict[str, str] = {name: rule.kind for name, rule in FACE_PARAMS.items()}
# name -> default, for every parameter that has one
PARAM_DEFAULTS: dict[str, Any] = {name: rule.default for name, rule in PARAMS.items() if rule.default is not None}


def _sampler_key(name: str) -> str:
    return name.strip().lower().replace("+", "p").replace(" ", "").replace("-", "")


_SAMPLER_KEYS = {**{_sampler_key(n): n for n in SAMPLER_NAMES}, **{_sampler_key(a): n for a, n in SAMPLER_ALIASES.items()}}


def canonical_sampler(name: Any, label: str = "sampler") -> str:
    """The A1111 spelling of a sampler name (case, spacing and dashes forgiven)."""
    if isinstance(name, str):
        if name in SAMPLER_NAMES:
            return name
        found = _SAMPLER_KEYS.get(_sampler_key(name))
        if found is not None:
            return found
    raise ContractError(f"{label}: unknown sampler {shown(name)}; known: {', '.join(SAMPLER_NAMES)}", label)


def param_rule(name: str) -> ParamRule:
    """The rule of ``name`` ("steps") or of a face-pass value ("face.steps")."""
    if name.startswith("face."):
        return FACE_PARAMS[name[5:]]
    return PARAMS[name]


def check_param(name: str, value: Any, *, label: str | None = None) -> Any:
    """Check one value against its rule (type, range, choices); return it (a sampler in its canonical
    spelling). ``name`` is "steps" or "face.steps"; a face-pass value may be None (the whole pass's).
    Raises ContractError whose message starts with ``label`` (default: ``name``), its field."""
    rule = param_rule(name)
    label = label or name
    if value is None and name.startswith("face."):
        return None
    if rule.kind == "face":
        return value
    if name.endswith("sampler"):
        return canonical_sampler(value, label)
    bad = ContractError(f"{label} must be {rule.describe()}, got {shown(value)}", label)
    if rule.choices:
        if value not in rule.choices:
            raise bad
        return value
    if rule.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if rule.kind == "int" else numbers.Real):
            raise bad
        if not math.isfinite(value):
            raise bad
        if rule.low is not None and (value < rule.low or (rule.low_open and value == rule.low)):
            raise bad
        if (rule.high is not None and value > rule.high) or (rule.multiple_of and value % rule.multiple_of):
            raise bad
        return value
    _check_value(value, rule.kind, label)
    return value


def _reject_unknown(data: dict[str, Any], known: set[str] | dict[str, Any], where: str) -> None:
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        name = short(f"{where}.{unknown[0]}" if where else str(unknown[0]))
        raise ContractError(f"unknown field {name!r} (allowed: {', '.join(sorted(known))})", name)


def _check_value(value: Any, kind: str, name: str, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ContractError(f"{name} must be an integer, got {shown(value)}", name)
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ContractError(f"{name} must be a finite number, got {shown(value)}", name)
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ContractError(f"{name} must be true or false, got {shown(value)}", name)
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ContractError(f"{name} must be a string, got {shown(value)}", name)
        if len(value) > MAX_TEXT:
            raise ContractError(f"{name} is longer than {MAX_TEXT} characters", name)
        if "\x00" in value:
            raise ContractError(f"{name} must not contain NUL characters", name)
        return check_text(value, name)
    raise AssertionError(kind)


def validate_params(data: Any, *, ranges: bool = False) -> dict[str, Any]:
    """Names and types of the bump parameters; unknown fields rejected by name. ``ranges=True`` also
    checks every value's range or choices (:data:`PARAMS`) as the generator will; the server checks
    them when it builds the generator's settings, with the same rules."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ContractError("params must be a JSON object", "params")
    _reject_unknown(data, PARAM_FIELDS, "params")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"params.{key}"
        if PARAM_FIELDS[key] == "face":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ContractError(f"{name} must be an object", name)
            _reject_unknown(value, FACE_FIELDS, name)
            out[key] = {k: _check_value(v, FACE_FIELDS[k], f"{name}.{k}", nullable=True) for k, v in value.items()}
            if ranges:
                for k, v in value.items():
                    check_param(f"face.{k}", v, label=f"{name}.{k}")
        else:
            out[key] = _check_value(value, PARAM_FIELDS[key], name)
            if ranges:
                check_param(key, value, label=name)
    return out


# -- request ---------------------------------------------------------------------------------
def _check_string(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
        raise ContractError(f"{printable(name)} must be a non-empty string of at most {limit} characters",
                            printable(name))
    return check_text(value, name)


def _per_character(data: Any, field: str, keys: tuple[str, ...], what: str) -> list[tuple[str, str, dict]]:
    """The checks every ``{character id: {...}}`` request field shares: (id, field name, entry) items."""
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ContractError(f"{field} must be a JSON object: character id -> {{{what}}}", field)
    if len(data) > MAX_CHARACTER_PACKAGES:
        raise ContractError(f"{field}: at most {MAX_CHARACTER_PACKAGES} characters", field)
    items = []
    for character_id, entry in data.items():
        _check_string(character_id, f"{field} (a character id)", 200)
        name = f"{field}.{character_id}"
        if not isinstance(entry, dict):
            raise ContractError(f"{name} must be an object with {what}", name)
        _reject_unknown(entry, keys, name)
        items.append((character_id, name, entry))
    return items


def validate_packages(data: Any) -> dict[str, dict[str, str]]:
    """``packages``: character id -> ``{"package_path": ...}`` or ``{"package_id": ...}`` (exactly one)."""
    out: dict[str, dict[str, str]] = {}
    for character_id, name, ref in _per_character(data, "packages", PACKAGE_REF_KEYS, "package_path | package_id"):
        given = [k for k in PACKAGE_REF_KEYS if ref.get(k) is not None]
        if len(given) != 1:
            raise ContractError(f"{name}: give exactly one of package_path or package_id", name)
        key = given[0]
        out[character_id] = {key: _check_string(ref[key], f"{name}.{key}", 4096 if key == "package_path" else 200)}
    return out


def validate_character_prompts(data: Any) -> dict[str, dict[str, str]]:
    """``character_prompts``: character id -> ``{"prompt": str, "negative_prompt": str}`` (both optional).

    The generator adds a character's prompt to the job's face-pass prompt for that character's
    faces (and its negative to the job's negative), so each face in a shot gets its own words.
    """
    out: dict[str, dict[str, str]] = {}
    for character_id, name, entry in _per_character(data, "character_prompts", CHARACTER_PROMPT_KEYS,
                                                    "prompt and/or negative_prompt"):
        texts = {}
        for key, value in entry.items():
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:  # empty is fine: "no words"
                raise ContractError(f"{name}.{key} must be a string of at most {MAX_TEXT} characters", f"{name}.{key}")
            texts[key] = check_text(value, f"{name}.{key}")
        out[character_id] = texts
    return out


@dataclass(frozen=True)
class JobRequest:
    """The JSON part of ``POST /v1/jobs`` (the image, sidecar and reference files travel beside it).

    ``package_path``: a package folder the server can read; ``package_id``: a character id in the
    server's library; or neither, with the package's files uploaded as ``references``. That is the
    default package. ``packages`` maps a character id (the render sidecar's faces carry one) to its
    own package, ``{"package_path": ...}`` or ``{"package_id": ...}``: each face is bumped with its
    character's package, faces of other characters (or detected, unknown faces) with the default.
    ``character_prompts`` maps a character id to ``{"prompt", "negative_prompt"}``: that character's
    faces are bumped with the job's face-pass prompt followed by its own (the whole-image pass keeps
    the job's). ``client_key`` makes a submission idempotent: sending it again returns the same job.
    """

    params: dict[str, Any] = field(default_factory=dict)
    package_path: str | None = None
    package_id: str | None = None
    label: str = ""
    client_key: str | None = None
    packages: dict[str, dict[str, str]] = field(default_factory=dict)
    character_prompts: dict[str, dict[str, str]] = field(default_factory=dict)

    FIELDS = frozenset({"schema", "schema_version", "params", "package_path", "package_id", "label", "client_key",
                        "packages", "character_prompts"})

    def to_dict(self) -> dict[str, Any]:
        data = {"schema": REQUEST_SCHEMA, "schema_version": CONTRACT_VERSION, "params": dict(self.params),
                "package_path": self.package_path, "package_id": self.package_id, "label": self.label,
                "client_key": self.client_key}
        if self.packages:  # only when used, so a request without it still suits an older server
            data["packages"] = {cid: dict(ref) for cid, ref in self.packages.items()}
        if self.character_prompts:  # the same: only when used
            data["character_prompts"] = {cid: dict(entry) for cid, entry in self.character_prompts.items()}
        return data

    @classmethod
    def from_dict(cls, data: Any) -> JobRequest:
        if not isinstance(data, dict):
            raise ContractError("the job request must be a JSON object", "request")
        _reject_unknown(data, cls.FIELDS, "")
        if data.get("schema", REQUEST_SCHEMA) != REQUEST_SCHEMA:
            raise ContractError(f"schema must be {REQUEST_SCHEMA!r}, got {shown(data.get('schema'))}", "schema")
        version = data.get("schema_version", CONTRACT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= CONTRACT_VERSION:
            raise ContractError(f"schema_version must be 1..{CONTRACT_VERSION}, got {shown(version)}", "schema_version")
        strings = {}
        for key, limit in (("package_path", 4096), ("package_id", 200), ("label", MAX_LABEL), ("client_key", 128)):
            value = data.get(key)
            if value is None or (key == "label" and value == ""):
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > limit or "\x00" in value:
                raise ContractError(f"{key} must be a non-empty string of at most {limit} characters", key)
            strings[key] = check_text(value, key)
        if "package_path" in strings and "package_id" in strings:
            raise ContractError("give package_path or package_id, not both", "package_id")
        return cls(params=validate_params(data.get("params")), package_path=strings.get("package_path"),
                   package_id=strings.get("package_id"), label=strings.get("label", ""),
                   client_key=strings.get("client_key"), packages=validate_packages(data.get("packages")),
                   character_prompts=validate_character_prompts(data.get("character_prompts")))


# -- status and result -----------------------------------------------------------------------
@dataclass(frozen=True)
class FileInfo:
    """One result file: ``kind`` is image, mask, record, face, face_input or result."""

    name: str
    kind: str
    bytes: int
    sha256: str
    url: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileInfo:
        return cls(name=str(data["name"]), kind=str(data["kind"]), bytes=int(data["bytes"]),
                   sha256=str(data["sha256"]), url=str(data["url"]))


@dataclass(frozen=True)
class JobStatus:
    """What ``GET /v1/jobs/{id}`` returns (and every server-sent event carries)."""

    id: str
    state: JobState
    created: str
    label: str = ""
    queue_position: int | None = None  # 0 = next to run; None once started
    progress: float = 0.0  # 0..1 over all sampler steps of the job
    step: int = 0
    steps: int = 0
    stage: str = "queued"
    stage_label: str = "queued"  # e.g. "face pass 2/3"
    eta_s: float | None = None
    error: str | None = None
    started: str | None = None
    finished: str | None = None
    attempts: int = 0
    files: tuple[FileInfo, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    pruned: bool = False

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": STATUS_SCHEMA, "schema_version": CONTRACT_VERSION, "id": self.id, "state": self.state,
            "created": self.created, "label": self.label, "queue_position": self.queue_position,
            "progress": self.progress, "step": self.step, "steps": self.steps, "stage": self.stage,
            "stage_label": self.stage_label, "eta_s": self.eta_s, "error": self.error, "started": self.started,
            "finished": self.finished, "attempts": self.attempts,
            "files": [f.__dict__.copy() for f in self.files], "timings": dict(self.timings), "pruned": self.pruned,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobStatus:
        if not isinstance(data, dict) or data.get("schema") != STATUS_SCHEMA:
            raise ContractError("not a job status document", "schema")
        if data.get("state") not in STATES:
            raise ContractError(f"unknown job state {data.get('state')!r}", "state")
        return cls(
            id=str(data["id"]), state=JobState(data["state"]), created=str(data["created"]), label=data.get("label") or "",
            queue_position=data.get("queue_position"), progress=float(data.get("progress", 0.0)),
            step=int(data.get("step", 0)), steps=int(data.get("steps", 0)), stage=str(data.get("stage", "")),
            stage_label=str(data.get("stage_label", "")), eta_s=data.get("eta_s"), error=data.get("error"),
            started=data.get("started"), finished=data.get("finished"), attempts=int(data.get("attempts", 0)),
            files=tuple(FileInfo.from_dict(f) for f in data.get("files") or ()),
            timings={k: float(v) for k, v in (data.get("timings") or {}).items()}, pruned=bool(data.get("pruned")),
        )


def error_document(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """Every 4xx/5xx body: ``{"error": {"status", "code", "message", "field"}}`` (always encodable: a lone
    surrogate quoted from the input is written as an escape)."""
    text = printable(message)
    return {"error": {"status": status, "code": code, "message": text if len(text) <= 2000 else text[:1997] + "...",
                      "field": short(field, 200) if field is not None else None}}
