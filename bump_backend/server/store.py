"""The job store on disk: durable intake, atomic results, recovery after a crash, pruning.

Layout under ``<data-dir>/jobs``::

    .incoming-<id>/        a submission being written (deleted at start-up: no 202 was sent)
    <id>/request.json      the validated request
    <id>/state.json        the durable state (atomic replace on every state change)
    <id>/input/            the image, sidecar.json, uploaded references
    <id>/results/          written as results.partial/ then renamed: all or nothing

A job becomes visible by renaming its incoming folder, after every byte is fsynced, so a 202
always means the job survives ``kill -9``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bump_backend.server.config import Retention
from bump_backend.server.jobs import Job, utc_now
from bump_contracts import safe_json
from bump_contracts.atomic_io import fsync_dir, write_bytes_atomic
from bump_contracts.bump_job import FAILED, ID_RE, QUEUED, RUNNING, JobRequest
from bump_contracts.sequence_job import SEQUENCE_REQUEST_SCHEMA, SequenceRequest

log = logging.getLogger("bump_backend.server.store")

INCOMING = ".incoming-"
PARTIAL = "results.partial"


def write_bytes_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_json_atomic(path: Path, data: Any) -> None:
    """Readers see the old or the new document, never half of one."""
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        self._lock = threading.Lock()

    # -- intake ------------------------------------------------------------------------------
    def new_id(self) -> str:
        return f"j{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(4)}"

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def incoming(self, job_id: str) -> Path:
        folder = self.root / f"{INCOMING}{job_id}"
        (folder / "input").mkdir(parents=True)
        return folder

    def discard_incoming(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def commit(self, job: Job, incoming: Path) -> None:
        """Make an accepted job durable and visible: request + state written, then one rename."""
        write_json_atomic(incoming / "request.json", (job.sequence or job.request).to_dict())
        write_json_atomic(incoming / "state.json", job.persistent())
        fsync_dir(incoming / "input")
        final = self.root / job.id
        os.replace(incoming, final)
        fsync_dir(self.root)
        job.folder = final

    def save_state(self, job: Job) -> None:
        write_json_atomic(job.folder / "state.json", job.persistent())

    # -- results -----------------------------------------------------------------------------
    def partial_results(self, job: Job) -> Path:
        tmp = job.folder / PARTIAL
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        return tmp

    def commit_results(self, job: Job, tmp: Path) -> Path:
        for item in tmp.iterdir():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(tmp)
        final = job.folder / "results"
        if final.exists():  # a retry after a crash that happened after the rename
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(job.folder)
        return final

    def result_file(self, job: Job, name: str) -> Path | None:
        if not any(f["name"] == name for f in job.files):
            return None
        path = job.folder / "results" / name
        return path if path.is_file() else None

    # -- recovery ----------------------------------------------------------------------------
    def recover(self, max_attempts: int) -> list[Job]:
        """Every job on disk, in submission order; interrupted ones re-queued or failed with a reason."""
        jobs: list[Job] = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(INCOMING):
                log.info("removing an unfinished submission %s (no 202 was sent for it)", entry.name[len(INCOMING):])
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if not entry.is_dir() or not ID_RE.match(entry.name):
                continue
            job = self._load(entry)
            if job is None:
                continue
            shutil.rmtree(entry / PARTIAL, ignore_errors=True)
            changed = False
            if job.state == RUNNING:
                # a sequence that finished frames in its last attempt made progress: it resumes however
                # often the server died; only attempts that got nowhere count towards the limit
                progressed = job.sequence is not None and job.finished_frames() > job.resume_frames
                if job.attempts >= max_attempts and not progressed:
                    job.state, job.finished = FAILED, utc_now()
                    job.finished_ts = time.time()
                    job.error = (f"the server stopped {job.attempts} times while running this job "
                                 "(crash or kill); not retried again")
                else:
                    job.state = QUEUED
                    job.started = None
                    job.notes.append(f"{utc_now()}: re-queued after a server restart (it was running)")
                changed = True
            elif job.state == "done" and not (entry / "results").is_dir() and job.pruned_at is None:
                job.state, job.error = FAILED, "results missing after a restart"
                changed = True
            if changed:
                self.save_state(job)
                log.info("job %s: recovered as %s%s", job.id, job.state, f" ({job.error})" if job.error else "")
            jobs.append(job)
        jobs.sort(key=lambda j: j.seq)
        self._seq = max((j.seq for j in jobs), default=0)
        return jobs

    def _load(self, folder: Path) -> Job | None:
        try:
            state = safe_json.loads((folder / "state.json").read_bytes(), "state.json")
            data = safe_json.loads((folder / "request.json").read_bytes(), "request.json")
            is_sequence = isinstance(data, dict) and data.get("schema") == SEQUENCE_REQUEST_SCHEMA
            request = SequenceRequest.from_dict(data) if is_sequence else JobRequest.from_dict(data)
            return Job.from_persistent(state, request, folder)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("job folder %s is unreadable (%s); left in place, not served", folder.name, exc)
            return None

    # -- pruning -----------------------------------------------------------------------------
    def prune(self, jobs: Iterable[Job], policy: Retention, busy: set[str], now: float | None = None) -> list[Job]:
        """Delete the files of finished jobs past their retention; return the jobs pruned.

        Never touches a queued/running job, one with an open download (``busy``), or one nobody
        fetched yet before ``keep_unfetched_s``. State stays as a tombstone so clients get 410.
        """
        now = time.time() if now is None else now
        finished = [j for j in jobs if j.terminal and j.pruned_at is None and j.id not in busy]

        def age(j: Job) -> float:
            return now - (j.finished_ts or now)

        def fetched(j: Job) -> bool:
            return j.fetched_at is not None or j.state != "done"  # failed/cancelled have nothing to fetch

        doomed = {j.id: j for j in finished
                  if (fetched(j) and age(j) >= policy.keep_s) or age(j) >= policy.keep_unfetched_s}
        remaining = [j for j in finished if j.id not in doomed]
        sizes = {j.id: folder_bytes(j.folder) for j in remaining}
        total = sum(sizes.values())
        if total > policy.max_bytes:
            for j in sorted(remaining, key=lambda j: j.finished_ts or 0):
                if total <= policy.max_bytes:
                    break
                if fetched(j) and age(j) >= policy.min_keep_s:
                    doomed[j.id] = j
                    total -= sizes[j.id]
            if total > policy.max_bytes:
                log.warning("job store holds %.1f MB, above its %.1f MB limit, in jobs not fetched yet; keeping them",
                            total / 1e6, policy.max_bytes / 1e6)
        for job in doomed.values():
            for name in ("input", "results", "sequence"):
                shutil.rmtree(job.folder / name, ignore_errors=True)
            job.pruned_at = now
            self.save_state(job)
            log.info("job %s: pruned (finished %.0f s ago, %s)", job.id, age(job),
                     "fetched" if job.fetched_at else "never fetched")
        return list(doomed.values())

    def drop_tombstones(self, jobs: Iterable[Job], policy: Retention, now: float | None = None) -> list[Job]:
        now = time.time() if now is None else now
        gone = [j for j in jobs if j.pruned_at is not None and now - j.pruned_at >= policy.tombstone_s]
        for job in gone:
            shutil.rmtree(job.folder, ignore_errors=True)
        return gone
