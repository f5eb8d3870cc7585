"""Does a bump freeze Blender? The longest main-thread gap while a job runs: the add-on vs a synchronous call.

Installs the built extension into a throw-away Blender user folder, renders the demo character's
package (tiny) into a fresh library, and starts the real backend with the tiny model in its own
process, with the job slowed to about ``--job-seconds`` by its step count (the whole-image pass at
denoise 1.0; the seconds per step are measured first). Then, in one run:

* **add-on**: ``bpy.ops.bump_studio.render_bump(use_last_render=True)`` returns, and the job runs
  in the add-on's worker thread while the main thread keeps turning;
* **synchronous**: the same job sent with ``requests`` on the main thread (``BumpClient.run``:
  submit, wait, download), which is what add-ons that freeze do.

The ``bpy`` module runs no event loop (``bpy.app.timers`` never fire in it), so a small loop plays
Blender's part: it calls due timer functions, the add-on's ``jobs.tick`` and a 10 ms probe,
exactly as Blender's window-manager loop calls ``bpy.app.timers`` callbacks. The probe records the
time between its calls: that gap is how long the UI could not redraw or take input.

It also measures the backend the add-on starts itself: the Start button and the status light until
the server is ready, the status light polling an idle backend (against the same health checks
made with ``requests`` on the main thread), and every add-on bump then goes to that server.

    python benchmarks/bench_addon.py [--job-seconds 5] [--runs 3] [--poll-seconds 10] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "addon"))
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="bench_addon_blender_"))
os.environ.setdefault("BUMP_STUDIO_LIBRARY", str(Path(tempfile.mkdtemp(prefix="bench_addon_lib_")) / "library"))

import bpy  # noqa: E402
from addon_helpers import (  # noqa: E402
    MODULE,
    BackendProcess,
    addon_module,
    configure,
    free_port,
    tiny_settings,
    user_scene,
)

PROBE_INTERVAL_S = 0.010


class EventLoop:
    """Blender's timer loop in miniature: call each registered function when due; it returns its next interval."""

    def __init__(self) -> None:
        self.timers: list[list] = []  # [due, fn]

    def register(self, fn: Callable[[], float | None], first_interval: float = 0.0) -> None:
        self.timers.append([time.perf_counter() + first_interval, fn])

    def run(self, until: Callable[[], bool], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not until():
            now = time.perf_counter()
            if now > deadline:
                raise TimeoutError("the job did not finish in time")
            for entry in list(self.timers):
                if entry[0] <= now:
                    interval = entry[1]()
                    if interval is None:
                        self.timers.remove(entry)
                    else:
                        entry[0] = time.perf_counter() + interval
            time.sleep(0.001)  # idle wait for events, as the window manager does


class Probe:
    """A 10 ms timer that notes when it ran and what the job was doing (to say where a long gap fell)."""

    def __init__(self, state: Callable[[], str] = lambda: "") -> None:
        self.stamps: list[float] = []
        self.states: list[str] = []
        self.state = state

    def __call__(self) -> float:
        self.stamps.append(time.perf_counter())
        self.states.append(self.state())
        return PROBE_INTERVAL_S

    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in zip(self.stamps, self.stamps[1:], strict=False)]

    def worst(self) -> str:
        gaps = self.gaps_ms()
        i = max(range(len(gaps)), key=gaps.__getitem__)
        return f"{self.states[i]} -> {self.states[i + 1]}"


def timed(fn: Callable[[], float | None], durations: list[tuple[float, float]]) -> Callable[[], float | None]:
    """Wall and main-thread CPU ms of each call (CPU time leaves out the time the OS ran others)."""

    def wrapper() -> float | None:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn()
        finally:
            durations.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))

    return wrapper


def summary(name: str, probe: Probe, job_s: float, ticks: list[tuple[float, float]],
            op_ms: tuple[float, float] | None) -> dict:
    gaps = sorted(probe.gaps_ms())
    return {"scenario": name, "job_s": round(job_s, 2), "probe_calls": len(gaps) + 1, "worst_between": probe.worst(),
            "max_gap_ms": round(gaps[-1], 1), "p99_gap_ms": round(gaps[int(0.99 * (len(gaps) - 1))], 1),
            "median_gap_ms": round(statistics.median(gaps), 1),
            "max_addon_tick_ms": round(max(t[0] for t in ticks), 2) if ticks else None,
            "max_addon_tick_cpu_ms": round(max(t[1] for t in ticks), 2) if ticks else None,
            "operator_ms": round(op_ms[0], 1) if op_ms is not None else None,
            "operator_cpu_ms": round(op_ms[1], 1) if op_ms is not None else None}


def addon_run(scene_name: str, timeout: float) -> dict:
    jobs = addon_module("jobs")
    state = bpy.data.scenes[scene_name].bump_studio
    loop, probe, ticks = EventLoop(), Probe(lambda: f"{state.job_state} {state.job_progress:.2f}"), []
    loop.register(probe)
    started, cpu = time.perf_counter(), time.thread_time()
    assert bpy.ops.bump_studio.render_bump(use_last_render=True) == {"FINISHED"}
    op_ms = ((time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000)
    assert bpy.app.timers.is_registered(jobs.tick)  # what Blender's loop would call
    loop.register(timed(jobs.tick, ticks), jobs.TICK_INTERVAL_S)
    probe()  # the operator itself ran on the main thread: its time counts as a gap too
    probe.stamps[0] = started
    probe.states[0] = "operator"
    loop.run(lambda: jobs.MANAGER.running(scene_name) is None, timeout)
    assert state.job_state == "done", state.job_message
    return summary("add-on (worker thread + timer)", probe, time.perf_counter() - started, ticks, op_ms)


def start_run(timeout: float) -> dict:
    """Start (the preferences' button) and the status light until the server says ready: the Start operator
    and every status tick run on the main thread; the process start and the health checks must not block it."""
    ui = addon_module("backend_ui")
    loop, probe, ticks = EventLoop(), Probe(lambda: ui.status().level), []
    loop.register(probe)
    started, cpu = time.perf_counter(), time.thread_time()
    assert bpy.ops.bump_studio.backend_start() == {"FINISHED"}
    op_ms = ((time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000)
    loop.register(timed(ui.status_timer, ticks), ui.STATUS_INTERVAL_S)
    probe()
    probe.stamps[0], probe.states[0] = started, "operator"
    loop.run(lambda: ui.status().level == "ready", timeout)
    return summary("backend start: Start button, status light until ready", probe, time.perf_counter() - started,
                   ticks, op_ms)


def polling_run(seconds: float) -> dict:
    """The status light on an idle, ready backend: the worker checks /v1/health every 2 s, the timer reads it."""
    ui = addon_module("backend_ui")
    loop, probe, ticks = EventLoop(), Probe(lambda: ui.status().level), []
    loop.register(probe)
    loop.register(timed(ui.status_timer, ticks), ui.STATUS_INTERVAL_S)
    started = time.perf_counter()
    checks = ui.RUNTIME.poller.checks
    loop.run(lambda: time.perf_counter() - started > seconds, seconds + 30)
    row = summary(f"status polling, {ui.RUNTIME.poller.checks - checks} health checks in the worker",
                  probe, time.perf_counter() - started, ticks, None)
    return row


def sync_health_run(url: str, token: str, seconds: float) -> dict:
    """Baseline: the same health checks (every 2 s) made with requests on the main thread."""
    from bump_client.client import BumpClient

    client = BumpClient(url, token=token, retries=0)
    loop, probe = EventLoop(), Probe()
    loop.register(probe)
    loop.register(lambda: (client.health(), 2.0)[1])
    started = time.perf_counter()
    loop.run(lambda: time.perf_counter() - started > seconds, seconds + 30)
    return summary("baseline: health checks with requests on the main thread", probe, time.perf_counter() - started,
                   [], None)


def sync_run(url: str, image: Path, params: dict, package: Path, out: Path, timeout: float,
             token: str | None = None) -> dict:
    from bump_client.client import BumpClient

    loop, probe, done = EventLoop(), Probe(), []
    started = time.perf_counter()

    def blocking() -> None:
        BumpClient(url, token=token).run(image, out, params, package=package, timeout=timeout)  # on the main thread
        done.append(True)

    loop.register(probe)
    loop.register(blocking, 0.05)
    loop.run(lambda: bool(done), timeout)
    probe()
    return summary("synchronous requests on the main thread", probe, time.perf_counter() - started, [],
                   None)


def baseline_run(name: str, seconds: float | None = None, process: subprocess.Popen | None = None) -> dict:
    """The same loop with no job in this process: the machine's own scheduling noise (another process
    may keep the backend busy meanwhile), to read the add-on's rows against."""
    loop, probe = EventLoop(), Probe()
    started = time.perf_counter()
    loop.register(probe)
    if process is not None:
        loop.run(lambda: process.poll() is not None, 120)
    else:
        loop.run(lambda: time.perf_counter() - started > seconds, 120)
    return summary(name, probe, time.perf_counter() - started, [], None)


def other_process_job(url: str, image: Path, params: dict, package: Path, out: Path) -> subprocess.Popen:
    code = ("import json, sys; from bump_client.client import BumpClient; "
            "BumpClient(sys.argv[1]).run(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), package=sys.argv[5])")
    return subprocess.Popen([sys.executable, "-c", code, url, str(image), str(out), json.dumps(params), str(package)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def seconds_per_step(url: str, image: Path, package: Path, params: dict, out: Path) -> float:
    from bump_client.client import BumpClient

    client = BumpClient(url)
    timings = []
    client.run(image, out / "warm", {**params, "steps": 4}, package=package)
    for steps in (4, 16):
        result = client.run(image, out / f"calib{steps}", {**params, "steps": steps}, package=package)
        timings.append(result.status.timings["generate_s"])
    return (timings[1] - timings[0]) / 12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--job-seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3, help="add-on runs (the synchronous one runs once)")
    parser.add_argument("--poll-seconds", type=float, default=10.0, help="how long to watch the idle status light")
    parser.add_argument("--quick", action="store_true", help="one add-on run, 2 s jobs, 4 s of polling")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.job_seconds, args.poll_seconds = 1, 2.0, 4.0

    root = Path(tempfile.mkdtemp(prefix="bench_addon_"))
    backend = BackendProcess(root / "backend")
    try:
        build = subprocess.run([sys.executable, "-m", "addon.build", "--out", str(root / "dist")], cwd=REPO,
                               capture_output=True, text=True, check=True)
        zip_path = build.stdout.strip().splitlines()[-1]
        bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
        rig = user_scene()
        configure(root / "library", root / "work", backend.url)
        scene = bpy.context.scene
        tiny_settings(scene)
        scene.bump_studio.character = rig
        assert bpy.ops.bump_studio.render_package() == {"FINISHED"}
        bpy.ops.render.render()  # the shot, so every run below sends the same last render
        backend.wait_ready()

        settings = scene.bump_studio
        settings.face_pass, settings.denoise = False, 1.0
        ops = addon_module("operators_bump")
        image = root / "shot.png"
        ops.save_render_result(scene, image)
        package = Path(settings.last_package)
        params = ops.bump_params(settings, "photo of a man")
        per_step = seconds_per_step(backend.url, image, package, params, root / "calib")
        settings.steps = max(4, min(150, round(args.job_seconds / per_step)))
        params = ops.bump_params(settings, "photo of a man")

        rows = [baseline_run("loop only, nothing running", seconds=3.0)]
        rows.append(baseline_run("loop only, backend busy with a job from another process",
                                 process=other_process_job(backend.url, image, params, package, root / "other")))

        # the backend the add-on starts itself (same tiny model), then every bump goes to it
        prefs = bpy.context.preferences.addons[MODULE].preferences
        prefs.backend_python, prefs.backend_port = sys.executable, free_port()
        prefs.backend_args = f"--model {root / 'backend' / 'models' / 'spec.json'} --data-dir {root / 'own'} --threads 1"
        os.environ.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        rows.append(start_run(300))
        rows.append(polling_run(args.poll_seconds))
        rows.append(sync_health_run(prefs.backend_url, prefs.backend_token, args.poll_seconds))
        rows += [addon_run(scene.name, 120) for _ in range(args.runs)]
        rows.append(sync_run(prefs.backend_url, image, params, package, root / "sync", 120, prefs.backend_token))
    finally:
        with contextlib.suppress(Exception):
            addon_module("backend_ui").stop_server()
        backend.stop()
    load = os.getloadavg()[0]
    meta = {"load_average_1min": round(load, 1), "cores": os.cpu_count(), "steps": settings.steps, "seconds_per_step": round(per_step, 3), "image": "96x96",
            "probe_interval_ms": PROBE_INTERVAL_S * 1000, "blender": bpy.app.version_string}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return 0
    print(f"job: {meta['steps']} steps x {meta['seconds_per_step']} s, 96x96 render, probe every 10 ms; "
          f"load average {meta['load_average_1min']} on {meta['cores']} cores")
    print("| scenario | job s | longest gap ms | p99 gap ms | median gap ms | longest add-on tick ms (CPU) "
          "| operator ms (CPU) | longest gap between |")
    print("|---|---|---|---|---|---|---|---|")

    def pair(r: dict, key: str) -> str:
        return "-" if r[key] is None else f"{r[key]} ({r[key.replace('_ms', '_cpu_ms')]})"

    for r in rows:
        print(f"| {r['scenario']} | {r['job_s']} | {r['max_gap_ms']} | {r['p99_gap_ms']} | {r['median_gap_ms']} | "
              f"{pair(r, 'max_addon_tick_ms')} | {pair(r, 'operator_ms')} | {r['worst_between'] or '-'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
