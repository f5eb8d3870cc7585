"""A job as the server holds it: the durable part (``state.json``) plus live progress in memory.

Progress is not written to disk on every step (a crashed job restarts from zero anyway); state
changes are, so a restarted server knows exactly which jobs were queued, running or finished.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bump_contracts.bump_job import API_PREFIX, QUEUED, TERMINAL, FileInfo, JobRequest, JobState, JobStatus
from bump_contracts.sequence_job import SequenceRequest


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    seq: int
    request: JobRequest
    folder: Path
    image_name: str  # file name under input/
    image_type: str
    package: dict[str, Any]  # {"kind": "none" | "path" | "id" | "upload", "path": str | None}
    has_sidecar: bool = False
    packages: dict[str, dict[str, Any]] = field(default_factory=dict)  # character id -> {"kind", "id"?, "path"}
    sequence: SequenceRequest | None = None  # a sequence job (request.json holds it; ``request`` is its bump part)
    sequence_input: str | None = None  # the video under input/ or the frame folder (absolute)
    resume_frames: int = 0  # a sequence: frames already finished when its latest attempt started
    state: JobState = QUEUED
    created: str = field(default_factory=utc_now)
    started: str | None = None
    finished: str | None = None
    attempts: int = 0
    error: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    fetched_at: float | None = None
    finished_ts: float | None = None
    pruned_at: float | None = None
    notes: list[str] = field(default_factory=list)
    # live, not persisted
    progress: float = 0.0
    step: int = 0
    steps: int = 0
    stage: str = "queued"
    stage_label: str = "queued"
    eta_s: float | None = None
    queue_position: int | None = None
    version: int = 0
    cancel_event: threading.Event = field(default_factory=threading.Event)
    marks: dict[str, float] = field(default_factory=dict)  # perf_counter marks for the timings
    prep_stage: str = ""  # what the CPU-side preparation is doing now ("preparing", "faces")

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def kind(self) -> str:
        return "sequence" if self.sequence is not None else "bump"

    @property
    def work_dir(self) -> Path:
        """A sequence's own output folder (frames written one by one: what a restart resumes from)."""
        return self.folder / "sequence"

    def finished_frames(self) -> int:
        """A sequence's frames written so far (each PNG is written atomically: a file is a whole frame)."""
        frames = self.work_dir / "frames"
        return sum(1 for _ in frames.glob("*.png")) if frames.is_dir() else 0

    @property
    def label(self) -> str:
        return self.request.label

    def persistent(self) -> dict[str, Any]:
        return {
            "id": self.id, "seq": self.seq, "state": self.state, "created": self.created, "started": self.started,
            "finished": self.finished, "attempts": self.attempts, "error": self.error,
            "image_name": self.image_name, "image_type": self.image_type, "package": self.package,
            "has_sidecar": self.has_sidecar, "packages": self.packages, "files": self.files, "timings": self.timings,
            "fetched_at": self.fetched_at, "finished_ts": self.finished_ts, "pruned_at": self.pruned_at,
            "notes": self.notes, "kind": self.kind, "sequence_input": self.sequence_input,
            "resume_frames": self.resume_frames,
        }

    @classmethod
    def from_persistent(cls, data: dict[str, Any], request: JobRequest | SequenceRequest, folder: Path) -> Job:
        sequence = request if isinstance(request, SequenceRequest) else None
        job = cls(id=data["id"], seq=int(data["seq"]), request=sequence.job if sequence else request, folder=folder,
                  image_name=data["image_name"], image_type=data["image_type"],
                  package=data.get("package") or {"kind": "none", "path": None}, sequence=sequence)
        for key in ("state", "created", "started", "finished", "attempts", "error", "files", "timings", "fetched_at",
                    "finished_ts", "pruned_at", "notes", "has_sidecar", "packages", "sequence_input",
                    "resume_frames"):
            if key in data:
                setattr(job, key, data[key])
        job.state = JobState(job.state)  # a record on disk holds the plain name
        job.stage = job.stage_label = job.state.value
        if job.state == JobState.DONE:
            job.progress = 1.0
        return job

    def status(self) -> JobStatus:
        files = tuple(FileInfo(name=f["name"], kind=f["kind"], bytes=f["bytes"], sha256=f["sha256"],
                               url=f"{API_PREFIX}/jobs/{self.id}/files/{f['name']}") for f in self.files)
        return JobStatus(
            id=self.id, state=self.state, created=self.created, label=self.label,
            queue_position=self.queue_position if self.state == QUEUED else None,
            progress=round(self.progress, 4), step=self.step, steps=self.steps, stage=self.stage,
            stage_label=self.stage_label, eta_s=None if self.eta_s is None else round(self.eta_s, 2), error=self.error,
            started=self.started, finished=self.finished, attempts=self.attempts,
            files=() if self.pruned_at else files, timings=dict(self.timings), pruned=self.pruned_at is not None,
        )
