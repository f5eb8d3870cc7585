"""The sequence job's own parameters (what a video or frame folder adds to a bump): rules once.

Stdlib only, like ``bump_job``: the command line reads its defaults and ranges from here, and the
server and the add-on will validate the same table. The bump parameters themselves (steps, CFG,
denoise...) stay in ``bump_job.PARAMS``.
"""

from __future__ import annotations

import math
import numbers
import re
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

from bump_contracts.bump_job import CONTRACT_VERSION, JobRequest, ParamRule
from bump_contracts.bump_record import ModelRecord
from bump_contracts.errors import ContractError
from bump_contracts.safe_json import check_text, shown

RECORD_SCHEMA = "bump-sequence-record"
SEQUENCE_REQUEST_SCHEMA = "bump-sequence-request"
# what a finished sequence job serves (``kind`` in the job status's files)
SEQUENCE_FILES = {"sequence.mp4": "video", "frames.zip": "frames", "sequence.json": "sequence_record",
                  "before_after.png": "strip"}
RECORD_VERSION = 1
# 1: a video part or frames_path; 2: adds frames_zip (the frame folder uploaded as one ZIP part)
SEQUENCE_REQUEST_VERSION = 2
REFERENCE_MODES = ("package", "auto")
VIDEO_CODECS = ("libx264",)
PIXEL_FORMATS = ("yuv420p", "yuv444p")

# -- the frames_zip part: a frame folder (frames, sidecars, .flow.npy motion; or a clip folder's clip.json,
# frames/, sidecars/, vectors/) uploaded as one ZIP. The client packs only these; the server checks every
# member before it writes one byte, and counts the bytes it unpacks (a member's header is not trusted).
FRAMES_ZIP_FIELD = "frames_zip"
FRAMES_ZIP_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".json", ".npy")
FRAMES_ZIP_MAX_MEMBERS = 20_000
FRAMES_ZIP_MAX_MEMBER_BYTES = 256 * 1024 * 1024  # a 4K clip frame's float32 motion vectors are 151 MiB
FRAMES_ZIP_MAX_DEPTH = 2  # clip.json, frames/frame_0001.png
FRAMES_ZIP_METHODS = (0, 8)  # stored, deflated
_MEMBER_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def frames_zip_member_problem(name: str, size: int, mode: int = 0) -> str | None:
    """Why one member of a frames ZIP is refused (None: fine). ``name`` as stored in the archive,
    ``size`` its declared unpacked size, ``mode`` the Unix mode from its external attributes (0: none).
    Refused: absolute paths, ``..``, backslashes, drive letters, hidden or odd names, folders deeper
    than ``FRAMES_ZIP_MAX_DEPTH``, file types a frame folder does not hold, symbolic links and other
    special files, members over ``FRAMES_ZIP_MAX_MEMBER_BYTES``."""
    shown_name = name if len(name) <= 120 else name[:117] + "..."
    if not name or "\\" in name or "\x00" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return f"{shown_name!r}: not a relative path inside the archive"
    parts = PurePosixPath(name.rstrip("/")).parts
    if any(part in ("..", ".") for part in parts) or not parts:
        return f"{shown_name!r}: a path leaving its folder ('..')"
    if not all(_MEMBER_PART.match(part) for part in parts):
        return f"{shown_name!r}: names may hold letters, digits, . _ - only (no hidden files)"
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        return f"{shown_name!r}: a symbolic link"
    if name.endswith("/"):
        if kind not in (0, stat.S_IFDIR) or len(parts) >= FRAMES_ZIP_MAX_DEPTH:
            return f"{shown_name!r}: not an expected folder"
        return None
    if kind not in (0, stat.S_IFREG):
        return f"{shown_name!r}: not a regular file"
    if len(parts) > FRAMES_ZIP_MAX_DEPTH:
        return f"{shown_name!r}: deeper than {FRAMES_ZIP_MAX_DEPTH} levels"
    if PurePosixPath(name).suffix.lower() not in FRAMES_ZIP_SUFFIXES:
        return f"{shown_name!r}: not a frame, sidecar or motion file ({', '.join(FRAMES_ZIP_SUFFIXES)})"
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= FRAMES_ZIP_MAX_MEMBER_BYTES:
        return f"{shown_name!r}: {size} bytes unpacked, more than {FRAMES_ZIP_MAX_MEMBER_BYTES} allowed per file"
    return None

SEQUENCE_PARAMS: dict[str, ParamRule] = {
    "references": ParamRule("str", choices=REFERENCE_MODES, note="auto: the track's own best frames", default="package"),
    "reference_views": ParamRule("int", 1, 8, default=3),
    "temporal_strength": ParamRule("float", 0.0, 1.0, note="share of the previous bumped face in the start", default=0.5),
    "temporal_fuse": ParamRule("float", 0.0, 0.95, note="share of the previous bumped face kept in the result", default=0.7),
    "smooth": ParamRule("float", 0.0, 10.0, note="Gaussian sigma in frames over detected faces; 0 = off", default=3.0),
    "min_face": ParamRule("float", 0.0, 4096.0, note="face size in px from which a face is bumped", default=32.0),
    "min_sharpness": ParamRule("float", 0.0, 1000.0, note="sharpness from which a face is bumped", default=22.0),
    "hysteresis": ParamRule("float", 0.5, 1.0, note="a bumped face stays bumped down to this share of the limits", default=0.8),
    "detect_every": ParamRule("int", 1, 100, note="footage: full face detection every N frames, FaceTracker's "
                              "window re-check in between", default=5),
    "fps": ParamRule("float", 1.0, 240.0, note="frame rate of a frame folder", default=24.0),
    "crf": ParamRule("int", 0, 51, note="H.264 quality: lower is better, 18 is visually lossless", default=18),
    "codec": ParamRule("str", choices=VIDEO_CODECS, default="libx264"),
    "pixel_format": ParamRule("str", choices=PIXEL_FORMATS, default="yuv420p"),
    "video": ParamRule("bool", default=True),
    "png": ParamRule("bool", default=True),
    "temporal": ParamRule("bool", default=True),
}


@dataclass(frozen=True)
class SequenceParams:
    """Defaults: identity from a package, half of the previous result in the start and 70 % kept in the
    result along the motion, 3-frame (sigma) smoothing,
    the face finder's size/sharpness limits (32 px, 22) with 0.8 hysteresis, footage detected in full
    every 5 frames (a face that reappears after an occlusion is found at most 4 frames late), H.264
    CRF 18 yuv420p."""

    references: str = SEQUENCE_PARAMS["references"].default
    reference_views: int = SEQUENCE_PARAMS["reference_views"].default
    temporal_strength: float = SEQUENCE_PARAMS["temporal_strength"].default
    temporal_fuse: float = SEQUENCE_PARAMS["temporal_fuse"].default
    smooth: float = SEQUENCE_PARAMS["smooth"].default
    min_face: float = SEQUENCE_PARAMS["min_face"].default
    min_sharpness: float = SEQUENCE_PARAMS["min_sharpness"].default
    hysteresis: float = SEQUENCE_PARAMS["hysteresis"].default
    detect_every: int = SEQUENCE_PARAMS["detect_every"].default
    fps: float = SEQUENCE_PARAMS["fps"].default
    crf: int = SEQUENCE_PARAMS["crf"].default
    codec: str = SEQUENCE_PARAMS["codec"].default
    pixel_format: str = SEQUENCE_PARAMS["pixel_format"].default
    video: bool = SEQUENCE_PARAMS["video"].default
    png: bool = SEQUENCE_PARAMS["png"].default
    temporal: bool = SEQUENCE_PARAMS["temporal"].default

    def __post_init__(self) -> None:
        for f in fields(self):
            check_sequence_param(f.name, getattr(self, f.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceParams:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ContractError(f"sequence: unknown field(s) {', '.join(sorted(unknown))}", "sequence")
        return cls(**data)


@dataclass(frozen=True)
class SequenceRequest:
    """The JSON part of ``POST /v1/sequences``: a bump request plus the sequence's own settings.

    Every field of :class:`~bump_contracts.bump_job.JobRequest` (``params`` for the face pass,
    the package fields, ``label``, ``client_key``) plus ``sequence`` (:class:`SequenceParams`,
    defaults for what is left out) and one input: ``frames_path``, a frame folder on the server's
    machine under its package roots; ``frames_zip`` true (version 2), the frame folder uploaded
    as a ``frames_zip`` part; or neither, a ``video`` part beside the JSON.
    """

    job: JobRequest = field(default_factory=JobRequest)
    sequence: SequenceParams = field(default_factory=SequenceParams)
    frames_path: str | None = None
    frames_zip: bool = False

    def __post_init__(self) -> None:
        if self.frames_zip and self.frames_path is not None:
            raise ContractError("give frames_path or frames_zip, not both", FRAMES_ZIP_FIELD)

    def to_dict(self) -> dict[str, Any]:
        data = self.job.to_dict()
        # version 1 when frames_zip is not used, so a request without it still suits an older server
        data.update(schema=SEQUENCE_REQUEST_SCHEMA, schema_version=SEQUENCE_REQUEST_VERSION if self.frames_zip
                    else CONTRACT_VERSION, sequence=self.sequence.to_dict(), frames_path=self.frames_path)
        if self.frames_zip:
            data[FRAMES_ZIP_FIELD] = True
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SequenceRequest:
        if not isinstance(data, dict):
            raise ContractError("the sequence request must be a JSON object", "request")
        if data.get("schema", SEQUENCE_REQUEST_SCHEMA) != SEQUENCE_REQUEST_SCHEMA:
            raise ContractError(f"schema must be {SEQUENCE_REQUEST_SCHEMA!r}, got {shown(data.get('schema'))}",
                                "schema")
        version = data.get("schema_version", CONTRACT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SEQUENCE_REQUEST_VERSION:
            raise ContractError(f"schema_version must be 1..{SEQUENCE_REQUEST_VERSION}, got {shown(version)}",
                                "schema_version")
        rest = {k: v for k, v in data.items()
                if k not in ("schema", "schema_version", "sequence", "frames_path", FRAMES_ZIP_FIELD)}
        job = JobRequest.from_dict(rest)
        settings = data.get("sequence") or {}
        if not isinstance(settings, dict):
            raise ContractError("sequence must be an object of sequence settings", "sequence")
        try:
            sequence = SequenceParams.from_dict(settings)
        except ContractError as exc:
            where = f"sequence.{exc.field}" if exc.field and exc.field != "sequence" else "sequence"
            raise ContractError(str(exc) if str(exc).startswith("sequence") else f"sequence.{exc}", where) from None
        except TypeError as exc:
            raise ContractError(f"sequence: {exc}", "sequence") from None
        frames = data.get("frames_path")
        if frames is not None and (not isinstance(frames, str) or not frames.strip() or len(frames) > 4096):
            raise ContractError("frames_path must be a non-empty string of at most 4096 characters", "frames_path")
        upload = data.get(FRAMES_ZIP_FIELD, False)
        if not isinstance(upload, bool):
            raise ContractError(f"{FRAMES_ZIP_FIELD} must be true or false, got {shown(upload)}", FRAMES_ZIP_FIELD)
        if upload and version < 2:
            raise ContractError(f"{FRAMES_ZIP_FIELD} needs schema_version 2, got {version}", FRAMES_ZIP_FIELD)
        return cls(job=job, sequence=sequence,
                   frames_path=check_text(frames, "frames_path") if frames is not None else None, frames_zip=upload)


def check_sequence_param(name: str, value: Any) -> Any:
    rule = SEQUENCE_PARAMS[name]
    bad = ContractError(f"{name} must be {rule.describe()}, got {value!r}", name)
    if rule.choices:
        if value not in rule.choices:
            raise bad
    elif rule.kind == "bool":
        if not isinstance(value, bool):
            raise bad
    elif rule.kind in ("int", "float"):
        kind = numbers.Integral if rule.kind == "int" else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            raise bad
        if (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high):
            raise bad
    return value


def sequence_history_fields(record: Any) -> dict[str, Any]:
    """The character library's history run fields a finished sequence record gives (the add-on and
    batch record a bumped frame range with them): the bump settings and the track seed, the model's
    ``name [hash]``, and under ``settings["sequence"]`` the frame and face counts and the sequence
    settings. Raises ContractError when the record is not a finished sequence record."""
    if not isinstance(record, dict) or record.get("schema") != RECORD_SCHEMA:
        raise ContractError(f"not a {RECORD_SCHEMA}", "schema")
    if record.get("mode", "bump") != "bump":
        raise ContractError(f"a {record.get('mode')!r} record bumped nothing", "mode")
    settings, face, params = (record.get(k) or {} for k in ("settings", "face", "params"))
    frames, tracks = record.get("frames") or [], record.get("tracks") or []
    if not all(isinstance(v, dict) for v in (settings, face, params)) or not isinstance(frames, list) \
            or not isinstance(tracks, list) or not all(isinstance(t, dict) for t in tracks):
        raise ContractError("settings, face and params must be objects, frames and tracks lists", "record")
    model = ModelRecord.from_dict(record["model"]).label if record.get("model") else ""
    seed = face.get("seed", settings.get("seed"))
    counts = {"frames": len(frames), "tracks": len(tracks),
              "faces_bumped": sum(int(t.get("bumped") or 0) for t in tracks),
              "resumed_frames": record.get("resumed_frames", 0)}
    return {"seed": seed if isinstance(seed, int) else None, "steps": settings.get("steps"),
            "cfg": settings.get("cfg"), "denoise": settings.get("denoise"),
            "sampler": settings.get("sampler") or "", "model": model, "prompt": settings.get("prompt") or "",
            "negative_prompt": settings.get("negative_prompt") or "",
            "settings": {**settings, "sequence": {**counts, **params}}, "identity_score": None}
