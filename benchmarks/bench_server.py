"""Bench the job server: N jobs submitted at once from 4 client threads, tiny model, real server process.

Reports throughput, p50/p95 of submit -> first progress and submit -> done, server RSS before and
after each round, and the server's own per-job overhead (everything but generation), in ms and
as a share of a real GPU job (1-3 s). Run: ``python benchmarks/bench_server.py [--jobs 100]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def build_models(root: Path) -> tuple[Path, Path]:
    import torch

    from bump_backend.testing import tiny_models as tiny

    torch.set_num_threads(1)
    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    package = tiny.build_tiny_package(root / "package")
    spec = root / "spec.json"
    spec.write_text(json.dumps({"base": str(sd15), "ip_adapter": str(ip_dir), "ip_adapter_weight": weight,
                                "device": "cpu"}))
    return spec, package


def start_server(root: Path, spec: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log = open(root / "server.log", "wb")  # noqa: SIM115 (lives as long as the server)
    return subprocess.Popen([sys.executable, "-m", "bump_backend", "serve", "--port", str(port), "--data-dir",
                             str(root / "data"), "--model", str(spec), "--threads", "1", "--max-queue", "1024",
                             "--log-level", "warning"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_round(client_cls, url: str, image: Path, package: Path, params: dict, jobs: int, threads: int) -> dict:
    per_thread = jobs // threads
    submitted: list[list[tuple[str, float, float]]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def submit(k: int) -> None:
        client = client_cls(url, timeout=60)
        barrier.wait()
        for i in range(per_thread):
            t0 = time.perf_counter()
            job = client.submit(image, params, package=package, label=f"c{k}-{i}")
            submitted[k].append((job.id, t0, time.perf_counter()))

    started = time.perf_counter()
    workers = [threading.Thread(target=submit, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    client = client_cls(url, timeout=60)
    finals = {}
    for per in submitted:
        for job_id, _, _ in per:
            finals[job_id] = client.wait(job_id, stream=False, poll_interval=0.05, timeout=600)
    wall = time.perf_counter() - started
    statuses = list(finals.values())
    assert all(s.state == "done" for s in statuses), [s.error for s in statuses if s.state != "done"][:3]
    in_order = all(
        [datetime.fromisoformat(finals[j].started) for j, _, _ in per]
        == sorted(datetime.fromisoformat(finals[j].started) for j, _, _ in per) for per in submitted)
    submit_ms = [(t1 - t0) * 1000 for per in submitted for _, t0, t1 in per]
    t = [s.timings for s in statuses]
    first = [x["accept_s"] + x["first_progress_s"] for x in t]
    done = [x["accept_s"] + x["total_s"] for x in t]
    gpu_overhead = [x["gpu_overhead_s"] * 1000 for x in t]
    latency_overhead = [(x["accept_s"] + x["total_s"] - x["queue_s"] - x["generate_s"]) * 1000 for x in t]
    return {
        "jobs": len(statuses), "wall_s": wall, "throughput_jobs_s": len(statuses) / wall, "in_order": in_order,
        "submit_ms_p50": pct(submit_ms, 0.5), "submit_ms_p95": pct(submit_ms, 0.95),
        "first_progress_s_p50": pct(first, 0.5), "first_progress_s_p95": pct(first, 0.95),
        "done_s_p50": pct(done, 0.5), "done_s_p95": pct(done, 0.95),
        "generate_s_mean": statistics.mean(x["generate_s"] for x in t),
        "gpu_overhead_ms_mean": statistics.mean(gpu_overhead), "gpu_overhead_ms_p95": pct(gpu_overhead, 0.95),
        "latency_overhead_ms_mean": statistics.mean(latency_overhead),
        "latency_overhead_ms_p95": pct(latency_overhead, 0.95),
        "save_ms_mean": statistics.mean(x["save_s"] * 1000 for x in t),
        "accept_ms_mean": statistics.mean(x["accept_s"] * 1000 for x in t),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --jobs (RSS is read after each)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", default=None, help="write the raw numbers here")
    args = parser.parse_args()

    import numpy as np
    import psutil
    from PIL import Image

    from bump_client.client import BumpClient

    root = Path(tempfile.mkdtemp(prefix="bench_server_"))
    spec, package = build_models(root)
    image = root / "shot.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    params = {"steps": args.steps, "denoise": 1.0, "sampler": "Euler", "seed": 1, "face_pass": False,
              "prompt": "photo of a man"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start_server(root, spec, port)
    url = f"http://127.0.0.1:{port}"
    try:
        client = BumpClient(url, retries=0)
        deadline = time.monotonic() + 120
        while True:
            try:
                if client.health().model_state == "ready":
                    break
            except Exception:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server did not start; see {root / 'server.log'}")
            time.sleep(0.2)
        for _ in range(3):  # warm-up: first-call costs are not per-job overhead
            client.run(image, root / "warm", params, package=package)
        server = psutil.Process(proc.pid)
        rss = [server.memory_info().rss / 2**20]
        rounds = []
        for _ in range(args.rounds):
            rounds.append(run_round(BumpClient, url, image, package, params, args.jobs, args.threads))
            rss.append(server.memory_info().rss / 2**20)
    finally:
        proc.terminate()
        proc.wait(30)
    report = {"rounds": rounds, "rss_mb": rss, "cpu_cores": os.cpu_count(), "steps": args.steps}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    rows = [
        ("jobs (from 4 client threads at once)", "jobs", "{:.0f}"),
        ("all done, in submit order per client", "in_order", "{}"),
        ("wall time (s)", "wall_s", "{:.1f}"),
        ("throughput (jobs/s)", "throughput_jobs_s", "{:.2f}"),
        ("generation per job, mean (s)", "generate_s_mean", "{:.3f}"),
        ("submit call p50 / p95 (ms)", ("submit_ms_p50", "submit_ms_p95"), "{:.1f} / {:.1f}"),
        ("submit -> first progress p50 / p95 (s)", ("first_progress_s_p50", "first_progress_s_p95"), "{:.2f} / {:.2f}"),
        ("submit -> done p50 / p95 (s)", ("done_s_p50", "done_s_p95"), "{:.2f} / {:.2f}"),
        ("GPU-thread overhead per job, mean / p95 (ms)", ("gpu_overhead_ms_mean", "gpu_overhead_ms_p95"),
         "{:.1f} / {:.1f}"),
        ("latency overhead per job (accept+prep+save), mean / p95 (ms)",
         ("latency_overhead_ms_mean", "latency_overhead_ms_p95"), "{:.1f} / {:.1f}"),
        ("  of which accept (durable intake) mean (ms)", "accept_ms_mean", "{:.1f}"),
        ("  of which result save (encode pool) mean (ms)", "save_ms_mean", "{:.1f}"),
    ]
    heads = " | ".join(f"round {i + 1}" for i in range(len(report["rounds"])))
    print(f"| measure | {heads} |")
    print("|---|" + "---|" * len(report["rounds"]))
    for label, key, fmt in rows:
        cells = []
        for r in report["rounds"]:
            cells.append(fmt.format(*(r[k] for k in key)) if isinstance(key, tuple) else fmt.format(r[key]))
        print(f"| {label} | {' | '.join(cells)} |")
    rss = report["rss_mb"]
    print(f"| server RSS before -> after each round (MiB) | {rss[0]:.0f} -> " + " -> ".join(f"{x:.0f}" for x in rss[1:])
          + " |" + " |" * (len(report["rounds"]) - 1))
    over = report["rounds"][-1]["gpu_overhead_ms_mean"]
    print(f"\nGPU-thread overhead {over:.1f} ms/job = {over / 10:.2f} % of a 1 s GPU job, {over / 30:.2f} % of 3 s.")


if __name__ == "__main__":
    raise SystemExit(main())
