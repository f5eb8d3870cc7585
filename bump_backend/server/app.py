"""The HTTP API (FastAPI): ``create_app(config)``; OpenAPI at ``/docs`` and ``/openapi.json``.

Handlers stay thin: intake, the scheduler and the store do the work. Every error, from our
checks or from the framework's own validation, is the contract's JSON error document.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bump_backend import __version__
from bump_backend.server.config import ServerConfig
from bump_backend.server.events import EventHub
from bump_backend.server.generator import EngineGenerator, Generator
from bump_backend.server.intake import Rejected, Upload, accept, accept_sequence
from bump_backend.server.middleware import BodyDeadline, BodyLimit, CrashGuard, TokenAuth
from bump_backend.server.store import JobStore
from bump_backend.server.worker import Scheduler
from bump_contracts.bump_job import (
    API_PREFIX,
    CANCELLED,
    CONTRACT_VERSION,
    FILE_NAME_RE,
    ID_RE,
    SAMPLER_NAMES,
    STATES,
    error_document,
)
from bump_contracts.health import Capabilities, Health, ModelInfo

log = logging.getLogger("bump_backend.server")
FORM_FIELDS = {"request", "image", "sidecar", "references"}
SEQUENCE_FORM_FIELDS = {"request", "video", "references", "frames_zip"}
MEDIA_TYPES = {".json": "application/json", ".png": "image/png", ".mp4": "video/mp4", ".zip": "application/zip"}
ERROR_RESPONSES = {code: {"description": text, "content": {"application/json": {}}} for code, text in (
    (401, "missing or wrong token"), (404, "no such job"), (413, "request or image too large"),
    (415, "not a PNG, JPEG, WebP or EXR"), (422, "invalid request (the field is named)"), (429, "queue full"))}


def error(status: int, code: str, message: str, field: str | None = None, headers=None) -> JSONResponse:
    return JSONResponse(error_document(status, code, message, field), status_code=status, headers=headers)


def health_document(config: ServerConfig, scheduler: Scheduler) -> Health:
    """Everything ``/v1/health`` can say (the public view is ``Health.public()`` of this)."""
    described = scheduler.generator.describe() if scheduler.generator is not None else {}
    model = None
    if described.get("hash"):
        model = ModelInfo(name=described.get("name") or "", family=described.get("family") or "",
                          dtype=described.get("dtype") or "", hash=described["hash"],
                          ip_adapter_kind=described.get("ip_adapter_kind"))
    kind = described.get("ip_adapter_kind")
    capabilities = Capabilities(
        ip_adapter_kinds=(kind,) if kind else (), faceid=bool(described.get("faceid")),
        sdxl=described.get("family") == "sdxl", loras=tuple(described.get("loras") or ()), samplers=SAMPLER_NAMES,
        device=described.get("device") or config.device or "auto", free_vram_mb=described.get("free_vram_mb"),
        max_side=config.limits.max_side_param, max_face_size=config.limits.max_face_size,
        max_clip_skip=described.get("max_clip_skip"))
    return Health(status="ok", version=__version__, contract_version=CONTRACT_VERSION,
                  auth_required=bool(config.token), model_state=scheduler.model_state, model=model,
                  model_error=scheduler.model_error, queue_length=scheduler.queue_length(),
                  queue_capacity=config.max_queue,
                  running=scheduler.current.id if scheduler.current is not None else None, capabilities=capabilities)


class _GuardedFastAPI(FastAPI):
    """FastAPI with :class:`CrashGuard` outside even Starlette's own error middleware (which re-raises
    after its 500, and that drops the client's kept-alive connection)."""

    def build_middleware_stack(self):
        return CrashGuard(super().build_middleware_stack())


def _form_problem(form: Any, allowed: Any, single: tuple[str, ...]) -> JSONResponse | None:
    """A 422 for a form field the endpoint does not know or one given twice; None when the form is sound."""
    for key in form:
        if key not in allowed:
            return error(422, "unknown_field", f"unknown form field {key!r} (allowed: {', '.join(sorted(allowed))})", key)
    for key in single:
        if len(form.getlist(key)) > 1:
            return error(422, "repeated_field", f"form field {key!r} given more than once", key)
    return None


def _upload(file: UploadFile | None) -> Upload | None:
    return Upload(file.filename or "", file.file) if file is not None else None


def _received(http: Request) -> float:
    """When the body limit middleware saw the request arrive (the job's queue time starts there)."""
    return http.scope.get("state", {}).get("received", 0.0)


async def _queued(accept_one: Callable[..., tuple[Any, bool]], *args: Any) -> JSONResponse:
    """Run an intake (a bump or a sequence) off the event loop: 202 and the job's Location once it is on
    disk, 200 for a resubmitted client key, the refusal's status otherwise."""
    try:
        status, created = await run_in_threadpool(accept_one, *args)
    except Rejected as exc:
        return error(exc.status, exc.code, str(exc), exc.field)
    url = f"{API_PREFIX}/jobs/{status.id}"
    return JSONResponse(status.to_dict(), status_code=202 if created else 200, headers={"Location": url})


def create_app(config: ServerConfig, make_generator: Callable[[], Generator] | None = None) -> FastAPI:
    """The app, with its scheduler started by the lifespan (so one process serves one data dir)."""
    config.check()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    hub = EventHub()
    store = JobStore(config.data_dir)
    factory = make_generator or (lambda: EngineGenerator(config.model, config.device, config.model_name))
    scheduler = Scheduler(config, store, factory, notify=lambda job: hub.notify(job.id))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        hub.bind(asyncio.get_running_loop())
        scheduler.start()
        log.info("serving on http://%s:%d (data dir %s, token %s)", config.host, config.port, config.data_dir,
                 "required" if config.token else "off")
        try:
            yield
        finally:
            await run_in_threadpool(scheduler.stop)

    app = _GuardedFastAPI(title="Bump backend", version=__version__, lifespan=lifespan,
                  description="Local GPU job queue: IP-Adapter img2img bumps with a profile package as identity.")
    app.state.scheduler, app.state.store, app.state.config = scheduler, store, config
    app.add_middleware(BodyDeadline, body_s=config.timeouts.body_s,
                       min_bytes_per_s=config.timeouts.min_body_bytes_per_s)
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_request_bytes)
    app.add_middleware(TokenAuth, token=config.token)  # added last = outermost: 401 before anything

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(loc) or None
        return error(422, "invalid", f"{field or 'request'}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "http", str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error(500, "internal", f"internal error: {type(exc).__name__}: {exc}")

    def servable(job) -> dict | None:
        """A job's status document, or None (logged) when it cannot be sent: one bad record must never
        make the whole list unreadable."""
        try:
            doc = job.status().to_dict()
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("job %s: status not servable (%s); left out of the job list", job.id, exc)
            return None
        return doc

    def find(job_id: str):
        job = scheduler.get(job_id) if ID_RE.match(job_id) else None
        return job

    def not_found(job_id: str) -> JSONResponse:
        return error(404, "no_such_job", f"no job {job_id!r} on this server", "job_id")

    @app.get(f"{API_PREFIX}/health", tags=["server"])
    def health(request: Request) -> dict:
        """Alive, version, whether a token is needed; with the token (or without one set) also the model,
        its capabilities and the queue (``bump_contracts.health.Health``)."""
        document = health_document(config, scheduler)
        if TokenAuth.authorised(request.headers.get("authorization"), config.token):
            return document.to_dict()
        return {k: v for k, v in document.public().to_dict().items() if v is not None}

    @app.get(f"{API_PREFIX}/models", tags=["server"])
    def models() -> dict:
        """The named model presets and the model this server has loaded."""
        from bump_backend.generate.models import REGISTRY

        loaded = scheduler.generator.describe() if scheduler.generator is not None else None
        return {"presets": [{"name": k, "spec": v.to_dict()} for k, v in REGISTRY.items()], "loaded": loaded,
                "state": scheduler.model_state}

    @app.post(f"{API_PREFIX}/jobs", status_code=202, tags=["jobs"], responses=ERROR_RESPONSES)
    async def submit(
        http: Request,
        request: Annotated[str, Form(description="the job request JSON (bump_contracts.bump_job.JobRequest)")],
        image: Annotated[UploadFile, File(description="PNG, JPEG, WebP or EXR")],
        sidecar: Annotated[UploadFile | None, File(description="render sidecar JSON")] = None,
        references: Annotated[list[UploadFile] | None, File(description="package files")] = None,
    ) -> JSONResponse:
        """Queue a bump; 202 with the job's status (id, queue position) once it is on disk."""
        problem = _form_problem(await http.form(), FORM_FIELDS, ("request", "image", "sidecar"))
        if problem is not None:
            return problem
        return await _queued(accept, config, store, scheduler, request, _upload(image), _upload(sidecar),
                             [_upload(f) for f in references or ()], _received(http))

    @app.post(f"{API_PREFIX}/sequences", status_code=202, tags=["jobs"], responses=ERROR_RESPONSES)
    async def submit_sequence(
        http: Request,
        request: Annotated[str, Form(description="the sequence request JSON "
                                                 "(bump_contracts.sequence_job.SequenceRequest)")],
        video: Annotated[UploadFile | None, File(description="a video file (or frames_path in the request)")] = None,
        references: Annotated[list[UploadFile] | None, File(description="package files")] = None,
        frames_zip: Annotated[UploadFile | None, File(description="a frame folder as a ZIP (request frames_zip: "
                                                                  "true)")] = None,
    ) -> JSONResponse:
        """Queue a sequence (a video or a frame folder bumped frame by frame as one job); 202 once on disk.

        The job then shows ``stage_label`` "frame i/n" with an ETA, cancels between frames, and
        after a restart carries on from its last finished frame."""
        problem = _form_problem(await http.form(), SEQUENCE_FORM_FIELDS, ("request", "video", "frames_zip"))
        if problem is not None:
            return problem
        return await _queued(accept_sequence, config, store, scheduler, request, _upload(video),
                             [_upload(f) for f in references or ()], _received(http), _upload(frames_zip))

    @app.get(f"{API_PREFIX}/jobs", tags=["jobs"])
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 50, state: str | None = None):
        """Recent jobs, newest first."""
        if state is not None and state not in STATES:
            return error(422, "invalid", f"state must be one of {', '.join(STATES)}", "state")
        return {"jobs": [doc for doc in (servable(j) for j in scheduler.recent(limit, state)) if doc is not None]}

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}", tags=["jobs"], responses=ERROR_RESPONSES)
    def get_job(job_id: str):
        """State, progress, step i/n, stage, ETA, error, result files."""
        job = find(job_id)
        return job.status().to_dict() if job is not None else not_found(job_id)

    @app.delete(f"{API_PREFIX}/jobs/{{job_id}}", tags=["jobs"], responses=ERROR_RESPONSES)
    def cancel_job(job_id: str):
        """Cancel: a queued job at once, a running one between two sampler steps."""
        job = find(job_id)
        if job is None:
            return not_found(job_id)
        if job.terminal and job.state != CANCELLED:
            return error(409, "already_finished", f"job {job_id} is already {job.state}", "job_id")
        job = scheduler.cancel(job_id)
        return JSONResponse(job.status().to_dict(), status_code=200 if job.terminal else 202)

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/events", tags=["jobs"], responses=ERROR_RESPONSES)
    async def job_events(job_id: str, request: Request):
        """Server-sent events: ``event: status`` with the status JSON on every change; ends when finished."""
        job = find(job_id)
        if job is None:
            return not_found(job_id)

        async def stream():
            wake = hub.subscribe(job_id)
            last = -1
            try:
                while True:
                    wake.clear()
                    if job.version != last:
                        last = job.version
                        status = job.status()
                        yield f"event: status\ndata: {json.dumps(status.to_dict())}\n\n"
                        if status.terminal:
                            yield "event: end\ndata: {}\n\n"
                            return
                    try:
                        await asyncio.wait_for(wake.wait(), config.sse_heartbeat_s)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": ping\n\n"
            finally:
                hub.unsubscribe(job_id, wake)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}/files/{{name}}", tags=["jobs"], responses=ERROR_RESPONSES)
    def job_file(job_id: str, name: str):
        """One result file (names are listed in the status's ``files``)."""
        job = find(job_id)
        if job is None:
            return not_found(job_id)
        if job.pruned_at is not None:
            return error(410, "pruned", f"job {job_id}'s files were pruned (retention policy)", "job_id")
        if not FILE_NAME_RE.match(name):
            return error(404, "no_such_file", f"no file {name!r} for job {job_id}", "name")
        with scheduler.lock:
            path = store.result_file(job, name)
            if path is None:
                return error(404, "no_such_file", f"job {job_id} has no file {name!r} (state {job.state})", "name")
            scheduler.downloads[job.id] += 1
        first = job.fetched_at is None
        if first:
            import time

            job.fetched_at = time.time()
            store.save_state(job)

        def done() -> None:
            with scheduler.lock:
                scheduler.downloads[job.id] -= 1

        media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, filename=name, background=BackgroundTask(done))

    return app
