"""The demo clip: keyed poses, one PNG, render sidecar and Cycles motion-vector array per frame."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from bump_backend.sequence.sources import open_source
from bump_contracts import clip as clip_contract
from profile_rig.core.pose_math import demo_clip_poses, demo_clip_walk
from profile_rig.imaging.png_io import read_png

ROOT = Path(__file__).resolve().parent.parent


def test_clip_poses_turn_blink_and_smile():
    poses = demo_clip_poses(24)
    turns = [p.controls["neck"][0] + p.controls["head"][0] for p in poses]
    assert turns[0] == pytest.approx(-35) and turns[-1] == pytest.approx(35)
    assert all(b >= a for a, b in zip(turns, turns[1:], strict=False))
    blinks = [p.expression.get("blink", 0.0) for p in poses]
    assert max(blinks) > 0.8 and blinks[0] == blinks[-1] == 0.0
    assert poses[-1].expression["smile"] == pytest.approx(1.0) and "smile" not in poses[0].expression
    with pytest.raises(ValueError):
        demo_clip_poses(0)


def test_animation_cli_writes_frames_sidecars_and_motion_vectors(tmp_path):
    out = tmp_path / "clip"
    command = [sys.executable, "-m", "headless_renderer", "animation", "--demo", "--out", str(out), "--frames", "3",
               "--resolution", "64", "--samples", "1", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
    clip = json.loads((out / "clip.json").read_text())
    assert clip["schema"] == "demo-clip" and len(clip["frames"]) == 3
    checked = clip_contract.load(str(out / "clip.json"))  # written through the contract, reads back checked
    assert checked.fps == 12 and (checked.width, checked.height) == (64, 64) and len(checked.frames) == 3
    vectors, yaws, faces = [], [], []
    for record in clip["frames"]:
        image = read_png(out / record["image"])
        assert image.shape[:2] == (64, 64)
        vectors.append(np.load(out / record["vectors"]))
        assert vectors[-1].shape == (64, 64, 4) and vectors[-1].dtype == np.float32
        sidecar = json.loads((out / record["sidecar"]).read_text())
        yaws.append(sidecar["faces"][0]["yaw"])
        faces.append(sidecar["faces"][0])
    # the head turns toward the character's left: the face yaw grows frame by frame
    assert yaws[0] < yaws[1] < yaws[2] and yaws[2] - yaws[0] > 30
    # a few steps toward the camera (--walk 0.25 by default): the face comes 25 % closer and grows
    depths = [f["depth_m"] for f in faces]
    assert depths[0] > depths[1] > depths[2]
    assert depths[0] - depths[2] == pytest.approx(0.25 * depths[0], abs=0.03)
    assert faces[2]["eye_distance_px"] > 1.2 * faces[0]["eye_distance_px"]
    # motion: none before the first frame or after the last; frame 2 moves both ways
    assert np.abs(vectors[0][..., :2]).max() < 0.01 and np.abs(vectors[2][..., 2:]).max() < 0.01
    assert np.abs(vectors[1][..., :2]).max() > 0.5 and np.abs(vectors[1][..., 2:]).max() > 0.5
    # read as a sequence input, frame 2's motion carries frame 1 onto it (far closer than frame 1 as it is)
    frames = list(open_source(out).frames())
    assert frames[0].motion is None and frames[1].motion.shape == (64, 64, 2)
    before, after = frames[0].image.astype(np.float32), frames[1].image.astype(np.float32)
    flow = frames[1].motion
    moving = np.abs(flow).sum(-1) > 0.3
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    warped = cv2.remap(before, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR)
    assert moving.sum() > 100
    assert np.abs(warped - after)[moving].mean() < 0.6 * np.abs(before - after)[moving].mean()
    # what frame 1 says moves to frame 2 is what frame 2 says came from frame 1 (same pixels, opposite sign)
    assert np.abs(vectors[0][..., 2:]).max() == pytest.approx(np.abs(vectors[1][..., :2]).max(), rel=0.2)


def test_the_walk_eases_along_the_floor_toward_the_camera():
    walk = demo_clip_walk(5, (0.0, 0.0, 1.6), (1.0, -2.0, 1.7), 0.25)
    assert np.allclose(walk[0], 0) and np.allclose(walk[-1], [0.25, -0.5, 0.0])
    assert np.allclose(walk[2], [0.125, -0.25, 0.0])  # half way at mid-clip (eased in and out)
    steps = [np.linalg.norm(b - a) for a, b in zip(walk, walk[1:], strict=False)]
    assert steps[0] < steps[1] and steps[-1] < steps[-2]
    with pytest.raises(ValueError):
        demo_clip_walk(5, (0, 0, 0), (1, 0, 0), 1.0)


def test_animation_refuses_bad_input(tmp_path):
    command = [sys.executable, "-m", "headless_renderer", "animation", "--demo", "--out", str(tmp_path / "c"), "--frames", "0"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ}, timeout=120)
    assert result.returncode == 2 and "error: --frames must be within 1..2000" in result.stderr
    assert not (tmp_path / "c").exists()
