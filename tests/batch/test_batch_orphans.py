"""kill -9 of the batch process alone (what the out-of-memory killer does): its render workers end within a
few seconds and write nothing more into the output folder; a job file saved with a byte-order mark is read."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from batch_helpers import REPO, env

from headless_renderer.batch.jobfile import load_job

GRACE_S = 5.0  # a worker may outlive its parent by at most this much


def _package_job(folder: Path, characters: int) -> Path:
    """Only package renders (no backend): enough units that both workers still have work queued."""
    text = '''
        version = 1
        [defaults]
        output = "out"
        [defaults.package]
        views = ["front", "three_quarter_left"]
        resolution = 96
        preset = "preview"
        samples = 1
    '''
    for i in range(characters):
        text += f'''
        [characters.c{i}]
        demo = "{'demo_man' if i % 2 else 'demo_woman'}"
        name = "Person {i}"
        phenotype = {{ age = {25 + i} }}
    '''
    text += '''
        [[entries]]
        characters = ["*"]
        tasks = ["package"]
    '''
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _start_batch(job: Path, *options: str) -> subprocess.Popen:
    """The batch command in a process group of its own (the test kills it with -9)."""
    return subprocess.Popen([sys.executable, "-m", "headless_renderer.batch", str(job), *options, "--quiet"],
                            cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _records(done_dir: Path) -> set[str]:
    """The done-records written (an atomic write's temporary file, ``.NAME.PID-HEX.tmp``, is not one yet)."""
    return {p.name for p in done_dir.iterdir() if not p.name.startswith(".")} if done_dir.is_dir() else set()


def _in_flight(done_dir: Path) -> set[str]:
    """The done-records being written (their temporary files' names, ``.NAME.PID-HEX.tmp``, back to NAME)."""
    return {p.name[1:].rsplit(".", 2)[0] for p in done_dir.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")}


def _wait_for_a_done_unit(proc: subprocess.Popen, done_dir: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not _records(done_dir):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)


def test_kill_9_of_the_batch_process_ends_its_render_workers(tmp_path: Path) -> None:
    job = _package_job(tmp_path, characters=6)
    done_dir = tmp_path / "out" / ".batch" / "done"
    proc = _start_batch(job, "--workers", "2")
    workers: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        _wait_for_a_done_unit(proc, done_dir)  # workers up, one unit done, more queued
        workers = [p for p in parent.children(recursive=True) if "python" in p.name().lower()]
        assert len(workers) >= 2, workers
        records_at_kill = {p.name for p in done_dir.iterdir()}
        os.kill(proc.pid, signal.SIGKILL)  # the batch process only, not its group
        killed_at = time.monotonic()
        proc.wait(10)
        while not all(_gone(w.pid) for w in workers) and time.monotonic() - killed_at < 30:
            time.sleep(0.05)
        lived = time.monotonic() - killed_at
        survivors = [w.pid for w in workers if not _gone(w.pid)]
        assert not survivors, f"workers {survivors} still running {lived:.1f} s after their parent's kill -9"
        assert lived < GRACE_S, f"workers outlived their parent by {lived:.1f} s"
        print(f"render workers ended {lived:.2f} s after their parent's kill -9")
        time.sleep(1.0)
        late = {p.name for p in done_dir.iterdir()} - records_at_kill
        assert late <= {p for p in late if (done_dir / p).stat().st_mtime <= time.time() - 1.0 - lived + 0.3}, (
            f"done-records written after the parent died: {late}")
    finally:  # never leave a process behind, even when the test fails
        if proc.poll() is None:
            proc.kill()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()


def test_a_worker_whose_parent_is_gone_writes_no_done_record(tmp_path: Path) -> None:
    """The guard in run_unit: the same real unit is recorded for a live parent and refused for a gone one."""
    from bump_backend.testing.tiny_models import build_tiny_package

    build_tiny_package(tmp_path / "pkg")
    views = {name: f"pkg/{name}.png" for name in ("front", "three_quarter_left", "three_quarter_right")}
    script = textwrap.dedent(f'''
        import json, os, sys
        from headless_renderer.batch import work
        unit = {{"id": "x/assemble", "kind": "assemble", "character": "x", "hash": sys.argv[2] * 64, "needs": [],
                "spec": {{"package": "pkg", "out": "bumped_" + sys.argv[2], "views": {views!r}}},
                "outputs": ["bumped_" + sys.argv[2]]}}
        if sys.argv[1] == "gone":
            work._PARENT_PID = os.getppid() + 1_000_000  # as if reparented: the batch process is gone
        else:
            work._PARENT_PID = os.getppid()
        print(json.dumps(work.run_unit(unit, {str(tmp_path)!r})))
    ''')
    results = {}
    for state, tag in (("alive", "a"), ("gone", "b")):
        run = subprocess.run([sys.executable, "-c", script, state, tag], capture_output=True, text=True, env=env(),
                             timeout=120, cwd=REPO)
        assert run.returncode == 0, run.stderr[-2000:]
        results[state] = run.stdout.strip().splitlines()[-1]
    assert '"done"' in results["alive"], results
    assert '"failed"' in results["gone"] and "no done-record written" in results["gone"], results
    records = sorted(p.name for p in (tmp_path / ".batch" / "done").iterdir())
    assert len(records) == 1, records  # only the live parent's unit


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b""])
def test_job_file_with_a_utf8_byte_order_mark_is_read(tmp_path: Path, bom: bytes) -> None:
    job = _package_job(tmp_path, characters=1)
    job.write_bytes(bom + job.read_bytes())
    loaded = load_job(job)
    assert list(loaded.characters) == ["c0"]


def _assemble_unit(tag: str, views: dict[str, str]) -> dict:
    return {"id": f"x/assemble_{tag}", "kind": "assemble", "character": "x", "hash": tag * 64, "needs": [],
            "spec": {"package": "pkg", "out": f"bumped_{tag}", "views": views}, "outputs": [f"bumped_{tag}"]}


def test_a_ray_task_records_only_while_its_run_holds_the_folder(tmp_path: Path) -> None:
    """Ray workers are not the run's children, so the rule is the output folder's lock: a unit is
    recorded while the run it names holds the lock, refused for another run's pid and after the run's
    kill -9 (the lock file still names it, but nobody holds its flock)."""
    from bump_backend.testing.tiny_models import build_tiny_package
    from headless_renderer.batch import work

    build_tiny_package(tmp_path / "pkg")
    views = {name: f"pkg/{name}.png" for name in ("front", "three_quarter_left", "three_quarter_right")}
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f'''
        import sys, time
        from pathlib import Path
        from headless_renderer.batch.local import state_lock
        lock = state_lock(Path({str(tmp_path)!r}))
        print("held" if lock is not None else "busy", flush=True)
        time.sleep(120)
    ''')], cwd=REPO, env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        results = {"owner alive": work.run_unit(_assemble_unit("a", views), str(tmp_path), {"run_pid": holder.pid}),
                   "another run": work.run_unit(_assemble_unit("b", views), str(tmp_path),
                                                {"run_pid": holder.pid + 1})}
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        results["owner killed"] = work.run_unit(_assemble_unit("c", views), str(tmp_path), {"run_pid": holder.pid})
    finally:
        if holder.poll() is None:
            holder.kill()
    assert results["owner alive"]["status"] == "done", results
    for case in ("another run", "owner killed"):
        assert results[case]["status"] == "failed" and "no done-record written" in results[case]["error"], results
    records = sorted(p.name for p in (tmp_path / ".batch" / "done").iterdir())
    assert len(records) == 1, records  # only the unit of the run that held the folder


@pytest.mark.slow
def test_kill_9_of_a_ray_batch_run_ends_its_cluster_and_records_nothing_more(tmp_path: Path) -> None:
    """A real Ray run on a local 1-CPU cluster it started, killed with kill -9 after its first unit:
    every process it started (GCS, raylet, agents, task workers) ends within a few seconds and no
    done-record appears afterwards."""
    pytest.importorskip("ray", reason="ray is an optional extra (pip install ray==2.60.0)")
    job = _package_job(tmp_path, characters=4)
    done_dir = tmp_path / "out" / ".batch" / "done"
    proc = _start_batch(job, "--executor", "ray", "--workers", "1")
    started: list[psutil.Process] = []
    try:
        parent = psutil.Process(proc.pid)
        _wait_for_a_done_unit(proc, done_dir)  # cluster up, one unit done, more queued
        started = parent.children(recursive=True)
        names = {p.name() for p in started if p.is_running()}
        assert {"raylet", "gcs_server"} <= names, names
        records_at_kill, writing_at_kill = _records(done_dir), _in_flight(done_dir)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait(10)
        while not all(_gone(p.pid) for p in started) and time.monotonic() - killed_at < 60:
            time.sleep(0.05)
        lived = time.monotonic() - killed_at
        survivors = [(p.pid, p.name()) for p in started if not _gone(p.pid)]
        assert not survivors, f"{survivors} still running {lived:.1f} s after the run's kill -9"
        assert lived < GRACE_S, f"the cluster outlived its run by {lived:.1f} s"
        print(f"the run's Ray cluster ({len(started)} processes) ended {lived:.2f} s after its kill -9")
        time.sleep(1.0)
        # A record whose atomic write was under way at the kill may land; no unit starts or ends after it.
        assert records_at_kill <= _records(done_dir) <= records_at_kill | writing_at_kill
    finally:  # never leave a process behind, even when the test fails
        if proc.poll() is None:
            proc.kill()
        for process in started:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
