"""Bump jobs off Blender's main thread.

A worker thread per job talks to the backend through ``bump_client.client`` (submit, stream or
poll progress, download). It never touches ``bpy``: it only puts events on a queue. ``tick()``
runs on the main thread, from a ``bpy.app.timers`` timer in the UI (or called in a loop by batch
code and tests, where Blender runs no event loop and timers never fire), drains those queues and
hands each event to the callbacks the operators gave, which are the only code that changes
Blender data. A tick does a bounded amount of work, so the UI never waits on the network.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bump_client.client import BackendError, BumpClient, JobRejected, packages_from_sidecar
from bump_contracts.bump_job import CANCELLED as S_CANCELLED
from bump_contracts.bump_job import DONE as S_DONE

TICK_INTERVAL_S = 0.1
MAX_EVENTS_PER_TICK = 50

# event kinds, in the order a job produces them
SUBMITTED, PROGRESS, DONE, FAILED, CANCELLED, ERROR = "submitted", "progress", "done", "failed", "cancelled", "error"
TERMINAL = frozenset({DONE, FAILED, CANCELLED, ERROR})


@dataclass(frozen=True)
class Event:
    kind: str
    status: Any = None  # a JobStatus (submitted/progress/failed/cancelled)
    result: Any = None  # a JobResult (done)
    message: str = ""


@dataclass
class JobSpec:
    """Everything the worker needs; plain data only (paths, dicts, strings)."""

    url: str
    token: str | None
    image: Path
    params: dict[str, Any]
    out_dir: Path
    sidecar: Path | None = None
    package: Path | None = None
    upload_package: bool = False
    label: str = ""
    timeout_s: float | None = None
    character_prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # character id -> its prompts
    packages: dict[str, str] | None = None  # character id -> package folder (None: from the sidecar's faces)
    frames: Path | None = None  # a clip folder: the job is one sequence over its frames (``image`` unused)
    upload_frames: bool = False  # send the clip folder as a ZIP (a backend that cannot read this disk)
    sequence: dict[str, Any] = field(default_factory=dict)  # the sequence settings (SEQUENCE_PARAMS)


@dataclass
class Handlers:
    """Main-thread callbacks: ``on_event(job, event)`` for every event, in order."""

    on_event: Callable[[BumpJob, Event], None]


@dataclass
class BumpJob:
    key: str  # one running job per key (the scene's name)
    spec: JobSpec
    handlers: Handlers
    meta: dict[str, Any] = field(default_factory=dict)
    events: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    job_id: str | None = None
    state: str = "starting"
    finished: bool = False
    thread: threading.Thread | None = None
    started: float = field(default_factory=time.monotonic)

    def client(self, **overrides: Any):
        options = {"timeout": 30.0, "retries": 2, "backoff": 0.25, **overrides}
        return BumpClient(self.spec.url, token=self.spec.token or None, **options)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"bump-studio-{self.key}", daemon=True)
        self.thread.start()

    def cancel(self) -> None:
        """Ask the backend to stop the job; the worker sees the cancelled state and ends."""
        self.cancel_requested.set()
        job_id = self.job_id
        if job_id is not None:
            threading.Thread(target=self._send_cancel, args=(job_id,), name="bump-studio-cancel", daemon=True).start()

    def _send_cancel(self, job_id: str) -> None:
        try:
            self.client(retries=1).cancel(job_id)  # its own session: never shared across threads
        except BackendError as exc:
            self.events.put(Event(ERROR, message=f"cancel failed: {exc}"))

    # -- worker thread: no bpy below this line ------------------------------------------------
    def _run(self) -> None:
        spec = self.spec
        try:
            client = self.client()
            # each character in shot is bumped with its own package (paths only: uploads carry one package)
            packages = spec.packages
            if packages is None and not spec.upload_package and spec.sidecar is not None:
                packages = packages_from_sidecar(spec.sidecar)
            if spec.frames is not None:
                status = submit_sequence(client, spec, packages)
            else:
                status = client.submit(spec.image, spec.params, sidecar=spec.sidecar, package=spec.package,
                                       upload_package=spec.upload_package, label=spec.label,
                                       packages=packages or None, character_prompts=spec.character_prompts or None)
            self.job_id = status.id
            self.events.put(Event(SUBMITTED, status=status))
            if self.cancel_requested.is_set():
                self._send_cancel(status.id)
            final = client.wait(status.id, on_progress=lambda s: self.events.put(Event(PROGRESS, status=s)),
                                timeout=spec.timeout_s)
            if final.state == S_DONE:
                result = client.download(status.id, spec.out_dir, status=final)
                if spec.frames is not None:
                    unpack_frames(result.files.get("frames.zip"), spec.out_dir / RESULT_FRAMES)
                self.events.put(Event(DONE, status=final, result=result))
            elif final.state == S_CANCELLED:
                self.events.put(Event(CANCELLED, status=final, message="cancelled"))
            else:
                self.events.put(Event(FAILED, status=final, message=final.error or "the job failed"))
        except JobRejected as exc:
            self.events.put(Event(ERROR, message=refusal_message(exc, spec)))
        except BackendError as exc:
            self.events.put(Event(ERROR, message=str(exc)))
        except OSError as exc:
            self.events.put(Event(ERROR, message=f"{exc}; check free disk space and the work folder's permissions"))
        except Exception as exc:  # the worker must always end with a terminal event
            self.events.put(Event(ERROR, message=f"unexpected {type(exc).__name__}: {exc}"))


RESULT_FRAMES = "frames"  # the sequence's bumped frames, unpacked from frames.zip into the job's result folder
FRAMES_REFUSED = {  # the backend's codes for a frames folder it cannot read by path, and what the user can do
    "frames_outside_roots": "the backend reads the rendered frames from its own disk and {folder} is outside its "
                            "package roots: add the add-on's work folder to the backend's --package-root, or set "
                            "'Send package and frames' to Upload in the add-on's preferences",
    "bad_frames_path": "the backend cannot see the rendered frames at {folder} (it reads them from its own disk): "
                       "set 'Send package and frames' to Upload in the add-on's preferences",
}


def submit_sequence(client: BumpClient, spec: JobSpec, packages: dict[str, str] | None) -> Any:
    """The one place a clip folder is sent: by path (the backend reads it from its own disk) or, with
    ``spec.upload_frames`` (the preferences' 'Send package and frames'), uploaded as one ZIP."""
    return client.submit_sequence(frames=spec.frames, params=spec.params, sequence=spec.sequence or None,
                                  package=spec.package, upload_package=spec.upload_package, label=spec.label,
                                  packages=packages or None, upload_frames=spec.upload_frames)


def refusal_message(exc: JobRejected, spec: JobSpec) -> str:
    """A 4xx answer as the panel shows it; a frames folder the backend cannot read says what to change."""
    if spec.frames is not None and exc.code in FRAMES_REFUSED:
        return FRAMES_REFUSED[exc.code].format(folder=spec.frames)
    where = f" ({exc.field})" if exc.field else ""
    return f"the backend refused the job{where}: {exc.reason}"


def unpack_frames(archive: Path | None, target: Path) -> Path:
    """Unpack a sequence's ``frames.zip`` (``frames/<name>.png``) into ``target`` all at once: extracted beside it,
    then renamed, so a reader never sees half the frames. Names leaving the folder are refused."""
    if archive is None:
        raise BackendError("the sequence finished without frames.zip (was it run with png off?)")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        try:
            bundle = zipfile.ZipFile(archive)
        except zipfile.BadZipFile as exc:
            raise BackendError(f"{archive}: {exc}; run the bump again") from None
        with bundle:
            for member in bundle.infolist():
                name = Path(member.filename)
                if member.is_dir():
                    continue
                if name.is_absolute() or ".." in name.parts or len(name.parts) != 2 or name.parts[0] != "frames":
                    raise BackendError(f"{archive}: unexpected entry {member.filename!r}")
                with bundle.open(member) as source, open(staging / name.name, "wb") as handle:
                    shutil.copyfileobj(source, handle)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


class JobManager:
    """The running jobs, one per key; ``tick()`` is the only place their events reach Blender."""

    def __init__(self) -> None:
        self.jobs: dict[str, BumpJob] = {}
        self.rendering: dict[str, Any] = {}  # key -> a frame range being rendered before its job is submitted
        self.timer_registered = False

    def running(self, key: str) -> BumpJob | None:
        job = self.jobs.get(key)
        return job if job is not None and not job.finished else None

    def busy(self, key: str) -> bool:
        """A job runs, or a frame range renders, for ``key``: the panel shows progress and Cancel."""
        return self.running(key) is not None or key in self.rendering

    def start(self, job: BumpJob) -> BumpJob:
        if self.running(job.key) is not None:
            raise RuntimeError("a bump is already running for this scene; cancel it or wait for it")
        self.jobs[job.key] = job
        job.start()
        self.ensure_timer()
        return job

    def cancel(self, key: str) -> bool:
        render = self.rendering.get(key)
        if render is not None:
            render.cancel()  # stops before its next frame; nothing is submitted
            return True
        job = self.running(key)
        if job is None:
            return False
        job.cancel()
        return True

    def cancel_all(self) -> None:
        for render in list(self.rendering.values()):
            render.cancel()
        for job in list(self.jobs.values()):
            if not job.finished:
                job.cancel()

    def tick(self) -> float | None:
        """Deliver queued events on the main thread; the timer's return value (None: stop)."""
        for key, job in list(self.jobs.items()):
            for _ in range(MAX_EVENTS_PER_TICK):
                try:
                    event = job.events.get_nowait()
                except queue.Empty:
                    break
                if job.finished:
                    continue  # e.g. a late cancel error after the job ended
                job.state = event.kind
                if event.kind in TERMINAL:
                    job.finished = True
                try:
                    job.handlers.on_event(job, event)
                except Exception as exc:  # a broken handler must not kill the timer
                    print(f"Bump Studio: handling {event.kind} failed: {type(exc).__name__}: {exc}")
            if job.finished and job.events.empty():
                del self.jobs[key]
        if any(not j.finished for j in self.jobs.values()):
            return TICK_INTERVAL_S
        self.timer_registered = False
        return None

    def wait(self, key: str, timeout: float, interval: float = 0.02) -> BumpJob | None:
        """Batch/test helper: run the main-thread side until the job ends (no event loop runs timers there)."""
        job = self.jobs.get(key)
        deadline = time.monotonic() + timeout
        while job is not None and not job.finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bump did not finish within {timeout:.0f} s")
            self.tick()
            time.sleep(interval)
        self.tick()
        return job

    def ensure_timer(self) -> None:
        import bpy

        if not bpy.app.timers.is_registered(tick):
            bpy.app.timers.register(tick, first_interval=TICK_INTERVAL_S, persistent=True)
        self.timer_registered = True

    def shutdown(self, join_s: float = 2.0) -> None:
        """Cancel everything and stop the timer (add-on disabled, Blender quitting)."""
        import bpy

        self.cancel_all()
        for render in list(self.rendering.values()):
            render.abort()  # settings put back, the half-rendered clip removed
        self.rendering.clear()
        deadline = time.monotonic() + join_s
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        self.jobs.clear()
        if bpy.app.timers.is_registered(tick):
            bpy.app.timers.unregister(tick)
        self.timer_registered = False


MANAGER = JobManager()


def tick() -> float | None:
    """The ``bpy.app.timers`` callback (a module function, so it can be unregistered by identity)."""
    return MANAGER.tick()
