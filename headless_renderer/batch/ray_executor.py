"""The same job on a Ray cluster: render units as Ray tasks that need a CPU, bump units as calls to
backend servers registered as Ray actors (one actor per backend URL). Ray does the scheduling:
a unit's upstream results are passed as arguments, so it starts when they are ready and renders
and bumps overlap by themselves. Outputs go to the job's output folder, which every node must
see at the same path (a shared file system); done-records make resume work as it does locally.

Ray is optional (``pip install ray==2.60.0``); without it this module explains what to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bump_client.client import BackendError, BumpClient
from headless_renderer.batch import work
from headless_renderer.batch.local import RunOptions
from headless_renderer.batch.progress import Progress
from headless_renderer.batch.units import BUMP, RENDER, Plan, log_path

RAY_MISSING = ("the Ray executor needs the 'ray' package (pip install ray==2.60.0); "
               "use --executor local to run on this machine")


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"{RAY_MISSING} ({exc})") from None
    return ray


def render_task_shape(node_cpus: list[float], workers: int | None,
                      render_threads: int | None) -> tuple[float, int]:
    """(CPUs a render task asks Ray for, Cycles threads it renders with), fitted to the cluster.

    A task asking for more CPUs than any node has is never scheduled and the run waits forever
    (a 1-CPU local cluster with ``--workers 1`` did). ``--render-threads N`` asks for N; else
    ``--workers N`` shares the cluster's CPUs between N renders; else two per task: a Blender
    render with one thread still keeps a second core busy (its scheduler threads spin while they
    wait: 24 s of CPU for a 12 s render, measured), so "1 CPU" tasks would oversubscribe a node two
    to one, while two threads use both cores for real (7.0 s for the same render, 13 s of CPU).
    The request is capped at the largest node's CPUs, so it always fits somewhere.
    """
    largest = max(node_cpus, default=0.0)
    if render_threads is not None and render_threads > 0:
        threads = render_threads
    elif workers:
        threads = max(1, int(sum(node_cpus) // workers))
    else:
        threads = 2
    return (min(float(threads), largest) if largest > 0 else 0.0), threads


def _blocked(unit_id: str, upstream: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    for result in upstream:
        if result.get("status") != "done":
            return {"id": unit_id, "status": "blocked", "error": f"needs {result.get('id')}, which did not finish"}
    return None


def _render_task(unit_data: dict[str, Any], out: str, threads: int, env: dict[str, str], run_pid: int,
                 *upstream: dict[str, Any]) -> dict[str, Any]:
    """A Ray task: the worker process keeps its bpy between tasks (Ray reuses worker processes)."""
    blocked = _blocked(unit_data["id"], upstream)
    if blocked:
        return blocked
    work.init_render_worker(threads, env)
    return work.run_unit(unit_data, out, {"run_pid": run_pid})


def _local_task(unit_data: dict[str, Any], out: str, run_pid: int, *upstream: dict[str, Any]) -> dict[str, Any]:
    return _blocked(unit_data["id"], upstream) or work.run_unit(unit_data, out, {"fd_log": False, "run_pid": run_pid})


class _BackendActor:
    """One backend server as a Ray actor: bump calls queue here and reach the server a few at a time."""

    def __init__(self, url: str, token: str | None, context: dict[str, Any]) -> None:
        self.client = BumpClient(url, token, timeout=60.0)
        self.context = context

    def health(self) -> str | None:
        try:
            self.client.health()
        except BackendError as exc:
            return str(exc)
        return None

    def bump(self, unit_data: dict[str, Any], out: str, *upstream: dict[str, Any]) -> dict[str, Any]:
        return _blocked(unit_data["id"], upstream) or work.run_unit(unit_data, out,
                                                                    {**self.context, "client": self.client})


def _env() -> dict[str, str]:
    keys = ("BLENDER_USER_RESOURCES", "OMP_NUM_THREADS", "HF_HUB_OFFLINE")
    return {k: os.environ[k] for k in keys if k in os.environ}


def start_reaper() -> subprocess.Popen | None:
    """The watcher that ends this process's local cluster if this process is killed (None: cannot run)."""
    try:
        return subprocess.Popen([sys.executable, "-m", "headless_renderer.batch.ray_reaper", str(os.getpid())],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": _pythonpath()})
    except OSError:
        return None


def _pythonpath() -> str:
    repo = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p)


def connect(address: str | None, num_cpus: int | None) -> Any:
    """Join the cluster at ``address`` (``auto``, ``ray://host:10001``) or start a local one."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": {**_env(), "PYTHONPATH": _pythonpath()}}
    kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": runtime_env, "log_to_driver": False,
                              "configure_logging": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    try:
        ray.init(**kwargs)
    except Exception as exc:  # ConnectionError and Ray's own errors: say where it tried
        raise RayUnavailable(f"cannot start or reach Ray at {address or 'a new local cluster'}: {exc}") from None
    return ray


def run_on_ray(plan: Plan, todo: list[str], options: RunOptions, progress: Progress, context: dict[str, Any],
               address: str | None = None, shutdown: bool = True,
               results: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Submit every unit to Ray at once (dependencies as object refs); collect results as they land
    (into ``results``, which keeps what finished if the run is interrupted)."""
    starts_cluster = not address and not import_ray().is_initialized()
    reaper = start_reaper() if starts_cluster else None  # a cluster this run starts ends with it
    try:
        ray = connect(address, options.workers or None)
    except BaseException:
        _stop(reaper)
        raise
    out, run_pid = str(plan.out), os.getpid()
    context = {**context, "run_pid": run_pid}
    node_cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    num_cpus, threads = render_task_shape(node_cpus, options.workers or None, options.render_threads)
    render = ray.remote(num_cpus=num_cpus, max_retries=1)(_render_task)
    local = ray.remote(num_cpus=0)(_local_task)
    actor_class = ray.remote(num_cpus=0, max_concurrency=max(1, options.bump_slots))(_BackendActor)
    backends = plan.job.backends
    actors = [actor_class.remote(url, plan.job.token, context) for url in backends]
    healthy = []
    for url, actor, note in zip(backends, actors, ray.get([a.health.remote() for a in actors]), strict=True):
        if note:
            progress._emit(f"[batch] backend {url} left out: {note}", own_line=True)
        else:
            healthy.append(actor)
    refs: dict[str, Any] = {}
    owner: dict[Any, str] = {}
    results = {} if results is None else results
    render_refs = []
    bump_index = 0
    deferred: list[str] = []
    try:
        def submit(uid: str) -> None:
            nonlocal bump_index
            unit = plan.units[uid]
            upstream = [refs[n] for n in unit.needs if n in refs]
            data = unit.to_dict()
            if unit.resource == RENDER:
                ref = render.remote(data, out, threads, _env(), run_pid, *upstream)
                render_refs.append(ref)
            elif unit.resource == BUMP and not healthy:  # a failed result its dependents see as such
                ref = ray.put({"id": uid, "status": "failed", "error": "no backend is reachable"})
            elif unit.resource == BUMP:
                actor = healthy[bump_index % len(healthy)]
                bump_index += 1
                ref = actor.bump.remote(data, out, *upstream)
            else:
                ref = local.remote(data, out, run_pid, *upstream)
            refs[uid] = ref
            owner[ref] = uid
            progress.start(uid)

        for uid in todo:
            unit = plan.units[uid]
            if (unit.resource == BUMP and not options.overlap) or any(n in deferred for n in unit.needs):
                deferred.append(uid)
            else:
                submit(uid)
        while owner or deferred:
            if deferred and not options.overlap and all(r not in owner for r in render_refs):
                for uid in deferred:
                    submit(uid)
                deferred.clear()
            if not owner:
                continue
            done, _ = ray.wait(list(owner), num_returns=1, timeout=0.5)
            progress.tick()
            for ref in done:
                uid = owner.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task itself died (worker crash, node lost)
                    result = {"id": uid, "status": "failed", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                results[uid] = result
                progress.finish(uid, result["status"], result.get("seconds"), result.get("error"),
                                str(log_path(plan.out, plan.units[uid])))
    except KeyboardInterrupt:
        for ref in owner:
            ray.cancel(ref, force=True)
        raise
    finally:
        for actor in actors:
            ray.kill(actor)
        if shutdown and not address:
            ray.shutdown()
            _stop(reaper)  # kept cluster (shutdown=False): the watcher stays, to end it with this process
    return results


def _stop(reaper: subprocess.Popen | None) -> None:
    """Stop the watcher once the cluster is shut down normally (it would find nothing left to end)."""
    if reaper is not None and reaper.poll() is None:
        reaper.terminate()
        try:
            reaper.wait(5)
        except subprocess.TimeoutExpired:
            reaper.kill()
