"""The local executor: N render worker processes (each its own ``bpy``), bump units streamed to the
backend(s) from threads as soon as their render is done, so rendering and GPU work overlap.

Units are released in dependency order (a unit runs when the units it needs are done; a failed
unit blocks only what depends on it). A render worker that dies (Blender can crash) is replaced
and its unit tried once more.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bump_client.client import BackendError, BumpClient
from headless_renderer.batch import work
from headless_renderer.batch.progress import Progress
from headless_renderer.batch.units import BUMP, RENDER, Plan, lock_path, log_path


@dataclass
class RunOptions:
    workers: int = 2  # render processes; 0 renders in this process (inside a real Blender)
    overlap: bool = True  # False: bumps wait until every render is done (for measuring the overlap)
    salt: str = ""  # added to backend idempotency keys (--no-resume asks the backend to compute again)
    bump_slots: int = 2  # jobs in flight per backend: one running, one queued so the GPU never waits
    render_threads: int | None = None  # Cycles threads per worker (default: cores / workers)


class Backends:
    """The job's backend servers; each bump goes to the one with the fewest jobs in flight."""

    def __init__(self, urls: list[str], token: str | None, timeout: float = 60.0) -> None:
        self.clients = [BumpClient(url, token, timeout=timeout) for url in urls]
        self.load = {c.url: 0 for c in self.clients}
        self.down: dict[str, str] = {}
        self.lock = threading.Lock()

    def check(self) -> list[str]:
        """Health of every backend; unreachable ones are left out of this run (and named)."""

        notes = []
        for client in self.clients:
            try:
                health = client.health()
                if health.model_state == "failed":
                    raise BackendError(f"its model failed to load: {health.model_error}")
            except BackendError as exc:
                self.down[client.url] = str(exc)
                notes.append(f"backend {client.url} left out: {exc}")
        return notes

    def healthy(self) -> list[Any]:
        return [c for c in self.clients if c.url not in self.down]

    def acquire(self):
        with self.lock:
            candidates = self.healthy()
            if not candidates:
                return None
            client = min(candidates, key=lambda c: self.load[c.url])
            self.load[client.url] += 1
            return client

    def release(self, client) -> None:
        with self.lock:
            self.load[client.url] -= 1

    def mark_down(self, client, reason: str) -> None:
        with self.lock:
            self.down[client.url] = reason


def bump_unit(unit_data: dict[str, Any], out: str, backends: Backends, context: dict[str, Any]) -> dict[str, Any]:
    """Run a bump unit on the least-busy backend, moving to another one if a backend stops answering."""
    result: dict[str, Any] = {"id": unit_data["id"], "status": "failed", "error": "no backend is reachable: "
                              + "; ".join(backends.down.values())}
    for _ in range(max(1, len(backends.clients))):
        client = backends.acquire()
        if client is None:
            break
        try:
            result = work.run_unit(unit_data, out, {**context, "client": client})
        finally:
            backends.release(client)
        if result["status"] == "done" or "BackendNotRunning" not in result.get("error", ""):
            return result
        backends.mark_down(client, result["error"])
    return result


def _render_env() -> dict[str, str]:
    keys = ("BLENDER_USER_RESOURCES", "OMP_NUM_THREADS", "PYTHONPATH")
    return {k: os.environ[k] for k in keys if k in os.environ}


class LocalExecutor:
    def __init__(self, plan: Plan, options: RunOptions, progress: Progress, backends: Backends | None,
                 context: dict[str, Any]) -> None:
        self.plan, self.options, self.progress = plan, options, progress
        self.backends, self.context = backends, context
        self.pool: ProcessPoolExecutor | None = None
        slots = max(1, len(backends.clients) * options.bump_slots) if backends else 1
        self.bump_pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="bump")
        self.local_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="assemble")
        self.attempts: dict[str, int] = {}
        self.results: dict[str, dict[str, Any]] = {}  # kept when interrupted: the report shows what finished
        self.stop = threading.Event()  # tells bump threads to stop waiting (their backend jobs keep running)
        self.context = {**context, "stop": self.stop}

    def _render_pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            cores = os.cpu_count() or 1
            threads = self.options.render_threads
            if threads is None:
                threads = max(1, cores // self.options.workers) if self.options.workers > 1 else 0
            context = multiprocessing.get_context("spawn")
            core_sets = None
            sets = work.worker_core_sets(self.options.workers)
            if sets and threads <= len(sets[0]):  # pinned workers, each with its own cores
                core_sets = context.Queue()
                for cpus in sets:
                    core_sets.put(cpus)
            self.pool = ProcessPoolExecutor(max_workers=self.options.workers, mp_context=context,
                                            initializer=work.init_render_worker,
                                            initargs=(threads, _render_env(), core_sets, os.getpid()))
        return self.pool

    def _submit(self, uid: str) -> Future | None:
        unit = self.plan.units[uid]
        out = str(self.plan.out)
        self.progress.start(uid)
        if unit.resource == RENDER:
            if self.options.workers == 0:
                return None  # rendered on this thread by the loop (bpy wants the main thread)
            return self._render_pool().submit(work.run_unit, unit.to_dict(), out)
        if unit.resource == BUMP:
            if self.backends is None:
                raise RuntimeError("bump unit without backends")
            return self.bump_pool.submit(bump_unit, unit.to_dict(), out, self.backends, self.context)
        return self.local_pool.submit(work.run_unit, unit.to_dict(), out)

    def run(self, todo: list[str]) -> dict[str, dict[str, Any]]:
        """Run ``todo`` (ids in dependency order); needs outside ``todo`` are already done."""
        plan, results = self.plan, self.results
        pending = set(todo)
        waiting = {uid: {n for n in plan.units[uid].needs if n in pending} for uid in todo}
        dependents = plan.dependents()
        ready = [uid for uid in todo if not waiting[uid]]
        held: list[str] = []  # bumps waiting for every render to finish (overlap off)
        inline: list[str] = []
        running: dict[Future, str] = {}
        renders_left = sum(1 for uid in todo if plan.units[uid].resource == RENDER)

        def finish(uid: str, result: dict[str, Any]) -> None:
            nonlocal renders_left
            results[uid] = result
            pending.discard(uid)
            if plan.units[uid].resource == RENDER:
                renders_left -= 1
            self.progress.finish(uid, result["status"], result.get("seconds"), result.get("error"),
                                 str(log_path(plan.out, plan.units[uid])))
            if result["status"] == "done":
                for dep in dependents[uid]:
                    if dep in waiting:
                        waiting[dep].discard(uid)
                        if not waiting[dep] and dep in pending and dep not in results:
                            ready.append(dep)
            else:
                self._block(uid, dependents, results, pending, finish)

        try:
            while pending:
                while ready:
                    uid = ready.pop(0)
                    unit = plan.units[uid]
                    if unit.resource == BUMP and not self.options.overlap and renders_left > 0:
                        held.append(uid)
                        continue
                    future = self._submit(uid)
                    if future is None:
                        inline.append(uid)
                    else:
                        running[future] = uid
                if not self.options.overlap and renders_left == 0 and held:
                    ready.extend(held)
                    held.clear()
                    continue
                if inline:
                    uid = inline.pop(0)
                    finish(uid, work.run_unit(plan.units[uid].to_dict(), str(plan.out), {"fd_log": False}))
                    continue
                if not running:
                    for uid in sorted(pending):  # cannot happen with a valid plan; never hang on it
                        finish(uid, {"id": uid, "status": "blocked", "error": "its inputs never became ready"})
                    break
                done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
                self.progress.tick()
                for future in done:
                    uid = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        result = self._worker_died(uid, ready)
                        if result is None:
                            continue
                    except Exception as exc:  # the executor itself failed for this unit
                        result = {"id": uid, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    finish(uid, result)
        finally:
            self.shutdown()
        return results

    def _worker_died(self, uid: str, ready: list[str]) -> dict[str, Any] | None:
        """A render process died (crash, out of memory): a fresh pool, and this unit once more."""
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
        self.attempts[uid] = self.attempts.get(uid, 0) + 1
        if self.attempts[uid] < 2:
            self.progress.running.pop(uid, None)
            ready.insert(0, uid)
            return None
        return {"id": uid, "status": "failed", "error": "the render worker process died twice on this unit (a "
                "Blender crash or out of memory); see its log"}

    def _block(self, uid: str, dependents: dict[str, list[str]], results: dict, pending: set, finish) -> None:
        for dep in dependents[uid]:
            if dep in pending and dep not in results:
                finish(dep, {"id": dep, "status": "blocked", "error": f"needs {uid}, which did not finish"})

    def shutdown(self) -> None:
        """Stop everything this executor started (on success, failure or Ctrl-C)."""
        self.stop.set()
        self.bump_pool.shutdown(wait=False, cancel_futures=True)
        self.local_pool.shutdown(wait=False, cancel_futures=True)
        if self.pool is not None:
            children = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for process in children:  # our own render workers, by handle
                if process.is_alive():
                    process.terminate()
            self.pool = None


def bpy_worker_available() -> bool:
    """Can a spawned process import bpy? Inside a real Blender, sys.executable is Blender's bundled
    Python, which has no ``bpy`` module: render workers then need the bpy wheel installed there."""
    import subprocess
    import sys

    try:
        return subprocess.run([sys.executable, "-c", "import bpy"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def state_lock(out: Path):
    """One run per output folder: a second run on the same folder would fight over the same units."""
    import fcntl

    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 (held for the whole run; closed by release)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
