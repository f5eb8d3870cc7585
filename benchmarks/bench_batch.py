"""Batch throughput: 4 characters x 8-view packages, render workers 1 vs 2, render/bump overlap on vs off.

Runs the real CLI (``python -m headless_renderer.batch``) four times on one job file against a real
backend server (tiny models built here, loaded through the real loaders; on this CPU-only machine
the "GPU" work shares the CPU with rendering, which a real GPU backend would not). Each config gets
a fresh output folder and ``--no-resume`` so every bump is computed, not fetched. Reports total
time, render phase (until the last render unit finished), the speed-up of 2 workers, and the share
of bump time the overlap hides: (T_no_overlap - T_overlap) / bump phase of the no-overlap run.

    python benchmarks/bench_batch.py [--resolution 256] [--views 8] [--characters 4] [--preset fast]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VIEWS = ["front", "quarter_left", "three_quarter_left", "three_quarter_right", "profile_left", "profile_right",
         "up", "down", "over_shoulder_left"]
CHARACTERS = [("mateo", "demo_man", "{}"), ("aiko", "demo_woman", "{}"),
              ("elder", "demo_man", '{ name = "Elder", age = 68 }'),
              ("amara", "demo_woman", '{ name = "Amara", ethnicity = "african" }')]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
            "BLENDER_USER_RESOURCES": os.environ.get("BLENDER_USER_RESOURCES") or tempfile.mkdtemp()}


def start_backend(root: Path, threads: int) -> tuple[subprocess.Popen, str]:
    from bump_backend.testing import tiny_models as tiny
    from bump_client.client import BackendError, BumpClient

    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"base": str(sd15), "ip_adapter": str(ip_dir), "ip_adapter_weight": weight,
                                "device": "cpu"}))
    port = free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen([sys.executable, "-m", "bump_backend", "serve", "--port", str(port), "--data-dir",
                             str(root / "data"), "--model", str(spec), "--threads", str(threads), "--log-level",
                             "warning"], cwd=REPO, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = BumpClient(url, retries=0)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if client.health().model_state == "ready":
                return proc, url
        except BackendError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("backend did not start; see " + str(root / "server.log"))


def job_text(url: str, args: argparse.Namespace) -> str:
    views = ", ".join(f'"{v}"' for v in VIEWS[: args.views])
    text = f'''version = 1
[defaults]
output = "out"
backends = ["{url}"]
[defaults.package]
views = [{views}]
resolution = {args.resolution}
preset = "{args.preset}"
{f"samples = {args.samples}" if args.samples else ""}
[defaults.bump]
steps = {args.steps}
denoise = 0.4
sampler = "Euler"
seed = 1234
face_size = {args.face_size}
max_side = {args.bump_side}
'''
    for key, demo, phenotype in CHARACTERS[: args.characters]:
        text += f'[characters.{key}]\ndemo = "{demo}"\nphenotype = {phenotype}\n'
    text += '[[entries]]\ncharacters = ["*"]\ntasks = ["package", "bump_package"]\n'
    return text


def run_config(folder: Path, text: str, workers: int, overlap: bool, render_threads: int | None = None) -> dict:
    folder.mkdir(parents=True)
    job = folder / "job.toml"
    job.write_text(text)
    cmd = [sys.executable, "-m", "headless_renderer.batch", str(job), "--workers", str(workers), "--no-resume",
           "--quiet"] + ([] if overlap else ["--no-overlap"])
    if render_threads is not None:
        cmd += ["--render-threads", str(render_threads)]
    started = time.time()
    result = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True)
    total = time.time() - started
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    out = folder / "out"
    records = {p.stem: (json.loads(p.read_text()), p.stat().st_mtime) for p in (out / ".batch/done").glob("*.json")}
    render_end = max(m for r, m in records.values() if r["kind"] == "package") - started
    bump_unit_s = sum(r["seconds"] for r, _ in records.values() if r["kind"] == "bump_view")
    gpu_s = sum(r.get("gpu_seconds") or 0 for r, _ in records.values() if r["kind"] == "bump_view")
    render_unit_s = sum(r["seconds"] for r, _ in records.values() if r["kind"] == "package")
    return {"workers": workers, "overlap": overlap, "total_s": round(total, 2), "render_phase_s": round(render_end, 2),
            "after_renders_s": round(total - render_end, 2), "render_unit_s": round(render_unit_s, 2),
            "bump_unit_s": round(bump_unit_s, 2), "backend_generate_s": round(gpu_s, 2), "units": len(records)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--characters", type=int, default=4)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3, help="bump steps (tiny model: sets the bump's cost)")
    parser.add_argument("--face-size", type=int, default=64, help="bump face-pass size (tiny model: sets its cost)")
    parser.add_argument("--bump-side", type=int, default=128, help="bump working size (tiny model: sets its cost)")
    parser.add_argument("--server-threads", type=int, default=1)
    parser.add_argument("--render-threads", type=int, default=None,
                        help="Cycles threads per render worker (default: the CLI's, cores / workers; 1 leaves the "
                             "other core to the CPU backend, as a GPU backend would leave it)")
    parser.add_argument("--work", default=None, help="folder for outputs (default: a temp folder)")
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_batch_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    server, url = start_backend(work / "backend", args.server_threads)
    rows = []
    try:
        text = job_text(url, args)
        for workers, overlap in ((1, False), (1, True), (2, False), (2, True)):
            row = run_config(work / f"w{workers}_{'overlap' if overlap else 'serial'}", text, workers, overlap,
                             args.render_threads)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)
    by = {(r["workers"], r["overlap"]): r for r in rows}
    print(f"\n{args.characters} characters x {args.views} views at {args.resolution} px ({args.preset}), "
          f"bump: tiny SD 1.5 + IP-Adapter, {args.steps} steps, faces at {args.face_size} px, working size {args.bump_side} px, on the CPU ({os.cpu_count()} cores), "
          f"render threads per worker: {args.render_threads or 'cores / workers'}\n")
    print("| workers | overlap | total s | render phase s | after last render s | bump units s | bump hidden "
          "(tail) | bump hidden (total) |")
    print("|---|---|---|---|---|---|---|---|")
    for (workers, overlap), row in sorted(by.items()):
        serial = by[(workers, False)]
        tail = total = ""
        if overlap and serial["after_renders_s"] > 0:
            # tail: the bump work still left once rendering ends, against all of it when bumps wait
            tail = f"{(1 - row['after_renders_s'] / serial['after_renders_s']) * 100:.0f} %"
            # total: time saved against the bump phase (also moves with render-time noise)
            total = f"{(serial['total_s'] - row['total_s']) / serial['after_renders_s'] * 100:.0f} %"
        print(f"| {workers} | {'on' if overlap else 'off'} | {row['total_s']:.1f} | {row['render_phase_s']:.1f} | "
              f"{row['after_renders_s']:.1f} | {row['bump_unit_s']:.1f} | {tail} | {total} |")
    for overlap in (False, True):
        a, b = by[(1, overlap)], by[(2, overlap)]
        print(f"\n2 workers vs 1 (overlap {'on' if overlap else 'off'}): total {a['total_s'] / b['total_s']:.2f}x, "
              f"render phase {a['render_phase_s'] / b['render_phase_s']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
