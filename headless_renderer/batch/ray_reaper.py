"""Ends a local Ray cluster with the batch process that started it, however that process ends.

``ray.init()`` without an address starts a cluster as the batch process's children. Ray's own
fate-sharing ends the GCS, the raylet and the task workers when the driver is killed with
``kill -9``, but not its dashboard and runtime-env agents (measured: still running, reparented to
init, 40 s later). This watcher, started beside the cluster, remembers the batch process's
descendants while it lives and kills those still running once it is gone. Run as
``python -m headless_renderer.batch.ray_reaper PARENT_PID``; the batch process stops it after its
own ``ray.shutdown()``.
"""

from __future__ import annotations

import os
import sys
import time

import psutil

POLL_S = 0.25


def watch(parent_pid: int, poll_s: float = POLL_S) -> list[int]:
    """Block until ``parent_pid`` is gone, then kill its last-seen descendants; return their pids."""
    me = os.getpid()
    seen: dict[int, float] = {}  # pid -> create time (a reused pid is never killed)
    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return []
    while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
        try:
            for child in parent.children(recursive=True):
                if child.pid != me and child.pid not in seen:
                    seen[child.pid] = child.create_time()
        except psutil.Error:
            break
        time.sleep(poll_s)
    killed = []
    for pid, created in seen.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == created:
                process.kill()
                killed.append(pid)
        except psutil.Error:
            continue
    return killed


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m headless_renderer.batch.ray_reaper PARENT_PID", file=sys.stderr)
        return 2
    watch(int(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
