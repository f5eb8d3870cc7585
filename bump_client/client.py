"""Client for the bump backend, for Blender's Python and the headless renderer: stdlib + requests.

Blender must never wait on the GPU: call these from a worker thread and bring results back on
the main thread (``bpy.app.timers``). Only connection failures are retried (a request that may
have reached the server is not sent twice, except a submit, which carries an idempotency key so
a retried submit returns the same job)::

    client = BumpClient("http://127.0.0.1:7861", token=None)
    client.health()                                     # BackendNotRunning with the start command
    job = client.submit("shot.png", params={"prompt": "20-year-old Spanish man", "seed": 42},
                        package="/path/to/package", sidecar="shot.sidecar.json")
    final = client.wait(job.id, on_progress=lambda s: print(s.progress, s.stage_label))
    result = client.download(job.id, "out/")            # JobResult: image, mask, faces, record
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from bump_client.multipart import MultipartBody, Part
from bump_contracts.bump_job import (
    API_PREFIX,
    CANCELLED,
    DEFAULT_PORT,
    DONE,
    FAILED,
    IMAGE_TYPES,
    START_HINT,
    ContractError,
    FileInfo,
    JobRequest,
    JobStatus,
    sniff_image_type,
)
from bump_contracts.health import Health
from bump_contracts.sequence_job import (
    FRAMES_ZIP_FIELD,
    FRAMES_ZIP_MAX_MEMBERS,
    SEQUENCE_REQUEST_SCHEMA,
    SequenceRequest,
    frames_zip_member_problem,
)

__all__ = [
    "AuthError",
    "BackendError",
    "BackendNotRunning",
    "BumpClient",
    "FileInfo",
    "Health",
    "JobCancelled",
    "JobFailed",
    "JobRejected",
    "JobResult",
    "JobStatus",
    "QueueFull",
]

ImageInput = str | os.PathLike | bytes | tuple[str, bytes]
ProgressCallback = Callable[[JobStatus], None]


class BackendError(Exception):
    """Anything that went wrong talking to the backend; the message is for the user."""


class BackendNotRunning(BackendError):
    """Nothing answers at the URL (connection refused, name not found, timed out connecting)."""


class AuthError(BackendError):
    """401: the server wants a token and ours is missing or wrong."""


class JobRejected(BackendError):
    """A 4xx answer: ``status``, ``code`` and the ``field`` at fault, as the server gave them."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status, self.code, self.field, self.reason = status, code, field, message


class QueueFull(JobRejected):
    """429: the server's queue is full; submit again later."""


class JobFailed(BackendError):
    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"job {status.id} failed: {status.error}")
        self.status = status


class JobCancelled(BackendError):
    def __init__(self, status: JobStatus) -> None:
        super().__init__(f"job {status.id} was cancelled")
        self.status = status


@dataclass(frozen=True)
class JobResult:
    """A finished job's files on the local disk."""

    job_id: str
    status: JobStatus
    folder: Path
    files: dict[str, Path]  # file name -> local path
    image: Path
    mask: Path | None = None
    faces: tuple[Path, ...] = ()
    face_inputs: tuple[Path, ...] = ()
    record: dict[str, Any] = field(default_factory=dict)


def _kinds(files: Sequence[FileInfo], kind: str) -> list[str]:
    return sorted((f.name for f in files if f.kind == kind), key=lambda n: (len(n), n))


def _package_files(package: str | os.PathLike | None, upload: bool) -> tuple[str | None, list[Path]]:
    """(the folder path the server reads, or None; the files to upload): a package sent by path or uploaded."""
    if package is None:
        return None, []
    folder = Path(package).expanduser().resolve()
    if not upload:
        return str(folder), []
    return None, [p for p in sorted(folder.iterdir()) if p.is_file() and (
        p.name == "package.json" or p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))]


def _package_refs(packages: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """``JobRequest.packages`` from folders (sent as absolute paths) or ready ``{"package_id": ...}`` refs."""
    refs: dict[str, dict[str, str]] = {}
    for character_id, value in (packages or {}).items():
        if isinstance(value, Mapping):
            refs[str(character_id)] = {str(k): str(v) for k, v in value.items()}
        else:
            refs[str(character_id)] = {"package_path": str(Path(value).expanduser().resolve())}
    return refs


def pack_frames(folder: Path, target: Path | None = None) -> Path:
    """A frame folder as the ZIP the server's ``frames_zip`` part takes (a temporary file unless
    ``target``): every file the contract allows (frames, sidecars, motion; a clip folder's clip.json
    and its frames/, sidecars/, vectors/ folders), images stored as they are, JSON and arrays
    deflated. Anything else in the folder (hidden files, other types, deeper folders) stays here."""
    if not folder.is_dir():
        raise JobRejected(422, "bad_input", f"frames {folder}: no such folder", FRAMES_ZIP_FIELD)
    members: list[tuple[Path, str]] = []
    for path in sorted(folder.iterdir()):
        inside = sorted(path.iterdir()) if path.is_dir() else [path]
        for item in inside:
            name = item.relative_to(folder).as_posix()
            if item.is_file() and frames_zip_member_problem(name, item.stat().st_size) is None:
                members.append((item, name))
    if not any(Path(n).suffix.lower() not in (".json", ".npy") for _, n in members):
        raise JobRejected(422, "bad_input", f"frames {folder}: no frames to upload", FRAMES_ZIP_FIELD)
    if len(members) > FRAMES_ZIP_MAX_MEMBERS:
        raise JobRejected(422, "bad_input", f"frames {folder}: {len(members)} files, more than "
                          f"{FRAMES_ZIP_MAX_MEMBERS} in one upload", FRAMES_ZIP_FIELD)
    if target is None:
        handle, name = tempfile.mkstemp(prefix="bump_frames_", suffix=".zip")
        os.close(handle)
        target = Path(name)
    try:
        with zipfile.ZipFile(target, "w") as archive:
            for item, name in members:
                stored = item.suffix.lower() not in (".json", ".npy")  # images are compressed already
                archive.write(item, name, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _character_prompt_refs(character_prompts: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """``JobRequest.character_prompts`` from ``{"prompt", "negative_prompt"}`` mappings, objects with those
    attributes (``generate.CharacterPrompt``, a library ``Character``'s fields) or a bare prompt string."""
    out: dict[str, dict[str, str]] = {}
    for character_id, value in (character_prompts or {}).items():
        if isinstance(value, str):
            entry: Mapping[str, Any] = {"prompt": value}
        elif isinstance(value, Mapping):
            entry = value
        else:
            entry = {key: getattr(value, key, None) for key in ("prompt", "negative_prompt")}
        out[str(character_id)] = {str(k): v for k, v in entry.items() if v is not None}
    return out


def packages_from_sidecar(sidecar: str | os.PathLike | Mapping[str, Any] | Any) -> dict[str, str]:
    """Character id -> package folder, from the ``package`` field of a render sidecar's faces."""
    if isinstance(sidecar, str) and sidecar.lstrip().startswith("{"):
        sidecar = json.loads(sidecar)
    elif isinstance(sidecar, (str, os.PathLike)):
        sidecar = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    elif hasattr(sidecar, "to_dict"):
        sidecar = sidecar.to_dict()
    return {str(face["character_id"]): str(face["package"]) for face in sidecar.get("faces") or ()
            if isinstance(face, Mapping) and face.get("character_id") and face.get("package")}


class BumpClient:
    """One backend at ``url``. Thread-safe for independent calls (one ``requests.Session`` each call)."""

    def __init__(self, url: str = f"http://127.0.0.1:{DEFAULT_PORT}", token: str | None = None, *,
                 timeout: float = 30.0, connect_timeout: float = 3.05, retries: int = 3, backoff: float = 0.5,
                 session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.session = session or requests.Session()

    # -- plumbing --------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _not_running(self, exc: Exception) -> BackendNotRunning:
        port = urlparse(self.url).port or DEFAULT_PORT
        hint = START_HINT.format(port=port)
        return BackendNotRunning(f"backend not running at {self.url} (start it with: {hint}); {type(exc).__name__}")

    def _request(self, method: str, path: str, *, timeout: float | None = None, stream: bool = False,
                 retry: bool = True, body: MultipartBody | None = None, **kwargs: Any) -> requests.Response:
        """One request, retried on connection failures only. ``body``: a streamed multipart body,
        rewound (its files reopened) for every attempt."""
        attempts = self.retries + 1 if retry else 1
        last: Exception | None = None
        try:
            for attempt in range(attempts):
                headers = self._headers()
                if body is not None:
                    body.rewind()
                    kwargs["data"] = body
                    headers["Content-Type"] = body.content_type
                try:
                    response = self.session.request(method, self.url + path, headers=headers, stream=stream,
                                                    timeout=(self.connect_timeout, timeout or self.timeout), **kwargs)
                except requests.ConnectionError as exc:  # includes ConnectTimeout; a submit carries its client_key
                    last = exc
                    if attempt + 1 < attempts:
                        time.sleep(self.backoff * (2 ** attempt))
                    continue
                except requests.exceptions.ReadTimeout as exc:  # it got the request: never resend
                    raise BackendError(f"{method} {path}: the backend did not answer within "
                                       f"{timeout or self.timeout:.0f} s") from exc
                return self._check(response)
        finally:
            if body is not None:
                body.close()
        raise self._not_running(last or RuntimeError("no answer"))

    @staticmethod
    def _check(response: requests.Response) -> requests.Response:
        if response.status_code < 400:
            return response
        try:
            err = response.json().get("error") or {}
        except ValueError:
            err = {}
        message = err.get("message") or response.text[:300] or response.reason
        code, field_name = err.get("code") or "http", err.get("field")
        if response.status_code == 401:
            raise AuthError(f"{message} (HTTP 401)")
        if response.status_code == 429:
            raise QueueFull(429, code, message, field_name)
        if response.status_code < 500:
            raise JobRejected(response.status_code, code, message, field_name)
        raise BackendError(f"backend error (HTTP {response.status_code}): {message}")

    # -- server ----------------------------------------------------------------------------------
    def health(self) -> Health:
        """The backend's health; raises BackendNotRunning with the command that starts it."""
        try:
            return Health.from_dict(self._request("GET", f"{API_PREFIX}/health", timeout=10).json())
        except (ContractError, ValueError) as exc:
            raise BackendError(f"{self.url} did not answer with a bump backend health document: {exc}") from None

    def is_running(self) -> bool:
        try:
            self.health()
        except BackendError:
            return False
        return True

    def models(self) -> dict[str, Any]:
        return self._request("GET", f"{API_PREFIX}/models").json()

    # -- jobs ------------------------------------------------------------------------------------
    def submit(self, image: ImageInput, params: Mapping[str, Any] | None = None, *,
               sidecar: str | os.PathLike | Mapping[str, Any] | Any | None = None,
               package: str | os.PathLike | None = None, package_id: str | None = None,
               upload_package: bool = False, references: Sequence[str | os.PathLike] | None = None,
               label: str = "", client_key: str | None = None,
               packages: Mapping[str, str | os.PathLike | Mapping[str, str]] | None = None,
               character_prompts: Mapping[str, Mapping[str, str] | str | Any] | None = None) -> JobStatus:
        """Queue a bump; returns at once with the job id and queue position.

        ``image``: a path, bytes, or (filename, bytes). ``package``: a package folder, sent as a
        path the server reads (same machine) or, with ``upload_package=True``, uploaded file by
        file. ``package_id``: a character id in the server's library. ``references``: image
        files to upload as the package. ``sidecar``: a path, a dict, or an object with ``to_dict``.
        ``packages``: a package per character id (the sidecar's faces carry one): a folder the
        server can read, or ``{"package_id": ID}``; other faces use the default package above.
        ``packages_from_sidecar(sidecar)`` builds it from the sidecar's own ``package`` fields.
        ``character_prompts``: per character id, ``{"prompt": ..., "negative_prompt": ...}`` (or a
        prompt string): added to the job's face-pass prompts for that character's faces.
        """
        package_path, package_refs = _package_files(package, upload_package)
        refs = package_refs if package is not None and upload_package else [Path(r) for r in references or ()]
        request = JobRequest(params=dict(params or {}), package_path=package_path, package_id=package_id, label=label,
                             client_key=client_key or uuid.uuid4().hex, packages=_package_refs(packages),
                             character_prompts=_character_prompt_refs(character_prompts))
        try:
            JobRequest.from_dict(request.to_dict())  # the contract's own checks, before any upload
        except ContractError as exc:
            raise JobRejected(422, "bad_request", str(exc), exc.field) from None
        name, data = self._image_bytes(image)
        files: list[tuple[str, tuple[str, Any, str]]] = [
            ("request", (None, json.dumps(request.to_dict()), "application/json")),
            ("image", (name, data, IMAGE_TYPES.get(sniff_image_type(data[:16]) or "", "application/octet-stream"))),
        ]
        if sidecar is not None:
            files.append(("sidecar", ("sidecar.json", self._sidecar_text(sidecar), "application/json")))
        for ref in refs:
            files.append(("references", (ref.name, ref.read_bytes(), "application/octet-stream")))
        response = self._request("POST", f"{API_PREFIX}/jobs", files=files, timeout=max(self.timeout, 120))
        return JobStatus.from_dict(response.json())

    def submit_sequence(self, video: str | os.PathLike | None = None, params: Mapping[str, Any] | None = None, *,
                        frames: str | os.PathLike | None = None, sequence: Mapping[str, Any] | None = None,
                        package: str | os.PathLike | None = None, package_id: str | None = None,
                        upload_package: bool = False, label: str = "", client_key: str | None = None,
                        packages: Mapping[str, str | os.PathLike | Mapping[str, str]] | None = None,
                        upload_frames: bool = False) -> JobStatus:
        """Queue a sequence: a ``video`` file (uploaded, streamed from disk) or a ``frames`` folder,
        read by the server from its own disk (under its package roots), or, with ``upload_frames``,
        packed here into a ZIP (frames, sidecars, ``.flow.npy`` motion; a clip folder's clip.json,
        frames/, sidecars/, vectors/) and uploaded as the ``frames_zip`` part: for a server on
        another machine. ``params``: the bump settings of the face pass; ``sequence``: the
        sequence settings (``bump_contracts.sequence_job.SEQUENCE_PARAMS``). The job is then waited
        for, cancelled and downloaded like a bump (``wait``, ``cancel``, ``download``); its files are
        sequence.mp4, frames.zip, sequence.json and before_after.png.

        Nothing is held in memory whole: the upload is read from disk block by block, and a retried
        POST (same ``client_key``) sends it again from the start.
        """
        if (video is None) == (frames is None):
            raise JobRejected(422, "bad_input", "give a video file or a frames folder (one of them)", "video")
        if upload_frames and frames is None:
            raise JobRejected(422, "bad_input", "upload_frames needs a frames folder", FRAMES_ZIP_FIELD)
        package_path, refs = _package_files(package, upload_package)
        job = JobRequest(params=dict(params or {}), package_path=package_path, package_id=package_id, label=label,
                         client_key=client_key or uuid.uuid4().hex, packages=_package_refs(packages))
        folder = Path(frames).expanduser().resolve() if frames is not None else None
        data = {**job.to_dict(), "schema": SEQUENCE_REQUEST_SCHEMA, "sequence": dict(sequence or {}),
                "frames_path": str(folder) if folder is not None and not upload_frames else None}
        if upload_frames:
            data.update(schema_version=2, frames_zip=True)
        try:
            request = SequenceRequest.from_dict(data)  # the contract's own checks, before any upload
        except ContractError as exc:
            raise JobRejected(422, "bad_request", str(exc), exc.field) from None
        parts = [Part("request", "application/json", data=json.dumps(request.to_dict()).encode())]
        packed: Path | None = None
        try:
            if video is not None:
                path = Path(video).expanduser()
                if not path.is_file():
                    raise JobRejected(422, "bad_input", f"video {path}: no such file", "video")
                parts.append(Part("video", "application/octet-stream", path=path, filename=path.name))
            if upload_frames and folder is not None:
                packed = pack_frames(folder)
                parts.append(Part(FRAMES_ZIP_FIELD, "application/zip", path=packed, filename="frames.zip"))
            for ref in refs:
                parts.append(Part("references", "application/octet-stream", path=ref, filename=ref.name))
            response = self._request("POST", f"{API_PREFIX}/sequences", body=MultipartBody(parts),
                                     timeout=max(self.timeout, 300))
        finally:
            if packed is not None:
                packed.unlink(missing_ok=True)
        return JobStatus.from_dict(response.json())

    @staticmethod
    def _image_bytes(image: ImageInput) -> tuple[str, bytes]:
        if isinstance(image, tuple):
            name, data = image
        elif isinstance(image, (bytes, bytearray)):
            name, data = "image", bytes(image)
        else:
            path = Path(image)
            name, data = path.name, path.read_bytes()
        if sniff_image_type(data[:16]) is None:
            raise JobRejected(415, "unsupported_type", f"{name}: not a PNG, JPEG, WebP or EXR file", "image")
        return name, data

    @staticmethod
    def _sidecar_text(sidecar: Any) -> str:
        if isinstance(sidecar, (str, os.PathLike)) and not str(sidecar).lstrip().startswith("{"):
            return Path(sidecar).read_text(encoding="utf-8")
        if isinstance(sidecar, str):
            return sidecar
        if hasattr(sidecar, "to_dict"):
            sidecar = sidecar.to_dict()
        return json.dumps(sidecar)

    def status(self, job_id: str) -> JobStatus:
        return JobStatus.from_dict(self._request("GET", f"{API_PREFIX}/jobs/{job_id}").json())

    def jobs(self, limit: int = 50, state: str | None = None) -> list[JobStatus]:
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        data = self._request("GET", f"{API_PREFIX}/jobs", params=params).json()
        return [JobStatus.from_dict(item) for item in data["jobs"]]

    def cancel(self, job_id: str) -> JobStatus:
        """Ask the server to cancel; a running job stops at its next sampler step."""
        return JobStatus.from_dict(self._request("DELETE", f"{API_PREFIX}/jobs/{job_id}").json())

    def events(self, job_id: str, *, timeout: float = 60.0) -> Iterator[JobStatus]:
        """Server-sent status events until the job finishes (``timeout``: silence allowed between events)."""
        response = self._request("GET", f"{API_PREFIX}/jobs/{job_id}/events", stream=True, timeout=timeout)
        with response:
            kind, data = None, []
            for raw in response.iter_lines(decode_unicode=True):
                line = raw or ""
                if not line:
                    if kind == "status" and data:
                        yield JobStatus.from_dict(json.loads("\n".join(data)))
                    elif kind == "end":
                        return
                    kind, data = None, []
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())

    def wait(self, job_id: str, on_progress: ProgressCallback | None = None, *, timeout: float | None = None,
             poll_interval: float = 0.5, stream: bool = True, raise_on_failure: bool = False) -> JobStatus:
        """Block (in a worker thread) until the job finishes; ``on_progress`` gets every status.

        ``stream``: use server-sent events, falling back to polling every ``poll_interval`` s if
        the stream breaks. ``raise_on_failure``: JobFailed / JobCancelled instead of a status.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        status: JobStatus | None = None
        if stream:
            try:
                for status in self.events(job_id, timeout=max(30.0, poll_interval * 4)):
                    if on_progress is not None:
                        on_progress(status)
                    if status.terminal or (deadline is not None and time.monotonic() > deadline):
                        break
            except (BackendNotRunning, requests.RequestException, ValueError):
                status = None  # fall back to polling
        while status is None or not status.terminal:
            if deadline is not None and time.monotonic() > deadline:
                raise BackendError(f"job {job_id} did not finish within {timeout:.0f} s "
                                   f"(state {status.state if status else 'unknown'})")
            if status is not None:
                time.sleep(poll_interval)
            status = self.status(job_id)
            if on_progress is not None:
                on_progress(status)
        if raise_on_failure and status.state == FAILED:
            raise JobFailed(status)
        if raise_on_failure and status.state == CANCELLED:
            raise JobCancelled(status)
        return status

    def download(self, job_id: str, folder: str | os.PathLike, *, kinds: Sequence[str] | None = None,
                 status: JobStatus | None = None) -> JobResult:
        """Fetch a finished job's files into ``folder`` (checked against their SHA-256)."""
        import hashlib

        status = status or self.status(job_id)
        if status.state != DONE:
            if status.state == FAILED:
                raise JobFailed(status)
            if status.state == CANCELLED:
                raise JobCancelled(status)
            raise BackendError(f"job {job_id} is {status.state}; nothing to download yet")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        local: dict[str, Path] = {}
        for info in status.files:
            if kinds is not None and info.kind not in kinds:
                continue
            response = self._request("GET", info.url, stream=True, timeout=max(self.timeout, 120))
            target = out / info.name
            tmp = target.with_name(f".{info.name}.part")
            digest = hashlib.sha256()
            with response, open(tmp, "wb") as handle:
                for block in response.iter_content(1 << 16):
                    digest.update(block)
                    handle.write(block)
            if digest.hexdigest() != info.sha256:
                tmp.unlink(missing_ok=True)
                raise BackendError(f"{info.name}: download does not match its SHA-256; try again")
            os.replace(tmp, target)
            local[info.name] = target
        names = list(local)
        image = local.get("bump.png") or (local[names[0]] if names else out / "bump.png")
        record_path = local.get("bump.json") or local.get("sequence.json")
        record = json.loads(record_path.read_text(encoding="utf-8")) if record_path else {}
        faces = [local[n] for n in _kinds(status.files, "face") if n in local]
        inputs = [local[n] for n in _kinds(status.files, "face_input") if n in local]
        return JobResult(job_id=job_id, status=status, folder=out, files=local, image=image,
                         mask=local.get("bump_mask.png"), faces=tuple(faces), face_inputs=tuple(inputs), record=record)

    def run(self, image: ImageInput, folder: str | os.PathLike, params: Mapping[str, Any] | None = None, *,
            on_progress: ProgressCallback | None = None, timeout: float | None = None, **submit: Any) -> JobResult:
        """Submit, wait and download in one call (for batch work); raises JobFailed / JobCancelled."""
        job = self.submit(image, params, **submit)
        final = self.wait(job.id, on_progress, timeout=timeout, raise_on_failure=True)
        return self.download(job.id, folder, status=final)
