"""End to end with the real tiny diffusers engine: submit, progress, results, cancel, queue order."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import numpy as np
import pytest
from PIL import Image
from server_helpers import FAST, slow, wait_for

from bump_client.client import BackendNotRunning, BumpClient, JobFailed, JobRejected
from bump_contracts.bump_job import CANCELLED, DONE, QUEUED, RUNNING


def test_health_and_models(client, server):
    health = client.health()
    assert health.status == "ok" and health.model_state == "ready"
    caps = health.capabilities
    assert caps.device == "cpu" and health.model.ip_adapter_kind == "plus-face" and caps.ip_adapter_kinds == (
        "plus-face",)
    assert not caps.sdxl and not caps.faceid and caps.free_vram_mb is None and "Euler a" in caps.samplers
    assert caps.max_side == server.config.limits.max_side_param and caps.max_face_size == \
        server.config.limits.max_face_size
    assert health.model.family == "sd15" and len(health.model.hash) == 10 and "/" not in health.model.name
    assert health.queue_capacity == server.config.max_queue and health.auth_required is False
    models = client.models()
    assert {"sd15", "sdxl"} <= {p["name"] for p in models["presets"]}
    assert models["loaded"]["family"]


def test_not_running_message_names_the_url_and_the_command():
    client = BumpClient("http://127.0.0.1:9", retries=1, backoff=0.01)
    with pytest.raises(BackendNotRunning) as info:
        client.health()
    assert "backend not running at http://127.0.0.1:9" in str(info.value)
    assert "python -m bump_backend serve --port 9" in str(info.value)


def test_submit_stream_progress_and_download(client, images, tiny_models, tmp_path):
    job = client.submit(images["png"], {**FAST, "steps": 6}, package=tiny_models["package"], label="shot 1")
    assert job.state == QUEUED and job.id and job.label == "shot 1"
    seen = []
    final = client.wait(job.id, on_progress=seen.append)
    assert final.state == DONE, final.error
    running = [s for s in seen if s.state == RUNNING and s.steps]
    assert running, "no progress events"
    assert [s.progress for s in running] == sorted(s.progress for s in running)  # never backwards
    assert any(s.stage == "whole-image pass" and 0 < s.step < s.steps for s in running)
    assert any(s.eta_s is not None for s in running)
    assert final.progress == 1.0 and final.timings["generate_s"] > 0

    result = client.download(job.id, tmp_path / "out")
    assert result.image.is_file() and result.mask is not None and result.mask.is_file()
    out = np.asarray(Image.open(result.image))
    assert out.shape == (64, 64, 3)
    assert result.record["seed"] == FAST["seed"] and result.record["settings"]["steps"] == 6
    assert result.record["package"]["path"] == str(tiny_models["package"].resolve())
    assert {f.kind for f in final.files} == {"image", "mask", "record", "result"}
    listed = json.loads((result.folder / "result.json").read_text())
    assert {f["name"] for f in listed["files"]} | {"result.json"} == {f.name for f in final.files}


def test_face_pass_with_sidecar_returns_crops_and_mask(client, images, tiny_models, tmp_path):
    from bump_contracts.face_geometry import FaceGeometry
    from bump_contracts.render_sidecar import RenderSidecar, SidecarFace

    geometry = FaceGeometry(head_centre=(64.0, 64.0), right_eye=(52.0, 58.0), left_eye=(76.0, 58.0),
                            face_box=(32.0, 32.0, 96.0, 96.0), roll=0.0, yaw=0.0, pitch=0.0, eye_distance_px=24.0,
                            depth_m=1.2)
    sidecar = RenderSidecar(width=128, height=128, faces=(SidecarFace("tiny_character", "Tiny", geometry),))
    params = {**FAST, "face_pass": True, "face_size": 64, "face": {"steps": 3}}
    stages = []
    result = client.run(images["face"], tmp_path / "faces", params, sidecar=sidecar, package=tiny_models["package"],
                        on_progress=lambda s: stages.append(s.stage_label))
    assert result.faces and result.face_inputs and result.mask is not None
    mask = np.asarray(Image.open(result.mask))
    assert mask.max() > 0  # the face region is masked
    assert "face pass 1/1" in stages and "whole-image pass" in stages
    assert result.record["faces"][0]["face"]["source"] == "geometry"  # from the sidecar, no detector


def test_uploaded_references_and_image_types(client, images, tiny_models, tmp_path):
    refs = sorted(tiny_models["package"].glob("*.png"))
    for kind in ("jpeg", "webp"):
        result = client.run(images[kind], tmp_path / kind, FAST, references=refs)
        assert result.record["package"]["path"].endswith("/input/package")
    uploaded = client.run(images["png"], tmp_path / "whole", FAST, package=tiny_models["package"], upload_package=True)
    assert uploaded.record["package"]["id"] == "tiny_character"  # its own package.json went along


def test_exr_input_is_accepted(client, tmp_path):
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    linear = np.full((48, 40, 3), 0.2, np.float32)
    path = tmp_path / "render.exr"
    assert cv2.imwrite(str(path), linear)
    result = client.run(path, tmp_path / "exr", FAST)
    assert result.record["input"]["width"] == 40 and result.record["input"]["height"] == 48


def test_cancel_running_job_between_steps(client, images, tmp_path):
    job = client.submit(images["png"], slow(150))
    wait_for(lambda: client.status(job.id).step >= 1, timeout=30)
    t = time.monotonic()
    client.cancel(job.id)
    final = client.wait(job.id, timeout=30)
    assert final.state == CANCELLED and time.monotonic() - t < 5
    assert final.step < final.steps
    done = client.run(images["png"], tmp_path, FAST).job_id
    with pytest.raises(JobRejected) as info:  # cancelling a finished job is a clear 409
        client.cancel(done)
    assert info.value.status == 409


def test_queue_order_and_cancel_queued(client, images):
    blocker = client.submit(images["png"], slow(25), label="blocker")
    jobs = [client.submit(images["png"], FAST, label=f"q{i}") for i in range(4)]
    assert [j.queue_position for j in jobs] == sorted(j.queue_position for j in jobs)
    cancelled = client.cancel(jobs[1].id)
    assert cancelled.state == CANCELLED
    finals = [client.wait(j.id, timeout=60) for j in [blocker, *jobs]]
    assert [f.state for f in finals] == [DONE, DONE, CANCELLED, DONE, DONE]
    ran = [f for f in finals if f.state == DONE]
    assert [f.started for f in ran] == sorted(f.started for f in ran)  # FIFO
    # one at a time on the GPU (saving a result may overlap the next job's generation, by design)
    starts = [datetime.fromisoformat(f.started).timestamp() for f in ran]
    for (a, start_a), start_b in zip(zip(ran, starts, strict=True), starts[1:], strict=False):
        assert start_b >= start_a + a.timings["generate_s"] - 0.002
    listed = {s.id: s for s in client.jobs(limit=100)}
    assert all(j.id in listed for j in jobs)
    assert client.jobs(state="cancelled")


def test_submit_is_idempotent_with_client_key(client, images):
    first = client.submit(images["png"], FAST, client_key="shot-42-take-1")
    again = client.submit(images["png"], FAST, client_key="shot-42-take-1")
    assert again.id == first.id
    assert client.wait(first.id).state == DONE


def test_concurrent_clients_all_complete(client, images, server):
    ids: list[list[str]] = [[] for _ in range(3)]

    def submit(k: int) -> None:
        c = BumpClient(server.url)
        for i in range(3):
            ids[k].append(c.submit(images["png"], FAST, label=f"c{k}-{i}").id)

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for per_client in ids:
        finals = [client.wait(i, stream=False, poll_interval=0.1) for i in per_client]
        assert all(f.state == DONE for f in finals)
        assert [f.started for f in finals] == sorted(f.started for f in finals)


def test_failed_job_reports_why_and_server_keeps_serving(client, images, tmp_path):
    import shutil

    from bump_backend.testing import tiny_models as tiny

    package = tiny.build_tiny_package(tmp_path / "doomed")
    blocker = client.submit(images["png"], slow(30))  # the GPU is busy while the package goes away
    job = client.submit(images["png"], slow(30), package=package)
    shutil.rmtree(package)  # gone before the worker reads it
    client.wait(blocker.id, timeout=60)
    final = client.wait(job.id, timeout=60)
    assert final.state == "failed" and final.error
    with pytest.raises(JobFailed):
        client.download(job.id, tmp_path / "none")
    assert client.run(images["png"], tmp_path / "next", FAST).image.is_file()
