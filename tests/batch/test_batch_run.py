"""End to end: the real CLI, render worker processes with bpy, and a tiny-model backend server.

One module-wide first run; later tests copy its output folder or use their own, so each test
states what it proves: the first run completes, a second run skips everything, a changed setting
re-runs only what it affects, a killed run resumes without duplicates, a failing unit stops
nothing else, and Ray gives the same outputs as the local executor.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from batch_helpers import REPO, done_records, env, job_text, report, run_batch

from bump_contracts.package_manifest import load_package
from bump_contracts.render_sidecar import load as load_sidecar
from profile_rig.imaging.png_io import read_png

ALL_UNITS = {
    "mateo~package", "aiko~package", "mateo~bump~front", "mateo~bump~three_quarter_left", "mateo~package_bumped",
    "aiko~bump~front", "aiko~bump~three_quarter_left", "aiko~package_bumped",
    "mateo~shot~street~CamA~f0001", "mateo~bump_shot~street~CamA~f0001"}


def _job(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"


def _stale(out: Path) -> list[str]:
    return [str(p) for p in out.rglob("*") if ".partial-" in p.name or ".old-" in p.name or p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def first(tmp_path_factory, backend, shot_blend):
    folder = tmp_path_factory.mktemp("first")
    job = _job(folder, job_text(backend["url"], shot_blend))
    started = time.monotonic()
    result = run_batch(job, "--workers", "2")
    return {"job": job, "out": folder / "out", "result": result, "seconds": time.monotonic() - started}


def test_first_run_completes(first):
    _ok(first["result"])
    out = first["out"]
    assert set(done_records(out)) == ALL_UNITS
    for name in ("mateo", "aiko"):
        package = load_package(out / name / "package", check_hashes=True)
        assert [v.name for v in package.views] == ["front", "three_quarter_left"]
        assert package.views[0].width == 96
        bumped = load_package(out / name / "package_bumped", check_hashes=True)
        assert bumped.origin == "bumped" and len(bumped.views) == 2
        assert (out / name / "contact_sheet.png").is_file()
    assert load_package(out / "aiko" / "package").phenotype["age"] == 35
    sidecar = load_sidecar(str(out / "mateo/shots/street/CamA_f0001.sidecar.json"))
    assert (sidecar.width, sidecar.height) == (96, 64) and len(sidecar.faces) == 1
    assert read_png(out / "mateo/shots_bumped/street/CamA_f0001.png").shape[:2] == (64, 96)
    summary = report(out)
    assert summary["ok"] and summary["counts"] == {"done": 10}
    assert all(Path(u["log"]).is_file() for u in summary["units"].values())
    assert "rendering" in (out / ".batch/logs/mateo~shot~street~CamA~f0001.log").read_text()
    assert not _stale(out)


def test_second_run_skips_everything(first, backend):
    _ok(first["result"])
    before = done_records(first["out"])
    jobs_before = len(backend["client"].jobs(limit=500))
    result = run_batch(first["job"])
    _ok(result)
    assert report(first["out"])["counts"] == {"skipped": 10}
    assert done_records(first["out"]) == before
    assert len(backend["client"].jobs(limit=500)) == jobs_before


def test_changed_setting_reruns_only_affected_units(first, backend, shot_blend, tmp_path):
    _ok(first["result"])
    folder = tmp_path / "changed"
    shutil.copytree(first["out"], folder / "out")
    before = done_records(folder / "out")
    job = _job(folder, job_text(backend["url"], shot_blend, aiko_denoise=0.6, mateo_samples=2))
    dry = subprocess.run([sys.executable, "-m", "headless_renderer.batch", str(job), "--dry-run"], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=120)
    expected = {"aiko~bump~front", "aiko~bump~three_quarter_left", "aiko~package_bumped", "mateo~package",
                "mateo~bump~front", "mateo~bump~three_quarter_left", "mateo~package_bumped",
                "mateo~bump_shot~street~CamA~f0001"}
    planned = {line.split()[1].replace("/", "~") for line in dry.stdout.splitlines() if line.startswith("run ")}
    assert planned == expected
    result = run_batch(job, "--workers", "0")  # renders in this process: the path a real Blender takes
    _ok(result)
    summary = report(folder / "out")
    ran = {uid.replace("/", "~") for uid, u in summary["units"].items() if u["status"] == "done"}
    assert ran == expected
    after = done_records(folder / "out")
    for key in ALL_UNITS - expected:
        assert after[key] == before[key]  # untouched, not re-run
    assert load_package(folder / "out/mateo/package").renderer["samples"] == 2
    assert after["aiko~bump~front"]["hash"] != before["aiko~bump~front"]["hash"]


def test_failing_unit_stops_nothing_else_and_exits_nonzero(shot_blend, tmp_path):
    text = f'''
        [defaults]
        output = "out"
        [characters.mateo]
        demo = "demo_man"
        [[entries]]
        characters = ["mateo"]
        tasks = ["shots"]
        [[entries.shots]]
        name = "street"
        blend = "{shot_blend}"
        cameras = ["NoSuchCamera", "CamB"]
        bump = false
        resolution = [64, 48]
        preset = "preview"
        samples = 1
    '''
    job = _job(tmp_path, text)
    result = run_batch(job, "--workers", "1")
    assert result.returncode == 1, result.stderr[-3000:]
    summary = report(tmp_path / "out")
    assert summary["counts"] == {"done": 1, "failed": 1}
    [failure] = summary["failures"]
    assert failure["unit"] == "mateo/shot/street/NoSuchCamera/current"
    assert "no camera NoSuchCamera" in failure["error"] and "CamA, CamB" in failure["error"]
    assert "no camera NoSuchCamera" in result.stderr
    assert read_png(tmp_path / "out/mateo/shots/street/CamB_current.png").shape[:2] == (48, 64)


@pytest.fixture(scope="module")
def killed(tmp_path_factory, backend):
    """A run killed (SIGKILL, the whole process group) after its first unit, then resumed."""
    folder = tmp_path_factory.mktemp("killed")
    text = job_text(backend["url"], None, shots=False).replace("seed = 7", "seed = 11")
    job = _job(folder, text)
    out = folder / "out"
    known = {j.id for j in backend["client"].jobs(limit=500)}
    proc = subprocess.Popen([sys.executable, "-m", "headless_renderer.batch", str(job), "--workers", "2", "--quiet"],
                            cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    # a finished record, not the temporary file an atomic write has open for a moment
    while not (out / ".batch/done").is_dir() or not any((out / ".batch/done").glob("*.json")):
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    before = done_records(out)
    resumed = run_batch(job, "--workers", "2")
    return {"job": job, "out": out, "before": before, "resumed": resumed, "known": known}


def test_killed_run_resumes_without_duplicates(killed, backend):
    _ok(killed["resumed"])
    out, before = killed["out"], killed["before"]
    assert 1 <= len(before) < 8
    after = done_records(out)
    assert len(after) == 8
    for key, record in before.items():
        assert after[key] == record  # finished before the kill: not run again
    summary = report(out)
    assert summary["counts"] == {"skipped": len(before), "done": 8 - len(before)}
    assert not _stale(out)
    for name in ("mateo", "aiko"):
        assert sorted(p.name for p in (out / name / "bump").iterdir()) == [
            "front.json", "front.png", "front_mask.png", "three_quarter_left.json", "three_quarter_left.png",
            "three_quarter_left_mask.png"]
    new_jobs = [j for j in backend["client"].jobs(limit=500) if j.id not in killed["known"]]
    labels = [j.label for j in new_jobs]
    assert sorted(labels) == sorted(set(labels)) and len(labels) == 4  # one backend job per bump unit, ever


def test_ray_gives_the_same_outputs_as_local(killed, backend, tmp_path):
    pytest.importorskip("ray", reason="ray is an optional extra (pip install ray==2.60.0)")
    _ok(killed["resumed"])
    text = killed["job"].read_text().replace('output = "out"', 'output = "ray_out"')
    job = _job(tmp_path, text)
    # --no-resume: new backend idempotency keys, so the bumps are computed again, not fetched
    result = run_batch(job, "--executor", "ray", "--workers", "2", "--no-resume", timeout=400)
    _ok(result)
    local, ray_out = killed["out"], tmp_path / "ray_out"
    local_records, ray_records = done_records(local), done_records(ray_out)
    assert {k: r["hash"] for k, r in local_records.items()} == {k: r["hash"] for k, r in ray_records.items()}
    assert report(ray_out)["executor"] == "ray"
    for name in ("mateo", "aiko"):
        for sub in ("package", "bump", "package_bumped"):
            files = sorted(p.relative_to(local) for p in (local / name / sub).glob("*.png"))
            assert files == sorted(p.relative_to(ray_out) for p in (ray_out / name / sub).glob("*.png"))
            for rel in files:
                a, b = read_png(local / rel).astype(int), read_png(ray_out / rel).astype(int)
                assert a.shape == b.shape
                assert np.abs(a - b).max() <= 2, f"{rel}: outputs differ"


# -- the character library -------------------------------------------------------------------------
LIBRARY_UNITS = {"mateo": ("mateo~bump~front", "mateo~bump~three_quarter_left", "mateo~bump_shot~street~CamA~f0001"),
                 "aiko": ("aiko~bump~front", "aiko~bump~three_quarter_left"),
                 "nadia": ("nadia~bump~front", "nadia~bump~three_quarter_left")}


@pytest.fixture(scope="module")
def library_runs(tmp_path_factory, first, backend, shot_blend):
    """The test job with a library: Mateo and Aiko (demo characters, created in the library by the run)
    and Nadia, a library character whose active package (v1) is bumped. Run twice."""
    from character_library import Library

    _ok(first["result"])
    folder = tmp_path_factory.mktemp("library")
    with Library.open(folder / "lib") as lib:
        lib.create_character("Nadia", age=31, gender="woman")
        lib.add_package("Nadia", first["out"] / "aiko" / "package")
    text = job_text(backend["url"], shot_blend).replace('output = "out"', 'output = "out"\nlibrary = "lib"')
    text = text.replace('characters = ["*"]', 'characters = ["mateo", "aiko"]')
    text += '\n[characters.nadia]\nlibrary = "Nadia"\n\n[[entries]]\ncharacters = ["nadia"]\ntasks = ["bump_package"]\n'
    job = _job(folder, text)
    started = time.monotonic()
    runs = [run_batch(job, "--workers", "2")]
    seconds = time.monotonic() - started
    reports = [report(folder / "out") if runs[0].returncode == 0 else None]
    runs.append(run_batch(job))
    reports.append(report(folder / "out"))
    return {"job": job, "out": folder / "out", "lib": folder / "lib", "runs": runs, "reports": reports,
            "seconds": seconds}


def test_batch_run_records_packages_and_history_in_the_library(library_runs):
    import json

    from character_library import Library

    _ok(library_runs["runs"][0])
    out = library_runs["out"]
    summary = library_runs["reports"][0]["library"]
    assert summary["problems"] == [] and summary["runs_added"] == 7 and len(summary["packages_added"]) == 5
    with Library.open(library_runs["lib"], create=False) as lib:
        for name in ("Mateo", "Aiko", "Nadia"):  # Nadia's v1: added before the run (a rendered package too)
            packages = {p.version: p for p in lib.list_packages(name)}
            assert sorted(packages) == [1, 2], name
            assert packages[1].active and not packages[2].active  # a bumped version never replaces the active one
            assert packages[2].origin == "bumped" and packages[2].parent_version == 1
            assert packages[1].origin == "rendered"
            assert [v.name for v in packages[2].views] == ["front", "three_quarter_left"]
            key = name.lower()
            bumped = load_package(out / key / "package_bumped")
            assert [v.sha256 for v in packages[2].views] == [v.sha256 for v in bumped.views]
            runs = {r.settings["batch"]["unit"].replace("/", "~"): r for r in lib.list_runs(name)}
            assert set(runs) == set(LIBRARY_UNITS[key])
            for unit, run in runs.items():
                done = done_records(out)[unit]
                record_path = next(p for p in run.outputs if p.endswith(".json"))
                record = json.loads(Path(record_path).read_text())
                scores = [f["identity_score"] for f in record["faces"] if f.get("identity_score") is not None]
                assert run.identity_score == (max(scores) if scores else None)
                assert (run.seed, run.steps, run.sampler, run.package_version) == (7, 2, "Euler", 1)
                assert run.denoise == 0.5 and run.settings["face_size"] == 64
                assert run.settings["batch"]["job_id"] == done["job_id"] and run.model.endswith("]")
                assert all(Path(p).is_file() for p in run.outputs) and len(run.outputs) == 3
            lines = (lib.character_path(name) / "history.jsonl").read_text().splitlines()
            assert len(lines) == len(LIBRARY_UNITS[key])
        mateo = lib.get_character("Mateo")
        assert mateo.source == {"kind": "demo"} and mateo.active_version == 1


def test_second_run_adds_nothing_to_the_library(library_runs):
    from character_library import Library

    first_run, second = library_runs["runs"]
    _ok(first_run)
    _ok(second)
    summary = library_runs["reports"][1]
    assert summary["counts"] == {"skipped": 13}  # 10 units as before + 2 bumps and the bumped package of Nadia
    assert summary["library"]["packages_added"] == [] and summary["library"]["runs_added"] == 0
    assert (summary["library"]["packages_known"], summary["library"]["runs_known"]) == (5, 7)
    with Library.open(library_runs["lib"], create=False) as lib:
        assert [len(lib.list_packages(n)) for n in ("Mateo", "Aiko", "Nadia")] == [2, 2, 2]
        assert lib.count_runs() == 7
        for name in ("Mateo", "Aiko", "Nadia"):
            lines = (lib.character_path(name) / "history.jsonl").read_text().splitlines()
            assert len(lines) == len(LIBRARY_UNITS[name.lower()])
    assert "0 package version(s) and 0 bump run(s) recorded, 5 and 7 already there" in second.stderr


# -- the backend's model ---------------------------------------------------------------------------
class _Health:
    """A stand-in backend that only answers ``GET /v1/health`` (what planning asks)."""

    def __init__(self, document: dict) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        body = json.dumps(document).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path == "/v1/health" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if self.path == "/v1/health" else b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_model_change_reruns_only_the_bump_units(first, backend, shot_blend, tmp_path):
    import requests

    _ok(first["result"])
    shutil.copytree(first["out"], tmp_path / "out")
    health = requests.get(f"{backend['url']}/v1/health", timeout=10).json()
    other = {**health, "model": {**health["model"], "hash": "0123456789"}}
    expected = {k for k in ALL_UNITS if "bump" in k}  # the view bumps, bumped packages and the shot's bump
    for document, runs in ((health, set()), (other, expected)):
        fake = _Health(document)
        try:
            job = _job(tmp_path, job_text(fake.url, shot_blend))
            dry = subprocess.run([sys.executable, "-m", "headless_renderer.batch", str(job), "--dry-run"], cwd=REPO,
                                 env=env(), capture_output=True, text=True, timeout=120)
        finally:
            fake.close()
        assert dry.returncode == 0, dry.stderr
        planned = {line.split()[1].replace("/", "~") for line in dry.stdout.splitlines() if line.startswith("run ")}
        assert planned == runs
    # the first run saved the model it planned with; with every backend down a dry run plans with it
    down = _job(tmp_path, job_text("http://127.0.0.1:9", shot_blend))
    dry = subprocess.run([sys.executable, "-m", "headless_renderer.batch", str(down), "--dry-run"], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "planning with the last run's" in dry.stderr
    assert not [line for line in dry.stdout.splitlines() if line.startswith("run ")]


@pytest.mark.slow
def test_ray_with_one_worker_finishes(tmp_path):
    """`--executor ray --workers 1` starts a 1-CPU cluster; its render tasks must fit it (they asked for 2
    and the run waited forever)."""
    pytest.importorskip("ray", reason="ray is an optional extra (pip install ray==2.60.0)")
    job = tmp_path / "job.toml"
    job.write_text('version = 1\n[defaults]\noutput = "out"\n[defaults.package]\nviews = ["front"]\n'
                   'resolution = 96\npreset = "preview"\nsamples = 1\n[characters.mateo]\ndemo = "demo_man"\n'
                   '[[entries]]\ncharacters = ["mateo"]\ntasks = ["package"]\n')
    result = run_batch(job, "--executor", "ray", "--workers", "1", timeout=240)
    _ok(result)
    assert (tmp_path / "out" / "mateo" / "package" / "front.png").is_file()
