"""Sequence uploads from the client: the file is streamed from disk (never held in memory whole), a
POST cut off mid-upload is sent again whole with the same client_key, and a frame folder travels as
the ``frames_zip`` part. Against a real HTTP server in its own process (``upload_stub_server.py``),
so the client's memory is measured alone."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from bump_client.client import BumpClient, JobRejected
from bump_client.multipart import MultipartBody, Part

HERE = Path(__file__).resolve().parent
VIDEO_BYTES = 64 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stub(tmp_path: Path, *extra: str):
    port = _free_port()
    log = tmp_path / "stub.jsonl"
    proc = subprocess.Popen([sys.executable, str(HERE / "upload_stub_server.py"), "--port", str(port), "--log",
                             str(log), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    return proc, url, log


@pytest.fixture()
def video(tmp_path) -> Path:
    """A 64 MiB file (sparse in the middle, random at both ends so its hash means something)."""
    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(1)
    with open(path, "wb") as handle:
        handle.write(rng.bytes(1 << 20))
        handle.seek(VIDEO_BYTES - (1 << 20))
        handle.write(rng.bytes(1 << 20))
    return path


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def test_a_video_is_streamed_and_a_cut_off_post_is_sent_again_whole(tmp_path, video):
    proc, url, log = _stub(tmp_path, "--drop-first")
    try:
        client = BumpClient(url, retries=2, backoff=0.05, timeout=60)
        tracemalloc.start()
        try:
            job = client.submit_sequence(video, {"prompt": "x"}, package_id="marco", client_key="key-1")
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        proc.terminate()
        proc.wait(10)
    assert job.id == "j1"
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["dropped"] and first["request"]["client_key"] == "key-1"
    assert second["attempt"] == 2
    by_name = {p["name"]: p for p in second["parts"]}
    assert by_name["request"]["json"]["client_key"] == "key-1"  # the retry is the same submission
    assert by_name["video"]["bytes"] == VIDEO_BYTES and by_name["video"]["sha256"] == _sha(video)
    assert by_name["video"]["filename"] == "clip.mp4"
    assert first["length"] == second["length"]
    assert peak < 8 * 1024 * 1024, f"the client held {peak / 2**20:.1f} MiB for a {VIDEO_BYTES >> 20} MiB upload"


def test_a_frame_folder_travels_as_a_zip_that_is_removed_afterwards(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 4):
        Image.fromarray(np.full((32, 48, 3), 40 * i, np.uint8)).save(folder / f"shot_{i:04d}.png")
        (folder / f"shot_{i:04d}.json").write_text("{}", encoding="utf-8")
    np.save(folder / "shot_0002.flow.npy", np.zeros((32, 48, 2), np.float32))
    (folder / "Thumbs.db").write_bytes(b"x")  # not a frame folder's file: stays here
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    proc, url, log = _stub(tmp_path)
    try:
        client = BumpClient(url, timeout=60)
        client.submit_sequence(frames=folder, upload_frames=True, params={"prompt": "x"}, package_id="marco")
        with pytest.raises(JobRejected) as caught:
            client.submit_sequence(frames=folder, params={"prompt": "x"}, package_id="marco", upload_frames=True,
                                   sequence={"crf": 99})  # the contract is checked before anything is packed
        assert caught.value.field == "sequence.crf"
    finally:
        proc.terminate()
        proc.wait(10)
    (entry,) = (json.loads(line) for line in log.read_text().splitlines())
    by_name = {p["name"]: p for p in entry["parts"]}
    assert set(by_name) == {"request", "frames_zip"}
    request = by_name["request"]["json"]
    assert request["frames_zip"] is True and request["frames_path"] is None and request["schema_version"] == 2
    assert by_name["frames_zip"]["members"] == sorted(
        [f"shot_{i:04d}.png" for i in range(1, 4)] + [f"shot_{i:04d}.json" for i in range(1, 4)]
        + ["shot_0002.flow.npy"])
    assert os.listdir(scratch) == []  # the packed archive is gone


def test_the_body_rewinds_to_the_same_bytes(tmp_path):
    data = tmp_path / "f.bin"
    data.write_bytes(bytes(range(256)) * 9000)
    body = MultipartBody([Part("request", "application/json", data=b"{}"),
                          Part("video", "application/octet-stream", path=data, filename='we"ird.mp4')])
    first = b"".join(iter(lambda: body.read(7777), b""))
    body.rewind()
    assert body.read() == first and len(first) == len(body)
    assert b'filename="we%22ird.mp4"' in first
    data.write_bytes(b"shorter")  # changed between the length and the upload: refused, not sent short
    body.rewind()
    with pytest.raises(OSError, match="changed while it was being uploaded"):
        body.read()
