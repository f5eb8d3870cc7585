"""A sequence as one server job (tiny model, real engine, real client): per-frame progress, results with
SHA-256, cancel between frames, kill -9 of the server then resume from the last finished frame, bad
settings refused with the field named."""

from __future__ import annotations

import json
import zipfile

import av
import numpy as np
import pytest
import requests
from PIL import Image
from server_helpers import ProcessServer, wait_for

from bump_backend.server.jobs import Job
from bump_backend.server.store import JobStore
from bump_backend.testing import clips
from bump_client.client import BumpClient, JobRejected
from bump_contracts.bump_job import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobRequest
from bump_contracts.sequence_job import SequenceRequest

# 3 sampler steps per face per frame on the tiny model (denoise 0.5 of 6 steps)
SEQ = {"steps": 6, "denoise": 0.5, "sampler": "Euler a", "seed": 1234, "cfg": 5.0, "face_size": 64,
       "prompt": "photo of a man"}
SETTINGS = {"min_sharpness": 0.0, "crf": 23}


def _slow(steps: int) -> dict:
    return {**SEQ, "steps": steps, "denoise": 1.0}


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return clips.write_folder(iter(clips.photo_clip(5, 160, 128, 48)), tmp_path_factory.mktemp("clip") / "frames")


def test_video_sequence_end_to_end(client, tiny_models, tmp_path):
    frames = [f.image for f in clips.photo_clip(5, 160, 128, 48)]
    video = clips.write_video(frames, tmp_path / "clip.mp4", fps=24)
    job = client.submit_sequence(video, SEQ, sequence=SETTINGS, package=tiny_models["package"], label="clip")
    seen: list = []
    final = client.wait(job.id, seen.append, timeout=600)
    assert final.state == DONE, final.error
    # per-frame progress: "frame i/5", counting up (which frames a client happens to see depends on timing)
    done = [int(s.stage_label.split()[1].split("/")[0]) for s in seen if s.stage_label.startswith("frame ")]
    assert done and done == sorted(done) and all(s.stage_label.endswith("/5") for s in seen
                                                  if s.stage_label.startswith("frame "))
    assert any(s.eta_s is not None for s in seen if s.stage_label.startswith("frame "))
    kinds = {f.name: f.kind for f in final.files}
    assert kinds == {"sequence.mp4": "video", "frames.zip": "frames", "sequence.json": "sequence_record",
                     "before_after.png": "strip", "result.json": "result"}
    result = client.download(job.id, tmp_path / "got")  # each file checked against its SHA-256
    assert result.record["schema"] == "bump-sequence-record" and len(result.record["frames"]) == 5
    assert sum(t["bumped"] for t in result.record["tracks"]) == 5
    with zipfile.ZipFile(result.files["frames.zip"]) as archive:
        names = sorted(archive.namelist())
        assert len(names) == 5
        first = np.asarray(Image.open(archive.open(names[0])).convert("RGB"))
    assert first.shape == frames[0].shape
    assert np.abs(first.astype(int) - frames[0]).mean() > 0.5  # the face was bumped
    with av.open(str(result.files["sequence.mp4"])) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == frames[0].shape
    assert Image.open(result.files["before_after.png"]).size[0] > 100


def test_bad_settings_refused_with_the_field_named(server, client, tiny_models, clip_folder, tmp_path):
    url = f"{server.url}/v1/sequences"

    def post(request: dict, files=None):
        return requests.post(url, files={"request": (None, json.dumps(request)), **(files or {})}, timeout=30)

    base = {"params": SEQ, "package_path": str(tiny_models["package"]), "frames_path": str(clip_folder)}
    cases = [({**base, "sequence": {"crf": 99}}, "sequence.crf"),
             ({**base, "sequence": {"references": "nope"}}, "sequence.references"),
             ({**base, "sequence": {"frobnicate": 1}}, "sequence"),
             ({**base, "params": {**SEQ, "steps": 0}}, "params.steps"),
             ({**base, "frames_path": str(tmp_path / "missing")}, "frames_path"),
             ({**base, "frames_path": "relative/frames"}, "frames_path"),
             ({k: v for k, v in base.items() if k != "frames_path"}, "video")]
    before = len(client.jobs(1000))
    for request, field in cases:
        response = post(request)
        assert 400 <= response.status_code < 500, (field, response.text)
        assert response.json()["error"]["field"] == field, response.json()
    response = post({**base, "frames_path": None}, {"video": ("clip.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)})
    assert response.status_code == 422 and response.json()["error"]["field"] == "video"
    assert "not a readable video" in response.json()["error"]["message"]
    assert len(client.jobs(1000)) == before  # nothing was queued
    with pytest.raises(JobRejected) as caught:  # the client checks the same contract before uploading
        client.submit_sequence(frames=clip_folder, params=SEQ, sequence={"crf": 99})
    assert caught.value.field == "sequence.crf"


def test_cancel_between_frames(server, client, tiny_models, tmp_path):
    folder = clips.write_folder(iter(clips.photo_clip(8, 160, 128, 48)), tmp_path / "frames")
    job = client.submit_sequence(frames=folder, params=_slow(12), sequence=SETTINGS, package=tiny_models["package"])
    wait_for(lambda: client.status(job.id).step >= 1, timeout=300)
    client.cancel(job.id)
    final = client.wait(job.id, timeout=120)
    assert final.state == CANCELLED and final.step < 8
    assert not (server.config.data_dir / "jobs" / job.id / "sequence").exists()  # nothing left to resume
    assert sorted(p.name for p in folder.iterdir())[:1] == ["frame_0001.png"]  # input untouched


def test_kill9_mid_sequence_resumes_from_the_last_finished_frame(tiny_models, tmp_path):
    folder = clips.write_folder(iter(clips.photo_clip(8, 160, 128, 48)), tmp_path / "frames")
    data = tmp_path / "data"
    server = ProcessServer(data, tiny_models["spec"])
    try:
        server.wait_ready()
        client = BumpClient(server.url, timeout=30)
        job = client.submit_sequence(frames=folder, params=_slow(8), sequence=SETTINGS,
                                     package=tiny_models["package"])
        work = data / "jobs" / job.id / "sequence" / "frames"
        wait_for(lambda: len(list(work.glob("*.png"))) >= 3 if work.is_dir() else False, timeout=300, interval=0.05)
        status = client.status(job.id)
        assert status.stage_label.startswith("frame ") and status.eta_s is not None
        server.kill9()
    except BaseException:
        server.stop()
        raise
    finished = {p.name: p.read_bytes() for p in work.glob("*.png")}
    assert 3 <= len(finished) < 8
    server = ProcessServer(data, tiny_models["spec"])
    try:
        server.wait_ready()
        client = BumpClient(server.url, timeout=30)
        seen: list = []
        final = client.wait(job.id, seen.append, timeout=600)
        assert final.state == DONE, final.error
        assert final.attempts == 2
        result = client.download(job.id, tmp_path / "got")
    finally:
        server.stop()
    assert result.record["resumed_frames"] == len(finished)  # not redone
    assert final.timings["resumed_frames"] == len(finished)
    with zipfile.ZipFile(result.files["frames.zip"]) as archive:
        assert len(archive.namelist()) == 8
        for name, data_before in finished.items():
            assert archive.read(f"frames/{name}") == data_before


def test_a_sequence_that_makes_progress_is_resumed_however_often_the_server_dies(tmp_path):
    """max_attempts counts only the attempts that finished no frame: a long clip survives many restarts,
    a sequence that kills the server without progress is failed as any job."""
    store = JobStore(tmp_path)
    request = SequenceRequest(job=JobRequest(params=SEQ), frames_path=str(tmp_path))
    job = Job(id=store.new_id(), seq=store.next_seq(), request=request.job, folder=store.incoming("x"),
              image_name="", image_type="frames", package={"kind": "none", "path": None}, sequence=request,
              sequence_input=str(tmp_path))
    store.commit(job, job.folder)
    frames = job.work_dir / "frames"
    frames.mkdir(parents=True)
    for attempt, finished, state in ((2, 3, QUEUED), (3, 3, FAILED)):
        job.state, job.attempts, job.resume_frames = RUNNING, attempt, 1 if attempt == 2 else 3
        for i in range(finished):
            (frames / f"frame_{i:04d}.png").write_bytes(b"png")
        store.save_state(job)
        (recovered,) = store.recover(max_attempts=2)
        assert recovered.state == state and recovered.kind == "sequence"
        assert recovered.sequence == request  # request.json holds the whole sequence request
