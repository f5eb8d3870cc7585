"""Accepting a submission: check everything that can be checked cheaply, write it durably, queue it.

Runs on a request thread (off the event loop), never on the GPU worker. Image sizes are read from
headers first (a bomb is refused before any decoding), then every image is decoded once, within
the pixel limit, with the command line's own check (:func:`check_image`), so a truncated or
corrupt file is refused here with a 4xx naming the field instead of failing later as a job.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bump_backend.generate.inputs import InputError, check_image, check_package
from bump_backend.sequence.job import SequenceJob
from bump_backend.sequence.sources import SourceError
from bump_backend.server.config import ServerConfig
from bump_backend.server.generator import to_settings
from bump_backend.server.images import InputImageError, decode_exr, inspect_image
from bump_backend.server.jobs import Job
from bump_backend.server.store import JobStore, fsync_dir
from bump_backend.server.worker import Scheduler
from bump_contracts import render_sidecar, safe_json
from bump_contracts.bump_job import FILE_NAME_RE, ContractError, JobRequest, JobStatus
from bump_contracts.package_manifest import MANIFEST_NAME, PackageManifest, ViewRecord, file_sha256
from bump_contracts.sequence_job import (
    FRAMES_ZIP_FIELD,
    FRAMES_ZIP_MAX_MEMBERS,
    FRAMES_ZIP_METHODS,
    SequenceRequest,
    frames_zip_member_problem,
)
from character_library.api import Library

log = logging.getLogger("bump_backend.server.intake")
PACKAGE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Rejected(Exception):
    """A submission refused with an HTTP status, an error code and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.field = status, code, field


@dataclass
class Upload:
    """One uploaded file: its client-side name and a readable binary stream."""

    filename: str
    stream: BinaryIO


def _copy(upload: Upload, target: Path) -> None:
    upload.stream.seek(0)
    with open(target, "wb") as out:
        shutil.copyfileobj(upload.stream, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _safe_name(name: str, field: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/"))
    if not FILE_NAME_RE.match(base):
        raise Rejected(422, "bad_file_name", f"{field}: file name {name!r} is not allowed (letters, digits, . _ -)",
                       field)
    return base


def _check_package(folder: Path, field: str) -> None:
    try:
        check_package(folder, field)  # the command line's own check, the same words
    except InputError as exc:
        raise Rejected(422, "bad_package", str(exc), field) from None


def _resolve_package_path(config: ServerConfig, value: str, field: str = "package_path") -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise Rejected(422, "bad_package", f"{field} must be an absolute path on the server's machine", field)
    path = path.resolve()
    if config.package_roots and not any(path.is_relative_to(Path(r).resolve()) for r in config.package_roots):
        raise Rejected(403, "package_outside_roots", f"{field} is outside the server's package roots", field)
    if not path.is_dir():
        raise Rejected(422, "bad_package", f"{field} {value}: no such folder on the server", field)
    _check_package(path, field)
    return path


def _resolve_package_id(config: ServerConfig, package_id: str, field: str = "package_id") -> Path:
    if not PACKAGE_ID_RE.match(package_id):
        raise Rejected(422, "bad_package", f"{field} may hold letters, digits, . _ - only", field)
    if config.library is not None:
        try:
            library = Library.open(config.library, create=False)
            try:
                return Path(library.get_package(package_id).path)
            finally:
                library.close()
        except (ImportError, LookupError, ValueError, OSError) as exc:
            raise Rejected(404, "unknown_package", f"{field} {package_id!r}: {exc}", field) from None
    folder = config.data_dir / "packages" / package_id
    if not (folder / "package.json").is_file():
        raise Rejected(404, "unknown_package", f"{field} {package_id!r}: not in {folder.parent} (and the server "
                       "has no --library)", field)
    return folder


def _resolve_character_packages(config: ServerConfig, packages: dict[str, dict[str, str]]) -> dict[str, dict]:
    """``request.packages`` resolved like the default package: {character id: {kind, id?, path}}."""
    resolved: dict[str, dict] = {}
    for character_id, ref in packages.items():
        where = f"packages.{character_id}"
        if "package_path" in ref:
            path = _resolve_package_path(config, ref["package_path"], f"{where}.package_path")
            resolved[character_id] = {"kind": "path", "path": str(path)}
        else:
            path = _resolve_package_id(config, ref["package_id"], f"{where}.package_id")
            resolved[character_id] = {"kind": "id", "id": ref["package_id"], "path": str(path)}
    return resolved


def _check_decodes(path: Path, kind: str, max_pixels: int, field: str, what: str) -> None:
    """Every pixel of an upload decodes (its header was already checked); raises Rejected naming ``field``."""
    try:
        if kind == "exr":
            decode_exr(path)
        else:
            check_image(path, what, shown="(upload)", max_pixels=max_pixels)
    except InputError as exc:
        raise Rejected(422, "bad_image", str(exc), field) from None
    except InputImageError as exc:
        raise Rejected(exc.status, exc.code, str(exc), field) from None  # names the upload "image", no path


def _store_references(config: ServerConfig, refs: list[Upload], folder: Path) -> Path:
    """Uploaded package files: ``package.json`` plus its views, or bare images (a manifest is written)."""
    limits = config.limits
    if len(refs) > limits.max_references + 1:
        raise Rejected(422, "too_many_references", f"references: at most {limits.max_references} images", "references")
    folder.mkdir(parents=True)
    names: set[str] = set()
    manifest = None
    images: list[tuple[str, int, int]] = []
    for ref in refs:
        name = _safe_name(ref.filename, "references")
        if name in names:
            raise Rejected(422, "duplicate_reference", f"references: {name} given twice", "references")
        names.add(name)
        _copy(ref, folder / name)
        if name == "package.json":
            manifest = folder / name
            continue
        try:
            kind, w, h = inspect_image(folder / name, max_pixels=limits.max_reference_pixels, min_side=limits.min_side,
                                       what=f"references/{name}")
        except InputImageError as exc:
            raise Rejected(exc.status, exc.code, str(exc), "references") from None
        if kind == "exr":
            raise Rejected(415, "unsupported_type", f"references/{name}: package views must be PNG, JPEG or WebP",
                           "references")
        _check_decodes(folder / name, kind, limits.max_reference_pixels, "references", f"references/{name}")
        images.append((name, w, h))
    if not images:
        raise Rejected(422, "bad_package", "references: no package images were uploaded", "references")
    if manifest is None:
        views = tuple(
            ViewRecord(name=re.sub(r"[^a-z0-9_]", "_", f"v{i}_{Path(n).stem.lower()}")[:48], file=n, yaw=0.0,
                       pitch=0.0, roll=0.0, width=w, height=h, sha256=file_sha256(folder / n), estimated=True)
            for i, (n, w, h) in enumerate(images))
        doc = PackageManifest(character_id="uploaded", character_name="Uploaded references", views=views,
                              contact_sheet=None, origin="imported", source={"kind": "upload"})
        (folder / MANIFEST_NAME).write_text(doc.dumps(), encoding="utf-8")
    _check_package(folder, "references")
    fsync_dir(folder)
    return folder


def _parse_request(text: str, parse: Callable[[Any], Any], config: ServerConfig) -> Any:
    """The request document (safe JSON, then its contract, then its bump settings within this server's
    limits), or the 422 that names the field."""
    try:
        data = safe_json.loads(text, "request")
    except ContractError as exc:
        raise Rejected(422, "bad_request_json", str(exc), exc.field) from None
    try:
        request = parse(data)
    except ContractError as exc:
        raise Rejected(422, "bad_request", str(exc), exc.field or "request") from None
    try:
        to_settings(getattr(request, "job", request).params, config.limits)
    except ContractError as exc:
        raise Rejected(422, "bad_params", str(exc), exc.field) from None
    return request


def _one_identity_source(request: JobRequest, references: list[Upload]) -> None:
    """A job's package is a path, a library id or uploaded files: never two of them."""
    if references and (request.package_path or request.package_id):
        raise Rejected(422, "bad_package", "give package_path, package_id or reference files, not several",
                       "references")


def accept(config: ServerConfig, store: JobStore, scheduler: Scheduler, request_text: str, image: Upload,
           sidecar: Upload | None, references: list[Upload], received: float) -> tuple[JobStatus, bool]:
    """Validate, write and queue one submission; return (its status, created). Raises Rejected."""
    request = _parse_request(request_text, JobRequest.from_dict, config)
    _one_identity_source(request, references)

    existing = _reserve(scheduler, request.client_key)
    if existing is not None:
        return existing.status(), False
    incoming = None
    try:
        job_id = store.new_id()
        incoming = store.incoming(job_id)
        inputs = incoming / "input"
        image_path = inputs / "image"
        _copy(image, image_path)
        limits = config.limits
        try:
            kind, _w, _h = inspect_image(image_path, max_pixels=limits.max_pixels, min_side=limits.min_side)
        except InputImageError as exc:
            raise Rejected(exc.status, exc.code, str(exc), "image") from None
        _check_decodes(image_path, kind, limits.max_pixels, "image", "image")
        image_name = f"image.{kind}"
        os.replace(image_path, inputs / image_name)
        if sidecar is not None:
            _copy(sidecar, inputs / "sidecar.json")
            try:
                render_sidecar.loads((inputs / "sidecar.json").read_bytes())
            except ContractError as exc:
                field = exc.field if exc.field and exc.field.startswith("sidecar") else \
                    f"sidecar.{exc.field}" if exc.field else "sidecar"
                raise Rejected(422, "bad_sidecar", f"sidecar: {exc}", field) from None
        package = _default_package(config, store, request, references, job_id, inputs)
        packages = _resolve_character_packages(config, request.packages)
        job = Job(id=job_id, seq=store.next_seq(), request=request, folder=incoming, image_name=image_name,
                  image_type=kind, package=package, has_sidecar=sidecar is not None, packages=packages)
        store.commit(job, incoming)
        incoming = None
    except BaseException:
        scheduler.release(request.client_key)
        if incoming is not None:
            store.discard_incoming(incoming)
        raise
    job.marks["accepted"] = time.perf_counter()
    job.timings["accept_s"] = round(job.marks["accepted"] - received, 4)
    return scheduler.enqueue(job), True


def _default_package(config: ServerConfig, store: JobStore, request: JobRequest, references: list[Upload],
                     job_id: str, inputs: Path) -> dict:
    """The request's default package as the job records it: {"kind", "id"?, "path"}."""
    if request.package_path:
        return {"kind": "path", "path": str(_resolve_package_path(config, request.package_path))}
    if request.package_id:
        return {"kind": "id", "id": request.package_id, "path": str(_resolve_package_id(config, request.package_id))}
    if references:
        _store_references(config, references, inputs / "package")
        return {"kind": "upload", "path": str(store.root / job_id / "input" / "package")}
    return {"kind": "none", "path": None}


def _resolve_frames_path(config: ServerConfig, value: str) -> Path:
    """A frame folder on the server's machine: absolute, under the package roots when they are set."""
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise Rejected(422, "bad_frames_path", "frames_path must be an absolute path on the server's machine",
                       "frames_path")
    path = path.resolve()
    if config.package_roots and not any(path.is_relative_to(Path(r).resolve()) for r in config.package_roots):
        raise Rejected(403, "frames_outside_roots", "frames_path is outside the server's package roots", "frames_path")
    if not path.is_dir():
        raise Rejected(422, "bad_frames_path", f"frames_path {value}: no such folder on the server", "frames_path")
    return path


def accept_sequence(config: ServerConfig, store: JobStore, scheduler: Scheduler, request_text: str,
                    video: Upload | None, references: list[Upload], received: float,
                    frames_zip: Upload | None = None) -> tuple[JobStatus, bool]:
    """Validate, write and queue one sequence (a video upload, ``frames_path`` or a ``frames_zip``
    upload). Raises Rejected.

    The sequence settings, the bump settings, the packages, a frames ZIP's every member and the
    input's header (frame count, sizes, a folder's gaps) are all checked here, so a bad field is a
    4xx before anything runs.
    """
    request = _parse_request(request_text, SequenceRequest.from_dict, config)
    if request.frames_zip != (frames_zip is not None):
        raise Rejected(422, "bad_input", "frames_zip: the request's frames_zip flag and the frames_zip part go "
                       "together (set frames_zip true and send the part, or neither)", FRAMES_ZIP_FIELD)
    given = [name for name, present in (("video", video is not None), ("frames_path", request.frames_path is not None),
                                        (FRAMES_ZIP_FIELD, frames_zip is not None)) if present]
    if len(given) != 1:
        raise Rejected(422, "bad_input", "give a video file, frames_path or frames_zip (one of them)"
                       + (f", not {' and '.join(given)}" if given else ""), given[-1] if given else "video")
    _one_identity_source(request.job, references)
    frames = _resolve_frames_path(config, request.frames_path) if request.frames_path else None

    existing = _reserve(scheduler, request.job.client_key)
    if existing is not None:
        return existing.status(), False
    incoming = None
    try:
        job_id = store.new_id()
        incoming = store.incoming(job_id)
        inputs = incoming / "input"
        if video is not None:
            # stored as video.<ext>: the client's name never meets our own names under input/
            name = "video" + Path(_safe_name(video.filename or "video.mp4", "video")).suffix.lower()
            _copy(video, inputs / name)
            source, field, kind = inputs / name, "video", "video"
            final_source = store.root / job_id / "input" / name
        elif frames_zip is not None:
            source = _unpack_frames_zip(config, frames_zip, inputs)
            final_source = store.root / job_id / "input" / source.name
            name, field, kind = "", FRAMES_ZIP_FIELD, "frames"
        else:
            source = final_source = frames
            name, field, kind = "", "frames_path", "frames"
        package = _default_package(config, store, request.job, references, job_id, inputs)
        packages = _resolve_character_packages(config, request.job.packages)
        # an uploaded package is checked where it is now (the job's path is where it will be once queued)
        checked_package = str(inputs / "package") if package["kind"] == "upload" else package["path"]
        try:  # the job's own checks: the input's header, the packages, "a video needs a package"
            SequenceJob(source, incoming / "sequence", request.sequence, log=None,
                        package=checked_package, packages={c: e["path"] for c, e in packages.items()})
        except SourceError as exc:
            raise Rejected(422, "bad_input", str(exc), field) from None
        except (ContractError, ValueError) as exc:
            raise Rejected(422, "bad_sequence", str(exc), "package_path") from None
        except Exception as exc:  # a decoder's own error on a hostile upload: the client's input, not a 500
            log.warning("sequence input refused: %s: %s", type(exc).__name__, exc)
            raise Rejected(422, "bad_input", f"{field}: not a readable {kind} ({type(exc).__name__}: {exc})",
                           field) from None
        job = Job(id=job_id, seq=store.next_seq(), request=request.job, folder=incoming, image_name=name,
                  image_type=kind, package=package, packages=packages, sequence=request,
                  sequence_input=str(final_source))
        store.commit(job, incoming)
        incoming = None
    except BaseException:
        scheduler.release(request.job.client_key)
        if incoming is not None:
            store.discard_incoming(incoming)
        raise
    job.marks["accepted"] = time.perf_counter()
    job.timings["accept_s"] = round(job.marks["accepted"] - received, 4)
    return scheduler.enqueue(job), True


def _zip_refused(message: str) -> Rejected:
    return Rejected(422, "bad_frames_zip", f"{FRAMES_ZIP_FIELD}: {message}", FRAMES_ZIP_FIELD)


def _unpack_frames_zip(config: ServerConfig, upload: Upload, inputs: Path) -> Path:
    """A ``frames_zip`` upload unpacked into ``inputs/frames``; every member is checked before one is
    written (the contract's name, type and size rules, no links, no encryption, stored or deflated
    only, no duplicates, the total within the server's limit), and the bytes are counted as they
    are unpacked, so a header that lies cannot blow up the disk. Raises Rejected naming frames_zip."""
    archive_path = inputs / "frames.zip"
    _copy(upload, archive_path)
    target = inputs / "frames"
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _zip_refused(f"not a readable ZIP archive ({exc})") from None
    with archive:
        infos = archive.infolist()
        if not infos:
            raise _zip_refused("the archive is empty")
        if len(infos) > FRAMES_ZIP_MAX_MEMBERS:
            raise _zip_refused(f"{len(infos)} members, more than {FRAMES_ZIP_MAX_MEMBERS}")
        seen: set[str] = set()
        total = 0
        for info in infos:
            mode = info.external_attr >> 16 if info.create_system == 3 else 0  # Unix attributes only
            if info.create_system != 3 and info.external_attr & 0x400:  # a Windows reparse point (a link)
                mode = stat.S_IFLNK
            problem = frames_zip_member_problem(info.filename, info.file_size, mode)
            if problem is not None:
                raise _zip_refused(problem)
            if info.flag_bits & 0x1:
                raise _zip_refused(f"{info.filename!r}: encrypted")
            if info.compress_type not in FRAMES_ZIP_METHODS:
                raise _zip_refused(f"{info.filename!r}: compression method {info.compress_type} (stored or "
                                   "deflated only)")
            key = info.filename.rstrip("/").lower()  # one name, whatever the case, on every file system
            if key in seen:
                raise _zip_refused(f"{info.filename!r}: given twice")
            seen.add(key)
            total += info.file_size
        limit = config.limits.max_frames_unpacked_bytes
        if total > limit:
            raise _zip_refused(f"{total} bytes unpacked, more than this server's {limit}")
        target.mkdir()
        written_total = 0
        try:
            for info in infos:
                dest = target.joinpath(*info.filename.rstrip("/").split("/"))
                if not dest.resolve().is_relative_to(target.resolve()):  # the names were checked: belt and braces
                    raise _zip_refused(f"{info.filename!r}: a path leaving its folder")
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with archive.open(info) as src, open(dest, "xb") as out:
                    while block := src.read(1 << 20):
                        written += len(block)
                        written_total += len(block)
                        if written > info.file_size or written_total > limit:
                            raise _zip_refused(f"{info.filename!r}: more bytes than its header declares")
                        out.write(block)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise _zip_refused(f"cannot unpack it ({type(exc).__name__}: {exc})") from None
    archive_path.unlink()
    fsync_dir(target)
    return target


def _reserve(scheduler: Scheduler, client_key: str | None) -> Job | None:
    from bump_backend.server.worker import QueueFull

    try:
        return scheduler.reserve(client_key)
    except QueueFull as exc:
        raise Rejected(429, "queue_full", str(exc)) from None
