"""One progress display for the whole run: units done/total, running, failures, ETA.

On a terminal it is one line rewritten in place; in a log file (overnight runs) it is a line per
finished unit plus a heartbeat, so the log reads as a timeline. Failures always get their own
line with the unit's log file.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    def __init__(self, total: int, skipped: int = 0, *, stream: TextIO | None = None, heartbeat: float = 15.0,
                 quiet: bool = False) -> None:
        self.total, self.skipped = total, skipped
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat, self.quiet = heartbeat, quiet
        self.started_at = time.monotonic()
        self.running: dict[str, float] = {}
        self.done = self.failed = self.blocked = 0
        self.last_print = 0.0
        self.lock = threading.Lock()

    @property
    def finished(self) -> int:
        return self.skipped + self.done + self.failed + self.blocked

    def eta(self) -> float | None:
        executed = self.done + self.failed
        remaining = self.total - self.finished
        if executed == 0 or remaining <= 0:
            return None if remaining > 0 else 0.0
        return (time.monotonic() - self.started_at) / executed * remaining

    def line(self) -> str:
        eta = self.eta()
        parts = [f"[batch] {self.finished}/{self.total} units"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        parts.append(f"{len(self.running)} running")
        if self.failed or self.blocked:
            parts.append(f"{self.failed} failed" + (f", {self.blocked} blocked" if self.blocked else ""))
        parts.append(f"elapsed {_duration(time.monotonic() - self.started_at)}")
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        return ", ".join(parts)

    def _emit(self, text: str, *, own_line: bool = False) -> None:
        if self.quiet:
            return
        if self.tty and not own_line:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(("\r\x1b[2K" if self.tty else "") + text + "\n")
        self.stream.flush()
        self.last_print = time.monotonic()

    def start(self, unit_id: str) -> None:
        with self.lock:
            self.running[unit_id] = time.monotonic()
            if self.tty:
                self._emit(self.line())

    def finish(self, unit_id: str, status: str, seconds: float | None = None, error: str | None = None,
               log: str | None = None) -> None:
        with self.lock:
            self.running.pop(unit_id, None)
            if status == "done":
                self.done += 1
            elif status == "blocked":
                self.blocked += 1
            else:
                self.failed += 1
            took = f" in {seconds:.1f}s" if seconds is not None else ""
            if status == "failed":
                self._emit(f"[batch] FAILED {unit_id}{took}: {error}" + (f" (log: {log})" if log else ""), own_line=True)
            elif status == "blocked":
                self._emit(f"[batch] blocked {unit_id}: {error}", own_line=True)
            elif not self.tty:
                self._emit(f"[batch] done {unit_id}{took} | {self.line()}", own_line=True)
            if self.tty:
                self._emit(self.line())

    def tick(self) -> None:
        with self.lock:
            if self.tty or time.monotonic() - self.last_print >= self.heartbeat:
                self._emit(self.line())

    def close(self) -> None:
        with self.lock:
            if self.tty and not self.quiet:
                self.stream.write("\n")
                self.stream.flush()
