"""The scheduler: a bounded FIFO queue, one GPU worker thread, CPU pools around it.

Decoding and input checks run on a small prep pool ahead of the GPU (``prefetch`` jobs deep);
writing result PNGs runs on an encode pool while the GPU already works on the next job. The
GPU thread itself only generates, so its idle time per job is the server's real overhead.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bump_backend.sequence.job import FaceOptions, SequenceJob
from bump_backend.server.config import ServerConfig
from bump_backend.server.generator import (
    Cancelled,
    Generator,
    PreparedJob,
    PreparedSequence,
    free_memory,
    is_out_of_memory,
    sampling_steps,
    to_settings,
)
from bump_backend.server.images import InputImageError, decode_image
from bump_backend.server.jobs import Job, utc_now
from bump_backend.server.progress import ProgressTracker
from bump_backend.server.results import write_results, write_sequence_results
from bump_backend.server.store import JobStore
from bump_contracts import render_sidecar
from bump_contracts.bump_job import CANCELLED, DONE, FAILED, QUEUED, RUNNING, ContractError, JobStatus

log = logging.getLogger("bump_backend.server.worker")


class QueueFull(Exception):
    """The queue holds ``max_queue`` jobs already."""


class Shutdown(Exception):
    """The server is stopping; the running job goes back to the queue on disk."""


class Scheduler:
    def __init__(self, config: ServerConfig, store: JobStore, make_generator: Callable[[], Generator],
                 notify: Callable[[Job], None] = lambda job: None) -> None:
        self.config = config
        self.store = store
        self.make_generator = make_generator
        self.notify = notify
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.jobs: dict[str, Job] = {}
        self.queue: deque[Job] = deque()
        self.reserved = 0
        self.keys: dict[str, str] = {}
        self.current: Job | None = None
        self.downloads: Counter[str] = Counter()
        self.generator: Generator | None = None
        self.model_state = "loading"
        self.model_error: str | None = None
        self.avg_job_s: float | None = None
        self.stopping = False
        self._prep: dict[str, Future] = {}
        self.prep_pool = ThreadPoolExecutor(config.prep_workers, thread_name_prefix="bump-prep")
        self.encode_pool = ThreadPoolExecutor(config.encode_workers, thread_name_prefix="bump-encode")
        self._threads: list[threading.Thread] = []
        self._janitor_wake = threading.Event()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        for job in self.store.recover(self.config.max_attempts):
            self.jobs[job.id] = job
            if job.request.client_key:
                self.keys[job.request.client_key] = job.id
            if job.state == QUEUED:
                self.queue.append(job)
        self._positions()
        if self.queue:
            log.info("re-queued %d job(s) from the data dir", len(self.queue))
        for target, name in ((self._gpu_loop, "bump-gpu"), (self._janitor, "bump-janitor")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        with self.cond:
            self.stopping = True
            if self.current is not None:
                self.current.cancel_event.set()
            self.cond.notify_all()
        self._janitor_wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self.prep_pool.shutdown(wait=True, cancel_futures=True)
        self.encode_pool.shutdown(wait=True)

    # -- intake --------------------------------------------------------------------------------
    def reserve(self, client_key: str | None) -> Job | None:
        """Hold a queue slot for a submission being written; returns the existing job for a repeated key."""
        with self.lock:
            if client_key and client_key in self.keys:
                existing = self.jobs.get(self.keys[client_key])
                if existing is not None:
                    return existing
                raise QueueFull("a submission with this client_key is being accepted right now; retry")
            if len(self.queue) + self.reserved >= self.config.max_queue:
                raise QueueFull(f"the queue is full ({self.config.max_queue} jobs waiting); retry when it drains")
            if self.stopping:
                raise QueueFull("the server is shutting down")
            self.reserved += 1
            if client_key:
                self.keys[client_key] = ""
            return None

    def release(self, client_key: str | None) -> None:
        with self.lock:
            self.reserved -= 1
            if client_key and self.keys.get(client_key) == "":
                del self.keys[client_key]

    def enqueue(self, job: Job) -> JobStatus:
        """Add an accepted (already durable) job; its slot was reserved. Returns its status as queued."""
        with self.cond:
            self.reserved -= 1
            self.jobs[job.id] = job
            if job.request.client_key:
                self.keys[job.request.client_key] = job.id
            self.queue.append(job)
            self._positions()
            self._schedule_prefetch()
            status = job.status()
            self.cond.notify_all()
        log.info("job %s: queued at position %d%s", job.id, status.queue_position or 0,
                 f" ({job.label})" if job.label else "")
        return status

    # -- queries -------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def recent(self, limit: int, state: str | None = None) -> list[Job]:
        with self.lock:
            jobs = [j for j in self.jobs.values() if state is None or j.state == state]
        return sorted(jobs, key=lambda j: j.seq, reverse=True)[:limit]

    def queue_length(self) -> int:
        with self.lock:
            return len(self.queue)

    # -- cancel --------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> Job:
        with self.cond:
            job = self.jobs[job_id]
            if job.terminal:
                return job
            job.cancel_event.set()
            if job.state == QUEUED:
                self.queue.remove(job)
                self._positions()
                future = self._prep.pop(job.id, None)
                if future is not None:
                    future.cancel()
                self._finish(job, CANCELLED, None, "cancelled while queued")
            else:
                job.stage_label = f"{job.stage} (cancelling)"
                self._touch(job)
        return job

    # -- internals -----------------------------------------------------------------------------
    def _touch(self, job: Job) -> None:
        job.version += 1
        self.notify(job)

    def _positions(self) -> None:
        ahead = 0.0
        if self.current is not None:
            ahead = self.current.eta_s if self.current.eta_s is not None else (self.avg_job_s or 0.0)
        for i, job in enumerate(self.queue):
            if job.queue_position != i or job.eta_s is None:
                job.queue_position = i
                if self.avg_job_s is not None:
                    job.eta_s = ahead + (i + 1) * self.avg_job_s
                self._touch(job)

    def _schedule_prefetch(self) -> None:
        for job in list(self.queue)[: self.config.prefetch]:
            if job.id not in self._prep:
                self._prep[job.id] = self.prep_pool.submit(self._prepare, job)

    def _prep_stage(self, job: Job, stage: str) -> None:
        """Note what the CPU side is doing; shown as the stage if the GPU worker is already waiting for it."""
        with self.lock:
            job.prep_stage = stage
            if stage and job.state == RUNNING and self.current is job:
                job.stage = job.stage_label = stage
                self._touch(job)

    def _prepare(self, job: Job) -> PreparedJob:
        """CPU side: decode the image, parse the sidecar, check the packages and settings, find the faces.

        Face finding (sidecar geometry, or the detector) runs here, on the prep pool, in the
        engine's working-image pixels (``find_job_faces``), so the GPU worker only generates.
        """
        from bump_backend.generate.prompts import CharacterPrompt

        if job.sequence is not None:
            return self._prepare_sequence(job)
        try:
            self._prep_stage(job, "preparing")
            limits = self.config.limits
            path = job.folder / "input" / job.image_name
            image = decode_image(path, job.image_type, max_pixels=limits.max_pixels, min_side=limits.min_side)
            sidecar = None
            if job.has_sidecar:
                sidecar = render_sidecar.load(str(job.folder / "input" / "sidecar.json"))
            package = None
            if job.package.get("path"):
                package = Path(job.package["path"])
                if not (package / "package.json").is_file():
                    raise InputImageError(f"the package folder {package} is gone (no package.json)")
            packages = {}
            for character_id, entry in job.packages.items():
                packages[character_id] = Path(entry["path"])
                if not (packages[character_id] / "package.json").is_file():
                    raise InputImageError(f"the package folder {entry['path']} of character {character_id!r} is gone "
                                          "(no package.json)")
            settings = to_settings(job.request.params, limits)
            # From request.json (written before the 202), so a re-queued job after a restart keeps them.
            character_prompts = {cid: CharacterPrompt.coerce(entry)
                                 for cid, entry in job.request.character_prompts.items()}
            faces = None
            if settings.face_pass:
                from bump_backend.generate.face_pass import find_job_faces

                self._prep_stage(job, "faces")
                t = time.perf_counter()
                faces = find_job_faces(image, sidecar, settings)
                job.timings["faces_s"] = round(time.perf_counter() - t, 4)
            return PreparedJob(image=image, image_path=path, sidecar=sidecar, package=package, settings=settings,
                               packages=packages, character_prompts=character_prompts, faces=faces)
        finally:
            self._prep_stage(job, "")

    def _prepare_sequence(self, job: Job) -> PreparedSequence:
        """CPU side of a sequence: settings and the job object over its work folder (which a restart
        finds again, with every frame finished before the restart)."""
        settings = to_settings(job.request.params, self.config.limits)
        for entry in [job.package, *job.packages.values()]:
            if entry.get("path") and not (Path(entry["path"]) / "package.json").is_file():
                raise InputImageError(f"the package folder {entry['path']} is gone (no package.json)")
        sequence = SequenceJob(job.sequence_input, job.work_dir, job.sequence.sequence, package=job.package.get("path"),
                               packages={cid: e["path"] for cid, e in job.packages.items()},
                               face=FaceOptions(settings.face_size, settings.face_padding, settings.seed),
                               settings_record=settings.to_dict(), log=lambda m: log.debug("job %s: %s", job.id, m))
        return PreparedSequence(job=sequence, settings=settings)

    def _fail(self, job: Job, exc: Exception, what: str) -> None:
        """A job that raised: a bad value says so in one line; anything else is logged with its traceback."""
        if isinstance(exc, (ValueError, ContractError)):
            self._finish(job, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            log.exception("job %s: %s failed", job.id, what)
            self._finish(job, FAILED, f"{what} failed: {type(exc).__name__}: {exc}")

    def _finish(self, job: Job, state: str, error: str | None, why: str = "") -> None:
        if job.sequence is not None and state != DONE:
            # Before the state is published: a client that sees the job cancelled or failed finds nothing left to
            # resume (removed after it, a poll in between saw the frames still there).
            shutil.rmtree(job.work_dir, ignore_errors=True)  # nothing will resume a failed or cancelled sequence
        with self.lock:
            job.state = state
            job.error = error
            job.finished = utc_now()
            job.finished_ts = time.time()
            job.stage = job.stage_label = state
            job.eta_s = None
            job.queue_position = None
            if state == DONE:
                job.progress = 1.0
            if "accepted" in job.marks:
                job.timings["total_s"] = round(time.perf_counter() - job.marks["accepted"], 4)
            self._prep.pop(job.id, None)
        try:
            self.store.save_state(job)
        except OSError as exc:
            log.error("job %s: cannot write its state (%s)", job.id, exc)
        log.info("job %s: %s%s", job.id, state, f" ({error})" if error else (f" ({why})" if why else ""))
        self._touch(job)

    # -- the GPU thread --------------------------------------------------------------------------
    def _load_model(self) -> None:
        started = time.perf_counter()
        try:
            generator = self.make_generator()
            generator.load()
        except Exception as exc:  # a missing model must not take the server down: jobs fail with why
            self.model_state, self.model_error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("model failed to load: %s", self.model_error)
            return
        self.generator = generator
        self.model_state = "ready"
        log.info("model ready in %.1f s: %s", time.perf_counter() - started, generator.describe().get("name", ""))

    def _gpu_loop(self) -> None:
        self._load_model()
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                job = self.queue.popleft()
                job.marks["popped"] = time.perf_counter()
                job.state, job.started = RUNNING, utc_now()
                job.attempts += 1
                job.queue_position = None
                job.stage = job.stage_label = job.prep_stage or "preparing"
                job.eta_s = None
                self.current = job
                future = self._prep.get(job.id) or self.prep_pool.submit(self._prepare, job)
                self._prep[job.id] = future
                self._schedule_prefetch()
                self._positions()
            try:
                self.store.save_state(job)  # "running" + attempts on disk before the GPU touches it
            except OSError as exc:
                log.error("job %s: cannot write its state (%s)", job.id, exc)
            log.info("job %s: started (attempt %d)", job.id, job.attempts)
            self._touch(job)
            try:
                self._run(job, future)
            finally:
                with self.lock:
                    self.current = None

    def _run(self, job: Job, future: Future) -> None:
        t_wait = time.perf_counter()
        try:
            prepared = future.result()
        except (InputImageError, ContractError, ValueError, OSError) as exc:
            self._finish(job, FAILED, f"input: {exc}")
            return
        except Exception as exc:
            log.exception("job %s: preparing failed", job.id)
            self._finish(job, FAILED, f"internal error while preparing: {type(exc).__name__}: {exc}")
            return
        job.timings["prepare_wait_s"] = round(time.perf_counter() - t_wait, 4)
        if self.generator is None:
            self._finish(job, FAILED, f"the model is not loaded: {self.model_error or 'still loading'}")
            return
        if job.cancel_event.is_set():
            self._finish_cancelled(job, "cancelled before it started")
            return
        if isinstance(prepared, PreparedSequence):
            self._run_sequence(job, prepared)
            return
        settings = prepared.settings
        tracker = ProgressTracker(
            whole_steps=sampling_steps(settings.denoise, settings.steps) if settings.whole_pass else 0,
            face_per_call=sampling_steps(settings.face_pass_settings().denoise, settings.face_pass_settings().steps),
            face_pass=settings.face_pass)
        job.stage, job.stage_label = tracker.initial_stage(None if prepared.faces is None else len(prepared.faces.faces))
        job.steps = tracker.whole_steps
        self._touch(job)

        def progress(stage: str, step: int, total: int) -> None:
            job.progress, job.step, job.steps, job.stage, job.stage_label, job.eta_s = tracker.update(stage, step, total)
            if "first_progress" not in job.marks:
                job.marks["first_progress"] = time.perf_counter()
            self._touch(job)

        t_gen = time.perf_counter()

        def attempt(low_memory: bool) -> Any:
            if low_memory:
                tracker.started = time.perf_counter()  # the ETA restarts with the retry
            return self.generator.run(prepared, progress, job.cancel_event, low_memory)

        ok, result = self._generate(job, attempt, "retried with VAE tiling and slicing and batch size 1 (attention "
                                    "slicing only without an IP-Adapter)", "generation")
        if not ok:
            return
        job.timings["generate_s"] = round(time.perf_counter() - t_gen, 4)
        job.timings["gpu_overhead_s"] = round(time.perf_counter() - job.marks["popped"] - job.timings["generate_s"], 4)
        if "accepted" in job.marks:
            job.timings["queue_s"] = round(job.marks["popped"] - job.marks["accepted"], 4)
            if "first_progress" in job.marks:
                job.timings["first_progress_s"] = round(job.marks["first_progress"] - job.marks["accepted"], 4)
        job.stage = job.stage_label = "saving"
        self._touch(job)
        self.encode_pool.submit(self._save, job, result)

    def _run_sequence(self, job: Job, prepared: PreparedSequence) -> None:
        """The whole sequence on this (the GPU) thread, frame by frame; results saved on the encode pool."""
        started = time.perf_counter()
        job.resume_frames = job.finished_frames()
        try:
            self.store.save_state(job)  # what a restart compares with to see whether this attempt got anywhere
        except OSError as exc:
            log.error("job %s: cannot write its state (%s)", job.id, exc)

        def progress(stage: str, done: int, total: int, eta: float | None) -> None:
            job.step, job.steps = done, total
            if stage == "analysing":
                job.stage = job.stage_label = "analysing"
            elif stage == "encoding":
                job.stage = job.stage_label = "encoding"
            else:
                job.stage, job.stage_label = "frames", f"frame {done}/{total}"
                job.progress = min(0.99, done / total) if total else 0.0
            job.eta_s = eta
            if "first_progress" not in job.marks and stage == "frame":
                job.marks["first_progress"] = time.perf_counter()
            self._touch(job)

        ok, record = self._generate(
            job, lambda low_memory: self.generator.run_sequence(prepared, progress, job.cancel_event, low_memory),
            "the frames not yet finished retried with VAE tiling and batch size 1", "sequence")
        if not ok:
            return
        job.timings["generate_s"] = round(time.perf_counter() - started, 4)
        job.timings["resumed_frames"] = float(record.get("resumed_frames", 0))
        job.stage = job.stage_label = "saving"
        self._touch(job)
        self.encode_pool.submit(self._save_sequence, job, prepared)

    def _generate(self, job: Job, attempt: Callable[[bool], Any], retry: str, what: str) -> tuple[bool, Any]:
        """``attempt(low_memory)``, once more in lower-memory mode after an out-of-memory (a sequence keeps
        its finished frames). ``(True, result)``, or ``(False, None)`` once the job is finished here:
        cancelled, failed, or out of memory twice."""
        for low_memory in (False, True):
            try:
                return True, attempt(low_memory)
            except Cancelled as exc:
                self._finish_cancelled(job, str(exc))
                return False, None
            except Exception as exc:
                if not is_out_of_memory(exc):
                    self._fail(job, exc, what)
                    return False, None
                free_memory()
                if low_memory:
                    self._finish(job, FAILED, f"out of GPU memory even with lower-memory settings: {exc}")
                    return False, None
                done = f" after {job.step} of {job.steps} frames" if job.sequence is not None else ""
                log.warning("job %s: out of memory%s (%s); %s", job.id, done, exc, retry)
                job.notes.append(f"{utc_now()}: out of memory{done}, {retry}")
        return False, None

    def _save_sequence(self, job: Job, prepared: PreparedSequence) -> None:
        t = time.perf_counter()
        try:
            job.files = write_sequence_results(self.store, job, prepared.job)
        except Exception as exc:
            log.exception("job %s: writing results failed", job.id)
            self._finish(job, FAILED, f"could not write the results: {type(exc).__name__}: {exc}")
            return
        job.timings["save_s"] = round(time.perf_counter() - t, 4)
        self._finish(job, DONE, None)
        shutil.rmtree(job.work_dir, ignore_errors=True)  # the results hold it all now

    def _finish_cancelled(self, job: Job, why: str) -> None:
        if self.stopping and job.state == RUNNING:  # shutdown, not the user: run it again next start
            job.state, job.started = QUEUED, None
            job.attempts = max(0, job.attempts - 1)
            job.stage = job.stage_label = "queued"
            self.store.save_state(job)
            log.info("job %s: put back in the queue (server stopping)", job.id)
            return
        self._finish(job, CANCELLED, None, why)

    def _save(self, job: Job, result: Any) -> None:
        t = time.perf_counter()
        try:
            job.files = write_results(self.store, job, result)
        except Exception as exc:
            log.exception("job %s: writing results failed", job.id)
            self._finish(job, FAILED, f"could not write the results: {type(exc).__name__}: {exc}")
            return
        job.timings["save_s"] = round(time.perf_counter() - t, 4)
        total = time.perf_counter() - job.marks.get("popped", t)
        self.avg_job_s = total if self.avg_job_s is None else 0.8 * self.avg_job_s + 0.2 * total
        self._finish(job, DONE, None)
        if self._due_prune():
            self._janitor_wake.set()

    # -- pruning ---------------------------------------------------------------------------------
    _last_prune = 0.0

    def _due_prune(self) -> bool:
        return time.monotonic() - self._last_prune > self.config.retention.interval_s

    def prune(self, now: float | None = None) -> list[Job]:
        with self.lock:
            busy = {j.id for j in self.jobs.values() if not j.terminal} | {k for k, v in self.downloads.items() if v}
            jobs = list(self.jobs.values())
        pruned = self.store.prune(jobs, self.config.retention, busy, now)
        gone = self.store.drop_tombstones(jobs, self.config.retention, now)
        with self.lock:
            for job in gone:
                self.jobs.pop(job.id, None)
        self._last_prune = time.monotonic()
        return pruned

    def _janitor(self) -> None:
        while not self.stopping:
            try:
                self.prune()
            except Exception:
                log.exception("pruning failed")
            self._janitor_wake.wait(self.config.retention.interval_s)
            self._janitor_wake.clear()
