"""The sequence job through a tiny real-architecture SD 1.5 + IP-Adapter: flicker, kill -9 resume, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image

from bump_backend.cli import main
from bump_backend.generate import BumpEngine, BumpSettings
from bump_backend.generate.models import ModelSpec
from bump_backend.sequence import metrics
from bump_backend.sequence.bumper import EngineBumper
from bump_backend.sequence.job import FaceOptions, SequenceJob
from bump_backend.testing import clips
from bump_backend.testing import tiny_models as tiny
from bump_contracts.sequence_job import SequenceParams

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    sd15 = tiny.build_tiny_sd15(root / "sd15")
    ip_dir, weight = tiny.build_tiny_ip_adapter(root / "ip", sd15, "plus-face")
    frames = list(clips.photo_clip(8))
    package = tiny.build_tiny_package(root / "package", {"front": (frames[0].image, 0.0)}, character_id="astronaut")
    return {"sd15": sd15, "ip": ip_dir, "weight": weight, "package": package, "frames": frames}


@pytest.fixture(scope="module")
def engine(models):
    return BumpEngine(ModelSpec(base=str(models["sd15"]), ip_adapter=str(models["ip"]),
                                ip_adapter_weight=models["weight"], device="cpu"))


def _settings():
    return BumpSettings(prompt="photo of a man", steps=6, denoise=0.5, sampler="Euler a", seed=1234, face_size=64,
                        cfg=5.0)


def test_temporal_path_flickers_less_than_per_frame_bumping(tmp_path, models, engine):
    frames = models["frames"]
    folder = clips.write_folder(iter(frames), tmp_path / "clip")
    masks = [metrics.face_disk(f.image.shape, f.eyes[0], f.sizes[0]) for f in frames]
    ratios = {}
    for temporal in (False, True):
        out = tmp_path / f"out_{temporal}"
        job = SequenceJob(folder, out, SequenceParams(video=False, temporal=temporal),
                          face=FaceOptions(64, 0.35, 1234), package=models["package"], log=None)
        record = job.run(EngineBumper(engine, _settings()))
        assert [f["faces"][0]["seed"] for f in record["frames"]] == [1234] * 8  # one seed for the track
        assert record["model"]["hash"] == engine.loaded.model_hash  # the record names the model that ran
        outputs = [np.asarray(Image.open(p)) for p in sorted((out / "frames").glob("*.png"))]
        ratios[temporal] = metrics.flicker_ratio(outputs, [f.image for f in frames], [f.flow for f in frames], masks)
        # the bump changed the face and nothing far from it
        assert np.abs(outputs[3].astype(int) - frames[3].image)[masks[3]].mean() > 2
        assert (outputs[3][:, :8] == frames[3].image[:, :8]).all()
    assert ratios[True] < 0.5 * ratios[False], ratios


def test_killed_job_resumes_without_redoing_finished_frames(tmp_path, models):
    folder = clips.write_folder(iter(clips.photo_clip(10)), tmp_path / "clip")
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "bump_backend", "sequence", str(folder), "--out", str(out),
            "--package", str(models["package"]), "--model", str(models["sd15"]), "--ip-adapter", str(models["ip"]),
            "--ip-adapter-weight", models["weight"], "--device", "cpu", "--steps", "6", "--denoise", "0.5",
            "--sampler", "Euler a", "--seed", "77", "--face-size", "64", "--cfg", "5", "--no-video"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list((out / "frames").glob("*.png"))) >= 3 if (out / "frames").exists() else False:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "frames").glob("*.png")}
    assert 3 <= len(done) < 10
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "ETA" in result.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (out / "frames").glob("*.png")}
    assert len(after) == 10 and all(after[name] == stamp for name, stamp in done.items())
    record = json.loads((out / "sequence.json").read_text())
    assert record["resumed_frames"] == len(done)
    assert record["tracks"][0]["seed"] == 77


def test_cli_bad_inputs_exit_2_before_loading_a_model(tmp_path, capsys):
    junk = tmp_path / "broken.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    assert main(["sequence", str(junk), "--out", str(tmp_path / "o"), "--references", "auto",
                 "--model", str(tmp_path / "no-model")]) == 2
    assert "broken.mp4: not a readable video" in capsys.readouterr().err
    folder = clips.write_folder(iter(clips.photo_clip(2, 64, 64, 24)), tmp_path / "frames")
    assert main(["sequence", str(folder), "--out", str(folder / "x"), "--model", str(tmp_path / "no-model")]) == 2
    assert "inside) the input" in capsys.readouterr().err
    assert main(["sequence", str(folder), "--out", str(tmp_path / "o"), "--crf", "70"]) == 2
    assert "crf must be an integer from 0 to 51" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0001.png", "frame_0002.png"]  # input untouched


def test_bumper_waits_for_the_engines_lock(models, engine):
    """The bumper goes through the engine's public, locked methods: while another thread holds the
    engine (a server job, a model switch), a sequence's face batch waits instead of sharing the pipeline."""
    import threading

    from bump_backend.sequence.face_job import FaceJob

    start = np.asarray(Image.fromarray(models["frames"][0].image).resize((64, 64)))
    jobs = [FaceJob(start, 0.0, models["package"], 7, "t0"), FaceJob(start, 0.0, None, 7, "t1")]
    bumper = EngineBumper(engine, _settings())
    done: list[list[np.ndarray]] = []
    with engine._lock:  # what BumpEngine.run holds for a whole job
        worker = threading.Thread(target=lambda: done.append(bumper(jobs)))
        worker.start()
        worker.join(1.5)
        assert worker.is_alive() and not done  # blocked on the lock, nothing computed
    worker.join(120)
    assert not worker.is_alive()
    crops = done[0]
    assert [c.shape for c in crops] == [(64, 64, 3)] * 2
    assert np.abs(crops[0].astype(int) - crops[1].astype(int)).mean() > 0  # identity vs. none differ
    assert np.array_equal(bumper(jobs[:1])[0], crops[0])  # same seed, same face: same result
    from dataclasses import replace

    from bump_contracts.errors import ContractError

    with pytest.raises(ContractError, match=r"params\.clip_skip .* limit of 2"):  # before any frame is bumped
        EngineBumper(engine, replace(_settings(), clip_skip=3))
