"""Push for server-sent events: worker threads notify, the event loop wakes the job's streams.

Worker threads must not touch asyncio objects directly; ``notify`` hands the wake-up to the
loop with ``call_soon_threadsafe``, and costs nothing for jobs nobody is streaming.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict


class EventHub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def subscribe(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters[job_id].add(event)
        return event

    def unsubscribe(self, job_id: str, event: asyncio.Event) -> None:
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    def notify(self, job_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        if waiters and self.loop is not None and not self.loop.is_closed():
            for event in waiters:
                self.loop.call_soon_threadsafe(event.set)
